"""The token endpoint client: one way of client authentication, retries, errors."""

from __future__ import annotations

import base64

import httpx
import pytest
from pytest_httpx import HTTPXMock

from aps import retry
from aps.database import SQLITE_BUSY_MS
from aps.errors import AuthenticationError, RequestError
from aps.settings import Settings
from aps.tokens import REFRESH_POLICY, GrantRefused, TokenClient

TOKEN_URL = "https://developer.api.autodesk.com/authentication/v2/token"
ANSWER = {
    "access_token": "at-1",
    "token_type": "Bearer",
    "expires_in": 3599,
    "refresh_token": "rt-2",
}


def _form(request: httpx.Request) -> dict[str, str]:
    pairs = httpx.QueryParams(request.content.decode())
    return dict(pairs.multi_items())


def test_public_app_sends_client_id_in_the_body_only(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=TOKEN_URL, json=ANSWER)
    with httpx.Client() as http:
        tokens = TokenClient(Settings(client_id="desk"), http).refresh(
            "rt-1", ["data:read"]
        )

    request = httpx_mock.get_request()
    assert request is not None
    assert "Authorization" not in request.headers
    assert _form(request) == {
        "grant_type": "refresh_token",
        "refresh_token": "rt-1",
        "scope": "data:read",
        "client_id": "desk",
    }
    assert (tokens.access_token, tokens.refresh_token) == ("at-1", "rt-2")


def test_confidential_app_sends_basic_and_no_client_id(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=TOKEN_URL, json=ANSWER)
    settings = Settings(client_id="web", client_secret="s3cret")
    with httpx.Client() as http:
        TokenClient(settings, http).exchange_code(
            "c0de", "v" * 43, "http://localhost:8080/", []
        )

    request = httpx_mock.get_request()
    assert request is not None
    expected = base64.b64encode(b"web:s3cret").decode()
    assert request.headers["Authorization"] == f"Basic {expected}"
    form = _form(request)
    assert "client_id" not in form
    assert "client_secret" not in form
    assert form["code_verifier"] == "v" * 43


def test_invalid_grant_is_its_own_error_and_quotes_no_token(
    httpx_mock: HTTPXMock,
) -> None:
    httpx_mock.add_response(
        url=TOKEN_URL,
        status_code=400,
        json={"error": "invalid_grant", "error_description": "token rt-dead is spent"},
    )
    with httpx.Client() as http, pytest.raises(GrantRefused) as caught:
        TokenClient(Settings(client_id="desk"), http).refresh("rt-dead", [])
    assert "rt-dead" not in str(caught.value)
    assert "apshooks login" in str(caught.value)


def test_throttled_requests_wait_as_told_then_succeed(
    httpx_mock: HTTPXMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    waits: list[float] = []
    monkeypatch.setattr(retry.time, "sleep", waits.append)
    httpx_mock.add_response(
        url=TOKEN_URL,
        status_code=429,
        headers={"Retry-After": "3"},
        json={"developerMessage": "Quota limit exceeded."},
    )
    httpx_mock.add_response(url=TOKEN_URL, status_code=503)
    httpx_mock.add_response(url=TOKEN_URL, json=ANSWER)

    with httpx.Client() as http:
        tokens = TokenClient(Settings(client_id="desk"), http).refresh("rt-1", [])

    assert tokens.access_token == "at-1"
    assert waits[0] == 3.0
    assert 0 < waits[1] <= retry.DEFAULT_POLICY.base_delay * 2


def test_retries_run_out_with_a_clear_error(
    httpx_mock: HTTPXMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retry.time, "sleep", lambda _: None)
    for _ in range(REFRESH_POLICY.attempts):
        httpx_mock.add_response(url=TOKEN_URL, status_code=502)
    with httpx.Client() as http, pytest.raises(RequestError) as caught:
        TokenClient(Settings(client_id="desk"), http).refresh("rt-1", [])
    assert caught.value.status == 502
    assert "try again" in str(caught.value)


def test_a_refresh_gives_up_before_the_store_lock_would(
    httpx_mock: HTTPXMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    waits: list[float] = []
    monkeypatch.setattr(retry.time, "sleep", waits.append)
    for _ in range(REFRESH_POLICY.attempts):
        httpx_mock.add_response(
            url=TOKEN_URL, status_code=429, headers={"Retry-After": "600"}
        )
    with httpx.Client() as http, pytest.raises(RequestError):
        TokenClient(Settings(client_id="desk"), http).refresh("rt-1", [])
    worst = REFRESH_POLICY.attempts * REFRESH_POLICY.timeout + sum(waits)
    assert worst < SQLITE_BUSY_MS / 1000


def test_no_client_id_says_how_to_set_one() -> None:
    with (
        httpx.Client() as http,
        pytest.raises(AuthenticationError, match="APS_CLIENT_ID"),
    ):
        TokenClient(Settings(), http)
