"""The bearer-token check every API call makes, with APS-like error bodies."""

from __future__ import annotations

import json
from typing import Any, NoReturn

from authlib.oauth2.rfc6749 import MissingAuthorizationError, OAuth2Error
from authlib.oauth2.rfc6750 import InsufficientScopeError
from flask import Response, abort

from aps.sandbox.data import User

MORE_INFO = "https://aps.autodesk.com/en/docs/oauth/v2/developers_guide/error_handling/"


class Bearer:
    """Wraps authlib's resource protector to answer as APS does."""

    def __init__(self, protector: Any) -> None:
        self._protector = protector

    def user(self, scope: str) -> User:
        """The user behind the request's access token, which must carry ``scope``.

        Anything else ends the request: 401 without a valid token, 403 when
        the token lacks the scope.
        """
        try:
            token = self._protector.acquire_token([scope])
        except MissingAuthorizationError:
            _refuse(401, "AUTH-010", "The request carries no bearer token.")
        except InsufficientScopeError:
            _refuse(403, "AUTH-012", f"The access token lacks the scope {scope}.")
        except OAuth2Error:
            _refuse(401, "AUTH-006", "The access token is invalid, expired or revoked.")
        user: User = token.get_user()
        return user


def _refuse(status: int, code: str, message: str) -> NoReturn:
    body = {"developerMessage": message, "moreInfo": MORE_INFO, "errorCode": code}
    abort(Response(json.dumps(body), status=status, mimetype="application/json"))
