"""aps.connect() against the offline sandbox, over real loopback HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

import aps
from aps import _connect
from aps.errors import ConsentRequired, SignInRefused
from aps.sandbox import Lifetimes, Sandbox, free_callback_url
from aps.settings import Settings

JANE = "jane@example.com"


def deciding(decision: str) -> Callable[[str], None]:
    """A browser in which Jane submits the consent form with ``decision``."""

    def visit(url: str) -> None:
        with httpx.Client(follow_redirects=True) as http:
            answer = http.post(
                url, data={"user": JANE, "decision": decision}, follow_redirects=False
            )
            http.get(answer.headers["location"])

    return lambda url: threading.Thread(target=visit, args=(url,), daemon=True).start()


def refuse_browser(url: str) -> None:
    raise AssertionError("connect() opened the browser although a session is stored")


@pytest.fixture
def callback() -> str:
    return free_callback_url()


@pytest.fixture
def sandbox(callback: str) -> Iterator[Sandbox]:
    with Sandbox.start(auto_consent=JANE, callback_urls=[callback]) as sandbox:
        yield sandbox


@pytest.fixture
def settings(sandbox: Sandbox, callback: str) -> Settings:
    return sandbox.settings(callback_url=callback)


def _env(sandbox: Sandbox, callback: str, home: Path) -> dict[str, str]:
    return {
        **os.environ,
        **sandbox.environment(),
        "APS_CALLBACK_URL": callback,
        "APSHOOKS_HOME": str(home),
    }


def test_first_connect_signs_in_and_reads_hubs_and_projects(settings: Settings) -> None:
    conn = aps.connect(settings=settings, browser=Sandbox.browser)

    assert conn.user == JANE
    assert aps.connection is conn
    assert "John's Hub" in conn.hubs
    assert [e.code for e in conn.hubs.errors] == ["BIM360DM_ERROR"]
    hub = conn.hubs["build_JohnsCompany"]
    names = [
        p["attributes"]["name"]
        for p in conn.paginate(
            f"/project/v1/hubs/{hub.id}/projects", params={"page[limit]": 1}
        )
    ]
    assert len(names) > 1
    assert len(set(names)) == len(names)


def test_a_later_process_reuses_the_session_without_any_request(
    sandbox: Sandbox, settings: Settings, callback: str, home: Path
) -> None:
    aps.connect(settings=settings, browser=Sandbox.browser)
    before = sum(sandbox.requests.values())

    script = (
        "import aps, sys\n"
        "def refuse(url): raise SystemExit('the browser was opened')\n"
        "conn = aps.connect(browser=refuse)\n"
        "print(conn.user)\n"
    )
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", script],
        env=_env(sandbox, callback, home),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == JANE
    assert done.stderr == ""
    assert sum(sandbox.requests.values()) == before


def test_deny_is_a_clear_error_and_stores_nothing(callback: str) -> None:
    with Sandbox.start(callback_urls=[callback]) as sandbox:
        settings = sandbox.settings(callback_url=callback)
        with pytest.raises(SignInRefused, match="choose Allow"):
            aps.connect(settings=settings, browser=deciding("deny"))
        assert _connect.store_for(settings).sessions() == []


def test_the_consent_form_allow_signs_in_that_user(callback: str) -> None:
    with Sandbox.start(callback_urls=[callback]) as sandbox:
        conn = aps.connect(
            settings=sandbox.settings(callback_url=callback), browser=deciding("allow")
        )
    assert conn.user == JANE


def test_a_confidential_app_signs_in_with_its_secret(
    sandbox: Sandbox, callback: str
) -> None:
    settings = sandbox.settings(
        callback_url=callback,
        client_id="apshooks-web",
        client_secret="sandbox-web-secret",
    )
    conn = aps.connect(settings=settings, browser=Sandbox.browser)
    assert conn.user == JANE
    assert conn.hubs


def test_logout_revokes_the_session_at_the_server(
    sandbox: Sandbox, settings: Settings
) -> None:
    conn = aps.connect(settings=settings, browser=Sandbox.browser)
    spent = conn.session.refresh_token
    assert _connect.sign_out(settings) == JANE

    answer = httpx.post(
        settings.token_endpoint,
        data={
            "grant_type": "refresh_token",
            "refresh_token": spent,
            "client_id": settings.client_id,
        },
    )
    assert answer.json()["error"] == "invalid_grant"
    assert _connect.stored_connection(settings) is None


def test_short_lived_tokens_are_renewed_and_each_renewal_is_stored(
    callback: str,
) -> None:
    lifetimes = Lifetimes(code=300, access=1.0, refresh=3600)
    with Sandbox.start(
        auto_consent=JANE, callback_urls=[callback], lifetimes=lifetimes
    ) as sandbox:
        settings = sandbox.settings(callback_url=callback)
        conn = aps.connect(settings=settings, browser=Sandbox.browser)
        first = conn.session.refresh_token
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            assert conn.get("/project/v1/hubs").status_code == 200

        stored = _connect.store_for(settings).get(JANE, settings.client_id or "")
        assert stored is not None
        assert stored.refresh_token != first
        assert stored.version > 2
        assert sandbox.token_requests >= 3


def test_a_lost_session_is_declared_once_the_server_revoked_it(
    sandbox: Sandbox, settings: Settings
) -> None:
    conn = aps.connect(settings=settings, browser=Sandbox.browser)
    httpx.post(
        settings.revocation_endpoint,
        data={
            "token": conn.session.refresh_token,
            "token_type_hint": "refresh_token",
            "client_id": settings.client_id,
        },
    )

    with pytest.raises(ConsentRequired, match="apshooks login"):
        conn.get("/project/v1/hubs")
    assert _connect.stored_connection(settings) is None


def test_no_secret_reaches_the_log(settings: Settings, home: Path) -> None:
    conn = aps.connect(settings=settings, browser=Sandbox.browser)
    conn.get("/project/v1/hubs")
    _connect.sign_out(settings)

    log = (home / "logs" / "Client.log").read_text()
    assert "signed in" in log
    session = conn.session
    for secret in (session.access_token, session.refresh_token, "code_verifier"):
        assert secret
        assert secret not in log


WORKER = """
import sys, threading, time, aps
conn = aps.connect(browser=lambda url: sys.exit("the browser was opened"))
failures, calls = [], []
end = time.monotonic() + {seconds}
def work():
    while time.monotonic() < end:
        answer = conn.get("/project/v1/hubs")
        calls.append(answer.status_code)
        if answer.status_code != 200:
            failures.append(answer.status_code)
threads = [threading.Thread(target=work) for _ in range({threads})]
for t in threads: t.start()
for t in threads: t.join()
print(len(calls), len(failures))
"""


def test_processes_sharing_a_session_survive_many_expiries(
    callback: str, home: Path
) -> None:
    # Refresh tokens here are strictly single use: a reused one revokes the
    # whole consent, so any double refresh would fail every process at once.
    lifetimes = Lifetimes(code=300, access=1.0, refresh=3600)
    with Sandbox.start(
        auto_consent=JANE, callback_urls=[callback], lifetimes=lifetimes
    ) as sandbox:
        settings = sandbox.settings(callback_url=callback)
        aps.connect(settings=settings, browser=Sandbox.browser)
        script = WORKER.format(seconds=3.5, threads=4)
        workers = [
            subprocess.Popen(
                [sys.executable, "-W", "error", "-c", script],
                env=_env(sandbox, callback, home),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(3)
        ]
        results = [worker.communicate(timeout=120) for worker in workers]

        for (out, err), worker in zip(results, workers, strict=True):
            assert worker.returncode == 0, err
            calls, failures = map(int, out.split())
            assert calls > 100
            assert failures == 0
        # The sign-in, then a refresh in each of the three or more expiries.
        assert sandbox.token_requests >= 4
        survivor = aps.connect(settings=settings, browser=refuse_browser)
        assert survivor.get("/project/v1/hubs").status_code == 200


def test_sessions_lists_days_left(settings: Settings) -> None:
    aps.connect(settings=settings, browser=Sandbox.browser)
    (info,) = _connect.store_for(settings).sessions()
    assert info.autodesk_id == JANE
    assert 14.9 < info.days_left() <= 15
    assert json.dumps(info.autodesk_id)


def test_a_new_sign_in_renews_the_connection_already_held(settings: Settings) -> None:
    held = aps.connect(settings=settings, browser=Sandbox.browser)
    first = held.session.version

    again = _connect.sign_in(settings, browser=Sandbox.browser)
    assert again is held
    assert held.session.version > first
    assert held.get("/project/v1/hubs").status_code == 200

    _connect.sign_out(settings)
    with pytest.raises(ConsentRequired, match="signed out"):
        held.get("/project/v1/hubs")
