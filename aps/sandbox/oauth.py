"""The sandbox's authorization server, assembled from authlib's components.

authlib does the OAuth 2.0 work (code grant, PKCE, refresh, revocation,
introspection, ID tokens); this module only supplies storage and the few rules
where APS is stricter than the standards: public apps must use PKCE S256,
``state`` is required, refresh tokens are single use, and client credentials
may be sent in one place only.
"""

from __future__ import annotations

import functools
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar

import attrs
from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector
from authlib.oauth2.rfc6749 import InvalidRequestError, InvalidScopeError, grants
from authlib.oauth2.rfc6749.util import extract_basic_authorization, scope_to_list
from authlib.oauth2.rfc6750 import BearerTokenGenerator, BearerTokenValidator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from authlib.oidc.core import OpenIDCode
from flask import Flask, Request
from joserfc.jwk import RSAKey
from loguru import logger

from aps.sandbox.data import App, World
from aps.sandbox.grants import Code, Grants, Token

# Every endpoint accepts the three ways APS apps authenticate: Basic header or
# form secret for web apps, client_id alone (with PKCE) for public apps.
AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]
KEY_ID = "apshooks-sandbox"


class Client:
    """An app, seen through authlib's client interface."""

    def __init__(self, app: App) -> None:
        self.app = app

    def get_client_id(self) -> str:
        return self.app.client_id

    def get_default_redirect_uri(self) -> None:
        return None  # APS requires redirect_uri on every request.

    def get_allowed_scope(self, scope: str | None) -> str:
        return scope or ""

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.app.callback_urls

    def check_client_secret(self, client_secret: str) -> bool:
        secret = self.app.client_secret
        return secret is not None and secrets.compare_digest(secret, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if self.app.public:
            return method == "none"
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in ("authorization_code", "refresh_token")


_key_lock = threading.Lock()


def signing_key() -> RSAKey:
    """The key that signs ID tokens, made once per process when first needed.

    Generating it lazily keeps :meth:`Sandbox.start` fast; sharing it across
    sandboxes in one process is harmless, as every sandbox publishes it. The
    lock makes sure two first requests do not make two different keys.
    """
    with _key_lock:
        return _generate_key()


@functools.cache
def _generate_key() -> RSAKey:
    return RSAKey.generate_key(
        2048, parameters={"kid": KEY_ID, "use": "sig", "alg": "RS256"}, private=True
    )


def public_keys() -> dict[str, Any]:
    return {"keys": [signing_key().as_dict(private=False)]}


def _drop_scope(response: tuple[int, Any, Any]) -> tuple[int, Any, Any]:
    # APS's token responses carry no "scope"; authlib's do.
    status, body, headers = response
    if isinstance(body, dict):
        body.pop("scope", None)
    return status, body, headers


class CodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    def save_authorization_code(self, code: str, request: Any) -> None:
        _grants(self).add_code(
            code,
            user=request.user,
            app=request.client.app,
            scope=request.scope or "",
            redirect_uri=request.payload.redirect_uri,
            payload=request.payload.data,
        )
        logger.info(
            "{} allowed {} to sign in.", request.user.email, request.client.app.name
        )

    def query_authorization_code(self, code: str, client: Client) -> Code | None:
        return _grants(self).take_code(code, client.get_client_id())

    def delete_authorization_code(self, authorization_code: Code) -> None:
        _grants(self).spend_code(authorization_code)

    def authenticate_user(self, authorization_code: Code) -> Any:
        return authorization_code.consent.user

    def create_token_response(self) -> Any:
        return _drop_scope(super().create_token_response())


class RefreshGrant(grants.RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> Token | None:
        # The scope and the app are checked before the token is spent, so a
        # malformed request never costs the client its session.
        existing = _grants(self).refresh(refresh_token)
        if existing is None or not existing.check_client(self.request.client):
            return None
        asked = set(scope_to_list(self.request.payload.scope or ""))
        if not asked <= set(scope_to_list(existing.scope)):
            raise InvalidScopeError(
                "A refresh may ask only for scopes already granted."
            )
        return _grants(self).spend_refresh(refresh_token)

    def authenticate_user(self, refresh_token: Token) -> Any:
        return refresh_token.consent.user

    def revoke_old_credential(self, refresh_token: Token) -> None:
        pass  # spend_refresh already marked it spent.

    def create_token_response(self) -> Any:
        return _drop_scope(super().create_token_response())


def _grants(grant: Any) -> Grants:
    return grant.server.grants  # type: ignore[no-any-return]


class PKCE(CodeChallenge):  # type: ignore[misc]
    """PKCE as APS applies it: public apps must send an S256 challenge."""

    SUPPORTED_CODE_CHALLENGE_METHOD: ClassVar[list[str]] = ["S256"]
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        payload = grant.request.payload.data
        if grant.request.client.app.public and not payload.get("code_challenge"):
            raise InvalidRequestError(
                "Public apps must send code_challenge with code_challenge_method=S256."
            )
        super().validate_code_challenge(grant, redirect_uri)


def require_state(grant: Any) -> None:
    grant.register_hook("after_validate_authorization_request_payload", _check_state)


def _check_state(grant: Any, redirect_uri: str) -> None:
    if not grant.request.payload.state:
        raise InvalidRequestError("Missing 'state' in request.")


class IDToken(OpenIDCode):  # type: ignore[misc]
    """Signs ID tokens with the sandbox key; ``iss`` is the sandbox's URL."""

    def __init__(self, issuer: Callable[[], str], lifetime: float) -> None:
        super().__init__(require_nonce=True)
        self.issuer = issuer
        self.DEFAULT_EXPIRES_IN = max(1, int(lifetime))

    def resolve_client_private_key(self, client: Client) -> RSAKey:
        return signing_key()

    def get_client_algorithm(self, client: Client) -> str:
        return "RS256"

    def get_encode_header(self, client: Client) -> dict[str, str]:
        return {"alg": "RS256", "kid": KEY_ID, "typ": "JWT"}

    def get_client_claims(self, client: Client) -> dict[str, Any]:
        now = int(time.time())
        return {
            "iss": self.issuer(),
            "aud": client.get_client_id(),
            "iat": now,
            "exp": now + self.DEFAULT_EXPIRES_IN,
        }

    def exists_nonce(self, nonce: str, request: Any) -> bool:
        # The client checks the nonce against its own request; the sandbox
        # keeps no record of them.
        return False

    def generate_user_info(self, user: Any, scope: str) -> dict[str, Any]:
        return {"sub": user.sub, "email": user.email, "name": user.name}


@attrs.frozen
class Found:
    """A token as found by its string: the access or the refresh half."""

    token: Token
    refresh: bool

    def check_client(self, client: Client) -> bool:
        return self.token.check_client(client)

    def is_expired(self) -> bool:
        if self.refresh:
            return (
                self.token.refresh_spent or time.time() >= self.token.refresh_expires_at
            )
        return self.token.is_expired()

    def is_revoked(self) -> bool:
        return (
            self.token.is_revoked() if not self.refresh else self.token.consent.revoked
        )

    @property
    def expires_at(self) -> float:
        if self.refresh:
            return self.token.refresh_expires_at
        return self.token.access_expires_at


class _TokenLookup:
    """Finds a token by either of its strings, as revocation and introspection do."""

    server: Any

    def query_token(
        self, token_string: str, token_type_hint: str | None
    ) -> Found | None:
        record: Grants = self.server.grants
        access = record.access(token_string)
        if access is not None:
            return Found(access, refresh=False)
        refresh = record.refresh(token_string)
        return Found(refresh, refresh=True) if refresh is not None else None


class Revocation(_TokenLookup, RevocationEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = AUTH_METHODS

    def revoke_token(self, found: Found, request: Any) -> None:
        # Revoking a refresh token ends the consent; an access token, itself.
        consent = found.token.consent
        if found.refresh:
            self.server.grants.revoke_consent(consent)
            logger.info(
                "The consent of {} for {} was revoked.",
                consent.user.email,
                consent.app.name,
            )
        else:
            self.server.grants.revoke_access(found.token)


class Introspection(_TokenLookup, IntrospectionEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = AUTH_METHODS

    def check_permission(self, found: Found, client: Client, request: Any) -> bool:
        return found.check_client(client)

    def introspect_token(self, found: Found) -> dict[str, Any]:
        token = found.token
        user = token.consent.user
        return {
            "active": True,
            "scope": token.scope,
            "client_id": token.consent.app.client_id,
            "username": user.email,
            "userid": user.sub,
            "sub": user.sub,
            "token_type": "refresh_token" if found.refresh else "Bearer",
            "exp": int(found.expires_at),
            "iat": int(token.issued_at),
        }


class AccessTokens(BearerTokenValidator):  # type: ignore[misc]
    def __init__(self, grants_: Grants) -> None:
        super().__init__()
        self.grants = grants_

    def authenticate_token(self, token_string: str) -> Token | None:
        return self.grants.access(token_string)


def build(
    flask_app: Flask, world: World, record: Grants, issuer: Callable[[], str]
) -> tuple[Any, Any]:
    """The authorization server and the resource protector for ``flask_app``.

    ``issuer`` gives the base URL of the request being answered.
    """
    server = AuthorizationServer(
        flask_app,
        query_client=lambda client_id: _client(world, client_id),
        save_token=lambda token, request: record.add_token(token, _consent(request)),
    )
    server.grants = record
    server.world = world
    server.register_token_generator(
        "default",
        BearerTokenGenerator(
            access_token_generator=lambda *_, **__: secrets.token_urlsafe(32),
            refresh_token_generator=lambda *_, **__: secrets.token_urlsafe(40),
            expires_generator=lambda *_: record.lifetimes.expires_in,
        ),
    )
    server.register_grant(
        CodeGrant,
        [PKCE(required=True), require_state, IDToken(issuer, record.lifetimes.access)],
    )
    server.register_grant(RefreshGrant)
    server.register_endpoint(Revocation)
    server.register_endpoint(Introspection)

    protector = ResourceProtector()
    protector.register_token_validator(AccessTokens(record))
    return server, protector


def _client(world: World, client_id: str) -> Client | None:
    app = world.apps.get(client_id)
    return Client(app) if app else None


def _consent(request: Any) -> Any:
    if request.authorization_code is not None:
        return request.authorization_code.consent
    return request.refresh_token.consent


def credentials_in_both_places(request: Request) -> bool:
    """Whether a request authenticates with Basic *and* with form fields."""
    basic_id, _ = extract_basic_authorization(request.headers)
    in_body = "client_id" in request.form or "client_secret" in request.form
    return bool(basic_id) and in_body
