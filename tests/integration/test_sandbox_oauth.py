"""The sandbox's authentication endpoints, over real loopback HTTP."""

from __future__ import annotations

import socket
import time

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from sandbox_client import (
    PUBLIC_CALLBACK,
    PUBLIC_ID,
    TOKEN,
    WEB_CALLBACK,
    WEB_ID,
    attempt,
    basic,
    bearer,
    exchange,
    query_of,
    refresh,
    sign_in,
    tokens_for,
)

from aps.sandbox import Lifetimes, Sandbox

HUBS = "/project/v1/hubs"
INTROSPECT = "/authentication/v2/introspect"


def test_discovery_names_the_sandbox_endpoints(
    sandbox: Sandbox, http: httpx.Client
) -> None:
    document = http.get("/.well-known/openid-configuration").json()

    assert document["issuer"] == sandbox.url
    assert document["token_endpoint"] == f"{sandbox.url}/authentication/v2/token"
    assert document["revoke_endpoint"] == document["revocation_endpoint"]
    assert document["userinfo_endpoint"] == f"{sandbox.url}/userinfo"
    keys = http.get(document["jwks_uri"]).json()["keys"]
    assert [(key["kty"], key["alg"]) for key in keys] == [("RSA", "RS256")]


def test_public_app_signs_in_with_pkce_and_gets_a_signed_id_token(
    sandbox: Sandbox, http: httpx.Client
) -> None:
    tried = attempt()
    callback = sign_in(http, tried, "jane@example.com")
    assert callback["state"] == tried.state

    answer = exchange(http, tried, callback["code"])
    body = answer.json()
    assert answer.status_code == 200
    assert set(body) == {
        "access_token",
        "token_type",
        "expires_in",
        "refresh_token",
        "id_token",
    }
    assert (body["token_type"], body["expires_in"]) == ("Bearer", 3599)

    keys = KeySet.import_key_set(http.get("/authentication/v2/keys").json())
    claims = jwt.decode(body["id_token"], keys, algorithms=["RS256"]).claims
    profile = http.get("/userinfo", headers=bearer(body["access_token"])).json()
    assert claims["nonce"] == tried.query["nonce"]
    assert claims["aud"] == PUBLIC_ID
    assert claims["iss"] == sandbox.url
    assert (claims["sub"], claims["email"]) == (profile["sub"], "jane@example.com")


def test_confidential_app_signs_in_with_basic_auth(http: httpx.Client) -> None:
    tried = attempt(WEB_ID, WEB_CALLBACK, "data:read", pkce=False)
    code = sign_in(http, tried, "john@example.com")["code"]

    answer = exchange(http, tried, code, confidential=True)
    assert answer.status_code == 200
    assert "id_token" not in answer.json()

    refreshed = http.post(
        TOKEN,
        data={
            "grant_type": "refresh_token",
            "refresh_token": answer.json()["refresh_token"],
        },
        headers=basic(),
    )
    assert refreshed.status_code == 200


def test_confidential_app_without_its_secret_is_refused(http: httpx.Client) -> None:
    tried = attempt(WEB_ID, WEB_CALLBACK, "data:read")
    code = sign_in(http, tried, "john@example.com")["code"]

    answer = exchange(http, tried, code)  # client_id in the body, no secret

    assert answer.status_code in (400, 401)
    assert answer.json()["error"] == "invalid_client"


def test_credentials_in_both_places_are_a_400(http: httpx.Client) -> None:
    tried = attempt(WEB_ID, WEB_CALLBACK, "data:read")
    code = sign_in(http, tried, "john@example.com")["code"]
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": WEB_CALLBACK,
        "code_verifier": tried.verifier,
        "client_id": WEB_ID,
    }

    answer = http.post(TOKEN, data=form, headers=basic())

    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_request"
    assert exchange(http, tried, code, confidential=True).status_code == 200


def test_wrong_pkce_verifier_is_refused(http: httpx.Client) -> None:
    tried = attempt()
    code = sign_in(http, tried, "jane@example.com")["code"]
    tried.verifier = attempt().verifier

    answer = exchange(http, tried, code)

    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"


def test_a_code_works_once(http: httpx.Client) -> None:
    tried = attempt()
    code = sign_in(http, tried, "jane@example.com")["code"]

    assert exchange(http, tried, code).status_code == 200
    assert exchange(http, tried, code).json()["error"] == "invalid_grant"


def test_refresh_gives_new_tokens_and_no_id_token(http: httpx.Client) -> None:
    first = tokens_for(http)

    answer = refresh(http, first["refresh_token"], scope="data:read")

    body = answer.json()
    assert answer.status_code == 200
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert body["refresh_token"] != first["refresh_token"]
    assert http.get(HUBS, headers=bearer(body["access_token"])).status_code == 200


def test_refresh_asking_for_more_scopes_is_refused_and_costs_nothing(
    http: httpx.Client,
) -> None:
    first = tokens_for(http, scope="data:read openid")

    wider = refresh(http, first["refresh_token"], scope="data:read data:write")

    assert wider.json()["error"] == "invalid_scope"
    assert refresh(http, first["refresh_token"]).status_code == 200


def test_reusing_a_refresh_token_revokes_the_whole_consent(http: httpx.Client) -> None:
    first = tokens_for(http)
    second = refresh(http, first["refresh_token"]).json()

    reused = refresh(http, first["refresh_token"])

    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant"
    assert refresh(http, second["refresh_token"]).status_code == 400
    for token in (first, second):
        assert http.get(HUBS, headers=bearer(token["access_token"])).status_code == 401


def test_other_consents_survive_a_revoked_one(http: httpx.Client) -> None:
    victim, bystander = tokens_for(http), tokens_for(http)
    refresh(http, victim["refresh_token"])
    refresh(http, victim["refresh_token"])

    answer = http.get(HUBS, headers=bearer(bystander["access_token"]))

    assert answer.status_code == 200


def test_access_token_expires() -> None:
    with (
        Sandbox.start(lifetimes=Lifetimes(access=1.0)) as sandbox,
        httpx.Client(base_url=sandbox.url) as http,
    ):
        token = tokens_for(http)
        assert token["expires_in"] == 1
        assert http.get(HUBS, headers=bearer(token["access_token"])).status_code == 200

        # Nothing can be awaited on a clock, so poll until a deadline.
        deadline = time.monotonic() + 5
        status = 200
        while status == 200 and time.monotonic() < deadline:
            time.sleep(0.1)
            status = http.get(HUBS, headers=bearer(token["access_token"])).status_code

        assert status == 401
        assert refresh(http, token["refresh_token"]).status_code == 200


def test_refresh_token_expires_and_the_consent_with_it() -> None:
    with (
        Sandbox.start(lifetimes=Lifetimes(refresh=0.5)) as sandbox,
        httpx.Client(base_url=sandbox.url) as http,
    ):
        token = tokens_for(http)
        form = {"token": token["refresh_token"], "client_id": PUBLIC_ID}
        assert http.post(INTROSPECT, data=form).json()["active"] is True

        # Nothing can be awaited on a clock, so poll until a deadline.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if not http.post(INTROSPECT, data=form).json()["active"]:
                break
            time.sleep(0.1)

        assert refresh(http, token["refresh_token"]).json()["error"] == "invalid_grant"


def test_deny_redirects_with_access_denied(http: httpx.Client) -> None:
    tried = attempt()

    callback = sign_in(http, tried, "jane@example.com", decision="deny")

    assert callback["error"] == "access_denied"
    assert callback["state"] == tried.state
    assert "code" not in callback


@pytest.mark.parametrize(
    ("client_id", "redirect_uri"),
    [("no-such-app", PUBLIC_CALLBACK), (PUBLIC_ID, "http://attacker.test/cb")],
)
def test_unknown_app_or_callback_gets_a_page_not_a_redirect(
    http: httpx.Client, client_id: str, redirect_uri: str
) -> None:
    tried = attempt(client_id, redirect_uri)

    answer = http.get("/authentication/v2/authorize", params=tried.query)

    assert answer.status_code == 400
    assert "location" not in answer.headers
    assert "refused" in answer.text


def test_public_app_without_pkce_is_sent_back_with_invalid_request(
    http: httpx.Client,
) -> None:
    tried = attempt(pkce=False)

    answer = http.get("/authentication/v2/authorize", params=tried.query)

    callback = query_of(answer.headers["location"])
    assert answer.headers["location"].startswith(PUBLIC_CALLBACK)
    assert (callback["error"], callback["state"]) == ("invalid_request", tried.state)


def test_consent_page_shows_the_app_the_scopes_and_the_users(
    http: httpx.Client,
) -> None:
    answer = http.get("/authentication/v2/authorize", params=attempt().query)

    assert answer.status_code == 200
    for text in ("apshooks sandbox", "data:read", "Jane Doe", "John Smith"):
        assert text in answer.text
    assert 'id="allow"' in answer.text
    assert 'id="deny"' in answer.text


def test_auto_consent_redirects_at_once_for_that_user() -> None:
    with (
        Sandbox.start(auto_consent="john@example.com") as sandbox,
        httpx.Client(base_url=sandbox.url) as http,
    ):
        tried = attempt()
        answer = http.get("/authentication/v2/authorize", params=tried.query)
        callback = query_of(answer.headers["location"])
        tokens = exchange(http, tried, callback["code"]).json()
        profile = http.get("/userinfo", headers=bearer(tokens["access_token"]))

        assert callback["state"] == tried.state
        assert profile.json()["email"] == "john@example.com"


def test_revoking_a_refresh_token_ends_the_consent(http: httpx.Client) -> None:
    tokens = tokens_for(http)
    form = {"token": tokens["refresh_token"], "token_type_hint": "refresh_token"}

    answer = http.post(
        "/authentication/v2/revoke", data={**form, "client_id": PUBLIC_ID}
    )

    assert answer.status_code == 200
    assert http.get(HUBS, headers=bearer(tokens["access_token"])).status_code == 401
    assert refresh(http, tokens["refresh_token"]).status_code == 400


def test_introspection_tells_active_from_revoked(http: httpx.Client) -> None:
    tokens = tokens_for(http)

    def introspect() -> dict[str, object]:
        form = {"token": tokens["access_token"], "client_id": PUBLIC_ID}
        body: dict[str, object] = http.post(
            "/authentication/v2/introspect", data=form
        ).json()
        return body

    assert introspect()["active"] is True
    assert introspect()["username"] == "jane@example.com"
    http.post(
        "/authentication/v2/revoke",
        data={"token": tokens["access_token"], "client_id": PUBLIC_ID},
    )
    assert introspect() == {"active": False}


def test_userinfo_needs_the_user_profile_scope(http: httpx.Client) -> None:
    tokens = tokens_for(http, scope="data:read")

    answer = http.get("/userinfo", headers=bearer(tokens["access_token"]))

    assert answer.status_code == 403


def test_consent_helper_gives_working_tokens_without_counting_requests(
    sandbox: Sandbox, http: httpx.Client
) -> None:
    tokens = sandbox.consent("jane@example.com")

    assert {"access_token", "refresh_token", "expires_in", "id_token"} <= set(tokens)
    assert sandbox.token_requests == 0
    assert refresh(http, tokens["refresh_token"]).status_code == 200
    assert sandbox.token_requests == 1
    assert sandbox.requests[("POST", TOKEN)] == 1


def test_consent_helper_works_for_the_confidential_app(sandbox: Sandbox) -> None:
    tokens = sandbox.consent("john@example.com", client_id=WEB_ID, scopes="data:read")

    assert "id_token" not in tokens
    assert tokens["token_type"] == "Bearer"


def test_settings_and_environment_point_at_the_sandbox(sandbox: Sandbox) -> None:
    settings = sandbox.settings(client_id="apshooks-web")

    assert settings.token_endpoint == f"{sandbox.url}/authentication/v2/token"
    assert settings.userinfo_endpoint == f"{sandbox.url}/userinfo"
    assert settings.client_id == "apshooks-web"
    assert sandbox.environment()["APS_BASE_URL"] == sandbox.url
    assert sandbox.environment()["APS_CLIENT_ID"] == sandbox.client_id == PUBLIC_ID


def test_extra_callback_urls_are_registered_for_every_app() -> None:
    extra = "http://127.0.0.1:50123/callback"
    with (
        Sandbox.start(callback_urls=[extra]) as sandbox,
        httpx.Client(base_url=sandbox.url) as http,
    ):
        for client_id in (PUBLIC_ID, WEB_ID):
            callback = sign_in(http, attempt(client_id, extra), "jane@example.com")
            assert "code" in callback


def test_stopping_releases_the_port_and_drops_open_connections() -> None:
    sandbox = Sandbox.start()
    port = int(sandbox.url.rsplit(":", 1)[1])
    discovery = f"{sandbox.url}/.well-known/openid-configuration"
    with httpx.Client() as kept_alive:
        assert kept_alive.get(discovery).status_code == 200
        sandbox.stop()

        with pytest.raises(httpx.TransportError):
            kept_alive.get(discovery)

    with socket.create_server(("127.0.0.1", port)):
        pass
