"""Session-layer benchmarks, each against a baseline measured in the same run.

    .venv/bin/python bench/bench_session.py

1. Token requests per access-token expiry with 4 processes x 8 threads on one
   stored session, against a naive client in which every thread refreshes its
   own token (goal: exactly 1 against 32).
2. Requests per second through ``conn.get`` against plain ``httpx.Client.get``
   on the same loopback sandbox (goal: at least 0.9).
3. Requests ``aps.connect()`` makes with a valid stored session before first
   use, against a first sign-in (goal: 0).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import httpx

import aps
from aps.sandbox import Lifetimes, Sandbox, free_callback_url

JANE = "jane@example.com"
PROCESSES, THREADS = 4, 8
ACCESS_LIFETIME = 3.0
DURATION = 10.0

# Each script prints how many access tokens one of its threads saw: the number
# of expiry windows it lived through. Only the count leaves the process.
OURS = """
import sys, threading, time, aps
conn = aps.connect(browser=lambda url: sys.exit("the browser was opened"))
end = time.monotonic() + {duration}
seen = []
def work():
    tokens = set()
    while time.monotonic() < end:
        tokens.add(conn.headers["Authorization"])
        time.sleep(0.005)
    seen.append(len(tokens))
threads = [threading.Thread(target=work) for _ in range({threads})]
for t in threads: t.start()
for t in threads: t.join()
print(max(seen))
"""

NAIVE = """
import json, sys, threading, time, httpx
token_url, client_id, grants = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
end = time.monotonic() + {duration}
seen = []
def work(grant):
    refresh, expires = grant["refresh_token"], time.time() + grant["expires_in"]
    count = 1
    with httpx.Client() as http:
        while time.monotonic() < end:
            if time.time() > expires:
                body = http.post(token_url, data={{"grant_type": "refresh_token",
                    "refresh_token": refresh, "client_id": client_id}}).json()
                refresh = body["refresh_token"]
                expires = time.time() + body["expires_in"]
                count += 1
            time.sleep(0.005)
    seen.append(count)
threads = [threading.Thread(target=work, args=(g,)) for g in grants]
for t in threads: t.start()
for t in threads: t.join()
print(max(seen))
"""


def _run(scripts: list[list[str]], env: dict[str, str]) -> int:
    """Run the scripts side by side; the most expiry windows any one lived."""
    procs = [
        subprocess.Popen(
            [sys.executable, *args], env=env, stdout=subprocess.PIPE, text=True
        )
        for args in scripts
    ]
    windows = 0
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        if proc.returncode != 0:
            raise SystemExit("a benchmark process failed")
        windows = max(windows, int(out or 0))
    return windows


def token_requests_per_expiry() -> tuple[float, float]:
    callback = free_callback_url()
    lifetimes = Lifetimes(code=300, access=ACCESS_LIFETIME, refresh=3600)
    with (
        tempfile.TemporaryDirectory() as home,
        Sandbox.start(
            auto_consent=JANE, callback_urls=[callback], lifetimes=lifetimes
        ) as sandbox,
    ):
        env = {
            **os.environ,
            **sandbox.environment(),
            "APSHOOKS_HOME": home,
            "APS_CALLBACK_URL": callback,
        }
        os.environ.update(env)
        aps.connect(browser=Sandbox.browser)

        before = sandbox.token_requests
        script = OURS.format(duration=DURATION, threads=THREADS)
        windows = _run([["-c", script]] * PROCESSES, env)
        # The first window's token came from the sign-in, not a refresh.
        ours = (sandbox.token_requests - before) / (windows - 1)

        import json

        scripts = []
        for _ in range(PROCESSES):
            grants = [sandbox.consent(JANE) for _ in range(THREADS)]
            scripts.append(
                [
                    "-c",
                    NAIVE.format(duration=DURATION),
                    sandbox.settings().token_endpoint,
                    sandbox.client_id,
                    json.dumps(grants),
                ]
            )
        before = sandbox.token_requests
        windows = _run(scripts, env)
        naive = (sandbox.token_requests - before) / (windows - 1)
    return ours, naive


def _rate(call: Callable[[], object], seconds: float = 1.0) -> float:
    count, end = 0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        call()
        count += 1
    return count / seconds


def requests_per_second() -> tuple[float, float]:
    callback = free_callback_url()
    with (
        tempfile.TemporaryDirectory() as home,
        Sandbox.start(auto_consent=JANE, callback_urls=[callback]) as sandbox,
    ):
        os.environ["APSHOOKS_HOME"] = home
        conn = aps.connect(
            settings=sandbox.settings(callback_url=callback), browser=Sandbox.browser
        )
        url = f"{sandbox.url}/project/v1/hubs"
        headers = conn.headers
        with httpx.Client() as plain:
            ours, theirs = [], []
            for _ in range(5):  # interleaved, so noise hits both alike
                ours.append(_rate(lambda: conn.get("/project/v1/hubs")))
                theirs.append(_rate(lambda: plain.get(url, headers=headers)))
    return statistics.median(ours), statistics.median(theirs)


def requests_made_by_connect() -> tuple[int, int]:
    callback = free_callback_url()
    with (
        tempfile.TemporaryDirectory() as home,
        Sandbox.start(auto_consent=JANE, callback_urls=[callback]) as sandbox,
    ):
        env = {
            **os.environ,
            **sandbox.environment(),
            "APSHOOKS_HOME": home,
            "APS_CALLBACK_URL": callback,
        }
        first = [
            "-c",
            "import aps, threading, httpx\n"
            "def follow(url): threading.Thread(target=lambda: httpx.get(url, "
            "follow_redirects=True)).start()\n"
            "aps.connect(browser=follow)",
        ]
        _run([first], env)
        sign_in = sum(sandbox.requests.values())
        _run([["-c", "import aps; aps.connect(browser=None)"]], env)
        later = sum(sandbox.requests.values()) - sign_in
    return later, sign_in


def main() -> None:
    ours, naive = token_requests_per_expiry()
    print(
        f"1. token requests per expiry, {PROCESSES} processes x {THREADS} threads: "
        f"{ours:.2f} vs naive {naive:.2f} (ratio {ours / naive:.3f})"
    )
    mine, plain = requests_per_second()
    print(
        f"2. requests per second: conn.get {mine:.0f} vs httpx.Client.get "
        f"{plain:.0f} (ratio {mine / plain:.2f})"
    )
    later, first = requests_made_by_connect()
    print(
        f"3. requests made by aps.connect() with a stored session: {later} "
        f"(a first sign-in makes {first})"
    )


if __name__ == "__main__":
    main()
