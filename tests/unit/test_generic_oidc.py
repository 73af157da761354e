"""A server that is not APS, named endpoint by endpoint, with its own habits.

It keeps its refresh tokens (no rotation), answers without an ID token when
``openid`` is not asked, and puts userinfo on another host than the API.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from pytest_httpx import HTTPXMock

from aps import _connect
from aps.errors import RequestError
from aps.settings import Settings

IDP = "https://login.example.org/oauth2"
API = "https://api.example.org"


@pytest.fixture
def settings(home: Path) -> Settings:
    return Settings(
        client_id="generic-app",
        base_url=API,
        authorize_url=f"{IDP}/auth",
        token_url=f"{IDP}/token",
        revoke_url=f"{IDP}/revoke",
        userinfo_url=f"{IDP}/me",
        keys_url=f"{IDP}/jwks",
        scopes=["profile", "email", "files"],
        secret_key="a passphrase for the test store",
    )


def test_sign_in_refresh_and_requests_against_another_server(
    settings: Settings, httpx_mock: HTTPXMock
) -> None:
    def paste(url: str) -> str:
        assert url.startswith(f"{IDP}/auth?")
        state = parse_qs(urlsplit(url).query)["state"][0]
        return f"{settings.callback_url}?code=c-1&state={state}"

    httpx_mock.add_response(
        url=f"{IDP}/token",
        json={"access_token": "a-1", "expires_in": 0, "refresh_token": "keep-me"},
    )
    httpx_mock.add_response(
        url=f"{IDP}/me", json={"sub": "u-7", "email": "kim@example.org", "name": "Kim"}
    )
    conn = _connect.sign_in(settings, browser=None, paste=paste)
    assert (conn.user, conn.name) == ("kim@example.org", "Kim")

    # Its refresh answers carry no new refresh token: the old one stays.
    httpx_mock.add_response(
        url=f"{IDP}/token", json={"access_token": "a-2", "expires_in": 3600}
    )
    httpx_mock.add_response(url=f"{API}/files", json={"data": []})
    assert conn.get("/files").status_code == 200  # the first token had expired
    stored = _connect.store_for(settings).get("kim@example.org", "generic-app")
    assert stored is not None
    assert (stored.access_token, stored.refresh_token) == ("a-2", "keep-me")

    refresh = httpx_mock.get_requests(url=f"{IDP}/token")[-1]
    form = parse_qs(refresh.content.decode())
    assert form["grant_type"] == ["refresh_token"]
    assert form["client_id"] == ["generic-app"]
    api_call = httpx_mock.get_requests(url=f"{API}/files")[0]
    assert api_call.headers["Authorization"] == "Bearer a-2"
    assert not [r for r in httpx_mock.get_requests() if "jwks" in str(r.url)]


def test_the_token_is_refused_to_a_third_host(
    settings: Settings, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(
        url=f"{IDP}/token", json={"access_token": "a-1", "refresh_token": "r"}
    )
    httpx_mock.add_response(url=f"{IDP}/me", json={"email": "kim@example.org"})
    conn = _connect.sign_in(
        settings,
        browser=None,
        paste=lambda url: "http://localhost:8080/?code=c&state="
        + parse_qs(urlsplit(url).query)["state"][0],
    )
    with pytest.raises(RequestError, match="Refusing to send"):
        conn.get("https://tracker.example.net/collect")
