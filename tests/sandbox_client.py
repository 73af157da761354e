"""A minimal OAuth client for the sandbox tests: authorize, sign in, exchange.

It speaks plain HTTP with httpx, independent of the SDK's own session layer,
so the sandbox is checked against the wire rules rather than against the
code that uses it.
"""

from __future__ import annotations

import base64
import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs
import httpx
from authlib.oauth2.rfc7636 import create_s256_code_challenge

PUBLIC_ID = "apshooks-sandbox"
PUBLIC_CALLBACK = "http://localhost:8080/"
WEB_ID = "apshooks-web"
WEB_SECRET = "sandbox-web-secret"
WEB_CALLBACK = "http://localhost:6666/callback"
AUTHORIZE = "/authentication/v2/authorize"
TOKEN = "/authentication/v2/token"


@attrs.define
class Attempt:
    """One authorization request and the secrets that go with it."""

    query: dict[str, str]
    verifier: str

    @property
    def state(self) -> str:
        return self.query["state"]


def attempt(
    client_id: str = PUBLIC_ID,
    redirect_uri: str = PUBLIC_CALLBACK,
    scope: str = "data:read user-profile:read openid",
    *,
    pkce: bool = True,
) -> Attempt:
    verifier = secrets.token_urlsafe(48)
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": secrets.token_urlsafe(8),
        "nonce": secrets.token_urlsafe(8),
    }
    if pkce:
        query["code_challenge"] = create_s256_code_challenge(verifier)
        query["code_challenge_method"] = "S256"
    return Attempt(query, verifier)


def query_of(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


def sign_in(
    http: httpx.Client, tried: Attempt, user: str, decision: str = "allow"
) -> dict[str, str]:
    """Submit the consent form as the page would; return the callback's query."""
    answer = http.post(
        AUTHORIZE, params=tried.query, data={"user": user, "decision": decision}
    )
    assert answer.status_code == 302, answer.text
    return query_of(answer.headers["location"])


def basic(client_id: str = WEB_ID, secret: str = WEB_SECRET) -> dict[str, str]:
    pair = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {pair}"}


def exchange(
    http: httpx.Client, tried: Attempt, code: str, *, confidential: bool = False
) -> httpx.Response:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": tried.query["redirect_uri"],
    }
    if "code_challenge" in tried.query:
        form["code_verifier"] = tried.verifier
    if confidential:
        return http.post(TOKEN, data=form, headers=basic())
    return http.post(TOKEN, data={**form, "client_id": tried.query["client_id"]})


def tokens_for(
    http: httpx.Client, user: str = "jane@example.com", **options: Any
) -> dict[str, Any]:
    """Sign ``user`` in to the public app through the consent form."""
    tried = attempt(**options)
    code = sign_in(http, tried, user)["code"]
    answer = exchange(http, tried, code)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def refresh(http: httpx.Client, refresh_token: str, **extra: str) -> httpx.Response:
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token, **extra}
    return http.post(TOKEN, data={**form, "client_id": PUBLIC_ID})


def bearer(access_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {access_token}"}
