"""apshooks login, whoami, hubs, sessions and logout, as a user types them."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from aps.sandbox import Sandbox, free_callback_url


@pytest.fixture
def env(home: Path) -> Iterator[dict[str, str]]:
    callback = free_callback_url()
    with Sandbox.start(auto_consent="jane@example.com", callback_urls=[callback]) as sb:
        # A "browser" command that just follows the address, as webbrowser runs it.
        follow = home / "follow.py"
        follow.write_text(
            "import sys, httpx\nhttpx.get(sys.argv[1], follow_redirects=True)\n"
        )
        yield {
            **os.environ,
            **sb.environment(),
            "APS_CALLBACK_URL": callback,
            "BROWSER": f"{sys.executable} {follow} %s",
        }


def apshooks(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "error", "-m", "hooks.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_session_from_login_to_logout(env: dict[str, str]) -> None:
    nobody = apshooks(env, "whoami")
    assert nobody.returncode == 1
    assert "apshooks login" in nobody.stderr

    login = apshooks(env, "login")
    assert login.returncode == 0, login.stderr
    assert "Signed in as jane@example.com" in login.stdout

    assert apshooks(env, "whoami").stdout.strip() == "jane@example.com (Jane Doe)"

    hubs = apshooks(env, "hubs")
    assert "build_JohnsCompany" in hubs.stdout
    assert "Error: Unable to get hubs from BIM360DM EMEA." in hubs.stdout

    submitted = apshooks(env, "submit", "Sample.Anything")
    assert submitted.returncode == 0, submitted.stderr
    assert "jane@example.com" in apshooks(env, "job", "1").stdout

    sessions = apshooks(env, "sessions")
    assert "jane@example.com" in sessions.stdout
    assert "15.0 days left" in sessions.stdout

    logout = apshooks(env, "logout")
    assert logout.stdout.strip() == "Signed out jane@example.com."
    anonymous = apshooks(env, "submit", "Sample.Anything")
    assert "records no Autodesk ID" in anonymous.stderr
    assert "apshooks login" in anonymous.stderr
    assert apshooks(env, "whoami").returncode == 1
    assert "No stored sessions" in apshooks(env, "sessions").stdout


def test_no_client_id_is_explained(env: dict[str, str]) -> None:
    done = apshooks({**env, "APS_CLIENT_ID": ""}, "whoami")
    assert done.returncode == 1
    assert "APS_CLIENT_ID" in done.stderr
    assert "Traceback" not in done.stderr
