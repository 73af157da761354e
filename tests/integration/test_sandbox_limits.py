"""Rate limits: over the quota the sandbox answers 429 with Retry-After."""

from __future__ import annotations

import httpx
from sandbox_client import bearer

from aps.sandbox import RateLimit, Sandbox

HUBS = "/project/v1/hubs"


def test_over_the_limit_is_a_429_with_retry_after() -> None:
    with Sandbox.start(rate_limits={"hubs": 2}) as sandbox, httpx.Client() as http:
        headers = bearer(sandbox.consent("jane@example.com")["access_token"])
        answers = [http.get(f"{sandbox.url}{HUBS}", headers=headers) for _ in range(3)]

    assert [answer.status_code for answer in answers] == [200, 200, 429]
    refused = answers[-1]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.json()["developerMessage"] == "Quota limit exceeded."


def test_a_limit_covers_its_endpoint_only() -> None:
    with Sandbox.start(rate_limits={"token": 1}) as sandbox, httpx.Client() as http:
        headers = bearer(sandbox.consent("jane@example.com")["access_token"])
        hubs = [http.get(f"{sandbox.url}{HUBS}", headers=headers) for _ in range(3)]
        tokens = [
            http.post(f"{sandbox.url}/authentication/v2/token", data={})
            for _ in range(2)
        ]

    assert {answer.status_code for answer in hubs} == {200}
    assert tokens[0].status_code == 400  # counted, then refused as malformed
    assert tokens[1].status_code == 429


def test_a_fixed_window_refuses_until_it_ends() -> None:
    limits = {"hubs": RateLimit(1, window="fixed", period=3600)}
    with Sandbox.start(rate_limits=limits) as sandbox, httpx.Client() as http:
        headers = bearer(sandbox.consent("jane@example.com")["access_token"])
        first = http.get(f"{sandbox.url}{HUBS}", headers=headers)
        second = http.get(f"{sandbox.url}{HUBS}", headers=headers)

    assert (first.status_code, second.status_code) == (200, 429)
    assert 1 <= int(second.headers["Retry-After"]) <= 3600


def test_the_aps_preset_allows_50_hub_calls_a_minute() -> None:
    with Sandbox.start(rate_limits="aps") as sandbox, httpx.Client() as http:
        headers = bearer(sandbox.consent("jane@example.com")["access_token"])
        statuses = [
            http.get(f"{sandbox.url}{HUBS}", headers=headers).status_code
            for _ in range(51)
        ]

    assert statuses.count(200) == 50
    assert statuses[-1] == 429
