"""The sandbox's Flask app: every route APS answers, wired to the OAuth server."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from authlib.oauth2 import OAuth2Error
from flask import Flask, Response, jsonify, redirect, render_template, request
from loguru import logger

from aps.sandbox import dm, oauth
from aps.sandbox.bearer import Bearer
from aps.sandbox.data import World
from aps.sandbox.grants import Grants, Lifetimes
from aps.sandbox.limits import RateLimit, RateLimits
from aps.settings import DEFAULT_SCOPES

AUTH = "/authentication/v2"
TOKEN_PATH = f"{AUTH}/token"
# Marks requests that Sandbox.consent() makes to its own app, so they are
# neither counted nor rate limited.
INTERNAL = "apshooks.sandbox.internal"

RateLimitsOption = Mapping[str, int | RateLimit] | Literal["aps"] | None


def create_app(
    world: World,
    *,
    lifetimes: Lifetimes,
    auto_consent: str | None = None,
    rate_limits: RateLimitsOption = None,
) -> Flask:
    """The WSGI app that answers as APS does, for ``world``.

    ``app.extensions["requests"]`` (a :class:`Served`) counts the requests
    it answered.
    """
    app = Flask(__name__, template_folder=str(Path(__file__).parent))
    record = Grants(lifetimes)
    server, protector = oauth.build(app, world, record, _issuer)
    bearer = Bearer(protector)
    consent_user = world.user(auto_consent) if auto_consent else None
    served = Served()
    app.extensions["requests"] = served
    _watch(app, RateLimits(rate_limits), served)

    @app.get("/.well-known/openid-configuration")
    def discovery() -> Response:
        return jsonify(_discovery(_issuer()))

    @app.route(f"{AUTH}/authorize", methods=["GET", "POST"])
    def authorize() -> Any:
        try:
            grant = server.get_consent_grant(end_user=None)
        except OAuth2Error as error:
            return _refuse_authorization(server, error)

        if request.method == "GET" and consent_user is None:
            return _consent_page(grant)
        if request.method == "GET":
            return server.create_authorization_response(
                grant=grant, grant_user=consent_user
            )

        if request.form.get("decision") != "allow":
            logger.info("Sign-in to {} was denied.", grant.request.client.app.name)
            return server.create_authorization_response(grant=grant, grant_user=None)
        user = world.users.get(request.form.get("user", "").lower())
        if user is None:
            return _consent_page(grant, problem="Choose one of the sandbox's users.")
        return server.create_authorization_response(grant=grant, grant_user=user)

    @app.post(TOKEN_PATH)
    def token() -> Any:
        return _one_place(request) or server.create_token_response()

    @app.post(f"{AUTH}/revoke")
    def revoke() -> Any:
        return _one_place(request) or server.create_endpoint_response("revocation")

    @app.post(f"{AUTH}/introspect")
    def introspect() -> Any:
        return _one_place(request) or server.create_endpoint_response("introspection")

    @app.get(f"{AUTH}/keys")
    def keys() -> Response:
        return jsonify(oauth.public_keys())

    @app.get(f"{AUTH}/logout")
    def logout() -> Any:
        target = request.args.get("post_logout_redirect_uri", "")
        if any(target in known.callback_urls for known in world.apps.values()):
            return redirect(target)
        return (
            "<!doctype html><title>Signed out</title><p id='signed-out'>Signed out.</p>"
        )

    @app.get("/userinfo")
    def userinfo() -> Response:
        user = bearer.user("user-profile:read")
        return jsonify(
            {
                "sub": user.sub,
                "name": user.name,
                "given_name": user.given_name,
                "family_name": user.family_name,
                "preferred_username": user.email,
                "email": user.email,
                "email_verified": True,
                "locale": "en-US",
            }
        )

    dm.register(app, world, bearer)
    return app


def _issuer() -> str:
    # The URL the client used, so that links and `iss` match what it was told.
    return request.host_url.rstrip("/")


def _discovery(base: str) -> dict[str, Any]:
    return {
        "issuer": base,
        "authorization_endpoint": f"{base}{AUTH}/authorize",
        "token_endpoint": f"{base}{AUTH}/token",
        "userinfo_endpoint": f"{base}/userinfo",
        "jwks_uri": f"{base}{AUTH}/keys",
        "revoke_endpoint": f"{base}{AUTH}/revoke",
        "revocation_endpoint": f"{base}{AUTH}/revoke",
        "introspection_endpoint": f"{base}{AUTH}/introspect",
        "end_session_endpoint": f"{base}{AUTH}/logout",
        "scopes_supported": list(DEFAULT_SCOPES),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": oauth.AUTH_METHODS,
        "claims_supported": [
            "sub",
            "name",
            "email",
            "iss",
            "aud",
            "exp",
            "iat",
            "nonce",
        ],
    }


class Served:
    """The requests an app answered, per ``(method, path)``, counted under a lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str]] = Counter()

    def add(self, method: str, path: str) -> None:
        with self._lock:
            self._counts[(method, path)] += 1

    def snapshot(self) -> Counter[tuple[str, str]]:
        with self._lock:
            return Counter(self._counts)


def _watch(app: Flask, limits: RateLimits, served: Served) -> None:
    @app.before_request
    def limit() -> Response | None:
        if request.environ.get(INTERNAL):
            return None
        wait = limits.check(request.url_rule.rule if request.url_rule else None)
        if wait is None:
            return None
        body = {
            "developerMessage": "Quota limit exceeded.",
            "moreInfo": "https://aps.autodesk.com/en/docs/oauth/v2/developers_guide/rate-limiting/",
            "errorCode": "",
        }
        response = jsonify(body)
        response.status_code = 429
        response.headers["Retry-After"] = str(wait)
        return response

    @app.after_request
    def count(response: Response) -> Response:
        if not request.environ.get(INTERNAL):
            served.add(request.method, request.path)
        return response


def _one_place(incoming: Any) -> Response | None:
    if not oauth.credentials_in_both_places(incoming):
        return None
    response = jsonify(
        {
            "error": "invalid_request",
            "error_description": "Send the client credentials either in the "
            "Authorization header or in the body, not in both.",
        }
    )
    response.status_code = 400
    return response


def _consent_page(grant: Any, problem: str | None = None) -> str:
    return render_template(
        "consent.html",
        app=grant.request.client.app,
        scopes=(grant.request.scope or "").split(),
        users=list(grant.server.world.users.values()),
        action=request.full_path,
        problem=problem,
    )


def _refuse_authorization(server: Any, error: OAuth2Error) -> Any:
    # Only a callback URL registered for the app may receive an error;
    # anything else gets a page, never a redirect.
    if error.redirect_uri:
        return server.handle_error_response(None, error)
    detail = error.description or error.error
    page = render_template(
        "error.html", title="This sign-in request is refused", detail=detail
    )
    return Response(page, status=400, mimetype="text/html")
