"""The sign-in without a network: the authorize URL, answers, and paste mode."""

from __future__ import annotations

import base64
import hashlib
import io
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from loguru import logger
from pytest_httpx import HTTPXMock

from aps.errors import AuthenticationError, SettingsError, SignInRefused
from aps.settings import Settings
from aps.signin import (
    Attempt,
    StateMismatch,
    authorize_url,
    code_from,
    sign_in,
)
from aps.tokens import TokenClient

BASE = "https://auth.example.test"
TOKEN_URL = f"{BASE}/authentication/v2/token"
KEYS_URL = f"{BASE}/authentication/v2/keys"
CODE = "the-authorization-code"
ACCESS = "the-access-token"
SCOPES = ("data:read", "openid")

KEY = RSAKey.generate_key(2048, parameters={"kid": "k1", "alg": "RS256"})
OTHER_KEY = RSAKey.generate_key(2048, parameters={"kid": "k1", "alg": "RS256"})


def settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "client_id": "app-id",
        "base_url": BASE,
        "scopes": SCOPES,
        **overrides,
    }
    return Settings(**values)


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def id_token(nonce: str | None, key: RSAKey = KEY, **claims: Any) -> str:
    payload = {
        "iss": BASE,
        "sub": "USER42",
        "aud": "app-id",
        "exp": int(time.time()) + 600,
        "iat": int(time.time()),
        **claims,
    }
    if nonce is not None:
        payload.setdefault("nonce", nonce)
    return jwt.encode({"alg": "RS256", "kid": "k1"}, payload, key)


class User:
    """Signs in on "another machine": reads the URL, pastes the redirect back."""

    def __init__(self, answer: Callable[[dict[str, str]], dict[str, str]]) -> None:
        self.answer = answer
        self.sent: dict[str, str] = {}

    def __call__(self, url: str) -> str:
        self.sent = query_of(url)
        return f"http://localhost:8080/?{urlencode(self.answer(self.sent))}"


def allowing(sent: dict[str, str]) -> dict[str, str]:
    return {"code": CODE, "state": sent["state"]}


def serve_tokens(
    httpx_mock: HTTPXMock, user: User, make_id_token: Callable[[str], str] | None
) -> None:
    def respond(request: httpx.Request) -> httpx.Response:
        body: dict[str, Any] = {
            "access_token": ACCESS,
            "token_type": "Bearer",
            "expires_in": 3599,
            "refresh_token": "the-refresh-token",
        }
        if make_id_token is not None:
            body["id_token"] = make_id_token(user.sent["nonce"])
        return httpx.Response(200, json=body)

    httpx_mock.add_callback(respond, url=TOKEN_URL, method="POST")
    if make_id_token is not None:
        jwks = KeySet([KEY]).as_dict(private=False)
        httpx_mock.add_response(url=KEYS_URL, method="GET", json=jwks)


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


def run(config: Settings, http: httpx.Client, user: User, **options: Any) -> Any:
    return sign_in(config, TokenClient(config, http), http, paste=user, **options)


# The authorize URL.


def test_authorize_url_carries_every_parameter() -> None:
    config = settings(callback_url="http://localhost:9123/callback")
    attempt = Attempt.new(config.scopes)

    url = authorize_url(config, attempt, prompt="login")

    assert url.startswith(f"{BASE}/authentication/v2/authorize?")
    assert query_of(url) == {
        "response_type": "code",
        "client_id": "app-id",
        "redirect_uri": "http://localhost:9123/callback",
        "scope": "data:read openid",
        "state": attempt.state,
        "nonce": attempt.nonce,
        "code_challenge": attempt.challenge,
        "code_challenge_method": "S256",
        "prompt": "login",
    }


def test_challenge_is_the_s256_digest_of_the_verifier() -> None:
    attempt = Attempt.new(SCOPES)

    digest = hashlib.sha256(attempt.verifier.encode("ascii")).digest()
    expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    assert 43 <= len(attempt.verifier) <= 128
    assert query_of(authorize_url(settings(), attempt, None))["code_challenge"] == (
        expected
    )


def test_nonce_only_when_openid_is_asked() -> None:
    without = settings(scopes=("data:read",))
    query = query_of(authorize_url(without, Attempt.new(without.scopes), None))

    assert "nonce" not in query
    assert "prompt" not in query


def test_each_attempt_has_its_own_values() -> None:
    first, second = Attempt.new(SCOPES), Attempt.new(SCOPES)

    assert first.state != second.state
    assert first.verifier != second.verifier
    assert first.nonce != second.nonce
    assert first.verifier not in repr(first)


# Answers.


def test_answer_with_the_right_state_gives_the_code() -> None:
    assert code_from(urlencode({"code": CODE, "state": "s1"}), "s1") == CODE


@pytest.mark.parametrize(
    "query", ["code=abc&state=other", "code=abc", "state=&code=abc", "error=x"]
)
def test_answer_for_another_sign_in_is_a_mismatch(query: str) -> None:
    with pytest.raises(StateMismatch, match="does not belong to this sign-in"):
        code_from(query, "s1")


def test_denied_consent_is_refused_with_the_next_step() -> None:
    with pytest.raises(SignInRefused) as caught:
        code_from("error=access_denied&state=s1", "s1")

    assert str(caught.value) == (
        "Sign-in was refused: consent was denied in the browser. Run the command "
        "again and choose Allow."
    )


def test_other_errors_name_the_code_and_a_short_description() -> None:
    query = urlencode(
        {"error": "invalid_scope", "error_description": "Bad scope.", "state": "s1"}
    )
    with pytest.raises(SignInRefused, match=r"\(invalid_scope: Bad scope\.\)"):
        code_from(query, "s1")


def test_long_descriptions_and_codes_stay_out_of_the_message() -> None:
    query = urlencode(
        {
            "error": "server_error",
            "error_description": "x" * 500,
            "state": "s1",
            "code": CODE,
        }
    )
    with pytest.raises(SignInRefused) as caught:
        code_from(query, "s1")

    assert "(server_error)" in str(caught.value)
    assert "xxx" not in str(caught.value)
    assert CODE not in str(caught.value)


def test_answer_without_code_or_error_is_an_error() -> None:
    with pytest.raises(AuthenticationError, match="neither a code nor an error"):
        code_from("state=s1", "s1")


# Paste mode, against a mocked token endpoint and key set.


def test_paste_mode_signs_in_and_verifies_the_id_token(
    httpx_mock: HTTPXMock, http: httpx.Client
) -> None:
    user = User(allowing)
    serve_tokens(httpx_mock, user, id_token)

    result = run(settings(), http, user, prompt="create")

    assert result.tokens.access_token == ACCESS
    assert result.claims["sub"] == "USER42"
    assert user.sent["prompt"] == "create"


def test_the_code_and_verifier_reach_the_token_endpoint(
    httpx_mock: HTTPXMock, http: httpx.Client
) -> None:
    user = User(allowing)
    serve_tokens(httpx_mock, user, None)

    run(settings(scopes=("data:read",)), http, user)

    form = parse_qs(httpx_mock.get_requests(url=TOKEN_URL)[0].content.decode())
    verifier = form["code_verifier"][0]
    digest = hashlib.sha256(verifier.encode()).digest()
    assert form["code"] == [CODE]
    assert form["redirect_uri"] == ["http://localhost:8080/"]
    assert (
        base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        == (user.sent["code_challenge"])
    )


def test_without_openid_there_are_no_claims(
    httpx_mock: HTTPXMock, http: httpx.Client
) -> None:
    user = User(allowing)
    serve_tokens(httpx_mock, user, None)

    result = run(settings(scopes=("data:read",)), http, user)

    assert result.claims == {}
    assert not httpx_mock.get_requests(url=KEYS_URL)


def test_public_app_sends_its_id_in_the_body_only(
    httpx_mock: HTTPXMock, http: httpx.Client
) -> None:
    user = User(allowing)
    serve_tokens(httpx_mock, user, None)

    run(settings(scopes=("data:read",)), http, user)

    request = httpx_mock.get_requests(url=TOKEN_URL)[0]
    assert parse_qs(request.content.decode())["client_id"] == ["app-id"]
    assert "Authorization" not in request.headers


def test_confidential_app_sends_basic_and_no_id_in_the_body(
    httpx_mock: HTTPXMock, http: httpx.Client
) -> None:
    user = User(allowing)
    serve_tokens(httpx_mock, user, None)

    run(settings(scopes=("data:read",), client_secret="s3cret"), http, user)

    request = httpx_mock.get_requests(url=TOKEN_URL)[0]
    basic = base64.b64encode(b"app-id:s3cret").decode()
    assert request.headers["Authorization"] == f"Basic {basic}"
    assert "client_id" not in parse_qs(request.content.decode())


@pytest.mark.parametrize(
    ("make_id_token", "reason"),
    [
        (lambda nonce: id_token("another-nonce"), "'nonce' claim"),
        (lambda nonce: id_token(nonce, aud="another-app"), "'aud' claim"),
        (lambda nonce: id_token(nonce, exp=int(time.time()) - 3600), "expired"),
        (lambda nonce: id_token(nonce, key=OTHER_KEY), "signature"),
        (lambda nonce: id_token(None), "'nonce' claim"),
        (lambda nonce: id_token(nonce, iss="https://elsewhere.example"), "'iss'"),
    ],
    ids=["nonce", "aud", "exp", "signature", "no-nonce", "issuer"],
)
def test_an_unverifiable_id_token_is_refused(
    httpx_mock: HTTPXMock,
    http: httpx.Client,
    make_id_token: Callable[[str], str],
    reason: str,
) -> None:
    user = User(allowing)
    serve_tokens(httpx_mock, user, make_id_token)

    with pytest.raises(AuthenticationError) as caught:
        run(settings(), http, user)

    assert str(caught.value).startswith("The ID token could not be verified")
    assert reason in str(caught.value)
    assert "APS_KEYS_URL" in str(caught.value)


def test_unreachable_keys_are_an_error_naming_the_setting(
    httpx_mock: HTTPXMock, http: httpx.Client
) -> None:
    user = User(allowing)
    httpx_mock.add_callback(
        lambda request: httpx.Response(
            200, json={"access_token": ACCESS, "id_token": id_token(user.sent["nonce"])}
        ),
        url=TOKEN_URL,
    )
    httpx_mock.add_response(url=KEYS_URL, status_code=404)

    with pytest.raises(AuthenticationError, match=r"HTTP 404.*APS_KEYS_URL"):
        run(settings(), http, user)


def test_denied_consent_in_paste_mode_asks_for_no_tokens(
    httpx_mock: HTTPXMock, http: httpx.Client
) -> None:
    user = User(lambda sent: {"error": "access_denied", "state": sent["state"]})

    with pytest.raises(SignInRefused, match="choose Allow"):
        run(settings(), http, user)

    assert not httpx_mock.get_requests()


def test_pasted_answer_of_another_sign_in_is_refused(
    httpx_mock: HTTPXMock, http: httpx.Client
) -> None:
    user = User(lambda sent: {"code": CODE, "state": "stale"})

    with pytest.raises(StateMismatch):
        run(settings(), http, user)

    assert not httpx_mock.get_requests()


def test_a_pasted_query_string_is_enough(
    httpx_mock: HTTPXMock, http: httpx.Client
) -> None:
    seen = User(allowing)
    serve_tokens(httpx_mock, seen, None)

    def paste(url: str) -> str:
        seen(url)
        return f"  code={CODE}&state={seen.sent['state']}\n"

    config = settings(scopes=("data:read",))
    result = sign_in(config, TokenClient(config, http), http, paste=paste)

    assert result.tokens.access_token == ACCESS


def test_no_secret_is_logged(httpx_mock: HTTPXMock, http: httpx.Client) -> None:
    user = User(allowing)
    serve_tokens(httpx_mock, user, id_token)
    lines = io.StringIO()
    sink = logger.add(lines, level="TRACE", format="{message}")
    try:
        result = run(settings(), http, user)
    finally:
        logger.remove(sink)

    written = lines.getvalue()
    assert "trading it for tokens" in written
    secrets = [
        CODE,
        ACCESS,
        user.sent["state"],
        user.sent["nonce"],
        user.sent["code_challenge"],
        result.tokens.id_token,
    ]
    assert not [secret for secret in secrets if secret in written]


# Settings the listener cannot honour.


@pytest.mark.parametrize(
    "callback",
    ["http://example.com:8080/", "http://192.168.1.5:8080/", "https://localhost:8080/"],
)
def test_a_callback_that_cannot_be_answered_here_is_refused(
    http: httpx.Client, callback: str
) -> None:
    config = settings(callback_url=callback)

    with pytest.raises(SettingsError, match="APS_CALLBACK_URL"):
        sign_in(
            config,
            TokenClient(config, http),
            http,
            browser=None,
        )


@pytest.mark.parametrize("timeout", [0, -1, 300, 600])
def test_timeout_must_stay_below_the_code_lifetime(
    http: httpx.Client, timeout: float
) -> None:
    config = settings()

    with pytest.raises(ValueError, match="lifetime of an authorization code"):
        sign_in(config, TokenClient(config, http), http, timeout=timeout)
