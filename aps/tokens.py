"""The token endpoint: trading a code or a refresh token for tokens, and revoking.

Client authentication follows RFC 6749 section 2.3 as APS applies it: an app
with a secret sends an HTTP Basic header and nothing in the body; a public app
sends its ``client_id`` in the body and proves itself with PKCE. Never both.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Sequence
from typing import Any

import attrs
import httpx

from aps import retry
from aps.errors import AuthenticationError
from aps.settings import Settings

# At most 3 x 10 s of requests and 2 x 5 s of waiting: well inside the minute
# that the store's other writers wait for its lock.
REFRESH_POLICY = retry.RetryPolicy(attempts=3, max_delay=5.0, timeout=10.0)


class GrantRefused(AuthenticationError):
    """The token endpoint answered ``invalid_grant``: the code or token is dead."""


@attrs.frozen(repr=False)
class Tokens:
    """A token response. ``repr`` shows no token."""

    access_token: str
    refresh_token: str | None
    expires_at: float
    scopes: tuple[str, ...]
    id_token: str | None = None

    def __repr__(self) -> str:
        return f"Tokens(expires_at={self.expires_at:.0f}, scopes={self.scopes!r})"


def client_id_of(settings: Settings) -> str:
    """The app's client id, or an error that says how to set one."""
    if not settings.client_id:
        raise AuthenticationError(
            "No APS client id is set. Register an app at "
            "https://aps.autodesk.com/myapps and set APS_CLIENT_ID (or "
            "client_id in apshooks.toml), or pass client_id= to connect()."
        )
    return settings.client_id


class TokenClient:
    """Talks to the token and revocation endpoints of one app."""

    def __init__(self, settings: Settings, http: httpx.Client) -> None:
        self._settings = settings
        self._http = http
        self.client_id = client_id_of(settings)

    def exchange_code(
        self, code: str, verifier: str, redirect_uri: str, scopes: Sequence[str]
    ) -> Tokens:
        """Trade an authorization code and its PKCE verifier for tokens."""
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": verifier,
            "redirect_uri": redirect_uri,
        }
        return self._token_request(form, "the sign-in", scopes)

    def refresh(self, refresh_token: str, scopes: Sequence[str]) -> Tokens:
        """Trade a refresh token, which dies doing so, for a new pair."""
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        if scopes:
            form["scope"] = " ".join(scopes)
        # A refresh runs while the store is locked for everyone else, so it
        # gives up well before a waiting peer would.
        return self._token_request(form, "the token refresh", scopes, REFRESH_POLICY)

    def revoke(self, token: str, hint: str = "refresh_token") -> None:
        """Revoke ``token`` at the server. A token it does not know is fine."""
        form, headers = self._authenticate({"token": token, "token_type_hint": hint})
        url = self._settings.revocation_endpoint
        response = retry.send(
            lambda: self._http.post(url, data=form, headers=headers),
            "Revoking the session",
        )
        if response.status_code >= 400:
            raise AuthenticationError(
                f"Revoking the session failed with HTTP {response.status_code}. "
                "The local session is forgotten anyway; revoke the app's access "
                "in your Autodesk account if you need to."
            )

    def _authenticate(
        self, form: dict[str, str]
    ) -> tuple[dict[str, str], dict[str, str]]:
        """The form and headers that authenticate the app, one way only."""
        secret = self._settings.client_secret
        if secret:
            pair = f"{self.client_id}:{secret}".encode()
            basic = base64.b64encode(pair).decode("ascii")
            return form, {"Authorization": f"Basic {basic}"}
        return {**form, "client_id": self.client_id}, {}

    def _token_request(
        self,
        form: dict[str, str],
        what: str,
        scopes: Sequence[str] = (),
        policy: retry.RetryPolicy = retry.DEFAULT_POLICY,
    ) -> Tokens:
        form, headers = self._authenticate(form)
        url = self._settings.token_endpoint
        sent_at = time.time()
        response = retry.send(
            lambda: self._http.post(
                url, data=form, headers=headers, timeout=policy.timeout
            ),
            f"The token endpoint, for {what},",
            policy,
        )
        body = _json(response)
        if response.status_code >= 400:
            raise _refusal(response.status_code, body, what)
        return _tokens(body, sent_at, scopes)


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _refusal(status: int, body: dict[str, Any], what: str) -> AuthenticationError:
    code = str(body.get("error") or f"HTTP {status}")
    # The server's description may quote what it was sent; it is left out.
    if code == "invalid_grant":
        return GrantRefused(
            f"The token endpoint refused {what} (invalid_grant): the grant expired "
            "or was revoked. Sign in again with 'apshooks login'."
        )
    if code in ("invalid_client", "unauthorized_client"):
        return AuthenticationError(
            f"The token endpoint refused the app ({code}). Check APS_CLIENT_ID and "
            "APS_CLIENT_SECRET: a public app has no secret, a web app needs one."
        )
    return AuthenticationError(
        f"The token endpoint refused {what} ({code}, HTTP {status}). Check the "
        "app's settings and its callback URL, then sign in again."
    )


def _tokens(body: dict[str, Any], sent_at: float, asked: Sequence[str]) -> Tokens:
    try:
        access = str(body["access_token"])
        lifetime = float(body.get("expires_in", 3599))
    except (KeyError, TypeError, ValueError):
        raise AuthenticationError(
            "The token endpoint answered without a usable access token. Check that "
            "APS_TOKEN_URL points at an OAuth 2.0 token endpoint."
        ) from None
    scope = body.get("scope")
    scopes = tuple(str(scope).split()) if scope else tuple(asked)
    return Tokens(
        access_token=access,
        refresh_token=body.get("refresh_token"),
        # Counted from when the request left, so the token is never older than
        # it looks.
        expires_at=sent_at + lifetime,
        scopes=scopes,
        id_token=body.get("id_token"),
    )
