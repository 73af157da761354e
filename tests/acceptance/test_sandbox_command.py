"""``apshooks sandbox`` as a user runs it: a whole process, stopped by a signal."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sandbox_client import attempt, bearer, exchange, query_of

APSHOOKS = str(Path(sys.executable).with_name("apshooks"))


@pytest.fixture
def served() -> Iterator[tuple[subprocess.Popen[str], dict[str, str]]]:
    process = subprocess.Popen(
        [APSHOOKS, "sandbox", "--port", "0", "--auto-consent", "jane@example.com"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    settings: dict[str, str] = {}
    for line in process.stdout:
        if "=" in line and not line.startswith("#"):
            name, _, value = line.strip().partition("=")
            settings[name] = value
        if line.startswith("# Press Ctrl+C"):
            break
    try:
        yield process, settings
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


def test_prints_the_settings_and_signs_in_without_a_page(
    served: tuple[subprocess.Popen[str], dict[str, str]],
) -> None:
    process, settings = served
    assert settings["APS_CLIENT_ID"] == "apshooks-sandbox"
    base = settings["APS_BASE_URL"]
    assert base.startswith("http://127.0.0.1:")

    with httpx.Client(base_url=base) as http:
        tried = attempt()
        answer = http.get(settings["APS_AUTHORIZE_URL"], params=tried.query)
        code = query_of(answer.headers["location"])["code"]
        tokens = exchange(http, tried, code).json()
        profile = http.get(
            settings["APS_USERINFO_URL"], headers=bearer(tokens["access_token"])
        )
    assert profile.json()["email"] == "jane@example.com"

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0
    _, errors = process.communicate()
    assert tokens["access_token"] not in errors
    assert code not in errors


def test_refuses_a_remote_address_unless_allowed() -> None:
    finished = subprocess.run(
        [APSHOOKS, "sandbox", "--host", "0.0.0.0", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert finished.returncode != 0
    assert "loopback" in finished.stderr
    assert "--allow-remote" in finished.stderr
