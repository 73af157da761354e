"""How fast the sandbox answers, relative to its cheapest request.

Run: .venv/bin/python bench/sandbox.py

The baseline is GET of the discovery document, measured in the same run over
the same keep-alive connection; every other figure is a multiple of it, so
the numbers compare across machines.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import httpx

from aps.sandbox import Sandbox

ROUNDS = 300


def per_call(action: Callable[[], object], rounds: int = ROUNDS) -> float:
    """The median seconds of one call, over ``rounds`` calls."""
    timings = []
    for _ in range(rounds):
        started = time.perf_counter()
        action()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def main() -> None:
    with Sandbox.start() as sandbox, httpx.Client(base_url=sandbox.url) as http:
        tokens = sandbox.consent("jane@example.com")
        headers = {"Authorization": f"Bearer {tokens['access_token']}"}
        current = {"refresh": tokens["refresh_token"]}

        def refresh() -> None:
            form = {
                "grant_type": "refresh_token",
                "refresh_token": current["refresh"],
                "client_id": sandbox.client_id,
            }
            current["refresh"] = http.post(
                "/authentication/v2/token", data=form
            ).json()["refresh_token"]

        baseline = per_call(lambda: http.get("/.well-known/openid-configuration"))
        figures = {
            "hub list (bearer check + JSON:API)": per_call(
                lambda: http.get("/project/v1/hubs", headers=headers)
            ),
            "token refresh": per_call(refresh),
            "sign-in without a page (consent())": per_call(
                lambda: sandbox.consent("jane@example.com"), rounds=50
            ),
        }

    started: list[Sandbox] = []
    figures["Sandbox.start()"] = per_call(lambda: started.append(Sandbox.start()), 20)
    figures["Sandbox.stop()"] = per_call(lambda: started.pop().stop(), 20)

    print(f"baseline: discovery GET, median {baseline * 1e3:.2f} ms")
    for name, seconds in figures.items():
        print(f"{name}: {seconds / baseline:.1f}x baseline")


if __name__ == "__main__":
    main()
