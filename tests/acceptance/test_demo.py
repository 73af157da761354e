"""``apshooks demo``, the main job, as a new user runs it: SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from aps.crypto import Cipher
from aps.database import Database
from aps.store import SessionStore
from hooks.jobs import Status
from hooks.queue import open_queue


def _demo(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "APSHOOKS_HOME": str(home)}
    command = [sys.executable, "-W", "error", "-m", "hooks.cli", "demo", *args]
    return subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_demo_runs_end_to_end_and_leaves_its_traces(
    backend: str, home: Path, request: pytest.FixtureRequest
) -> None:
    args = (
        ("--store", request.getfixturevalue("pg_url"))
        if backend == "postgresql"
        else ()
    )
    done = _demo(home, *args)

    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    out = done.stdout
    assert "Signed in: jane@example.com" in out
    assert "build_JohnsCompany  (ACC/BIM 360, US)" in out
    assert "Error: Unable to get hubs from BIM360DM EMEA." in out
    assert "Sample.ListProjects: Success in " in out
    assert "as jane@example.com" in out
    assert "Conveyor Line 3  [Project Files, Plans]" in out
    assert "Bracket.ipt: Create the PDF before releasing." in out

    store_url = args[1] if args else f"sqlite:///{home / 'demo' / 'apshooks.db'}"
    queue = open_queue(store_url)
    (job,) = queue.jobs()
    queue.close()
    assert job.status is Status.SUCCESS
    assert job.autodesk_id == "jane@example.com"
    assert len(job.result) == 4  # type: ignore[arg-type]

    key = home / "demo" / "apshooks.key"
    store = SessionStore(Database(store_url), Cipher.from_key_file(key))
    (session,) = store.sessions()
    assert session.autodesk_id == "jane@example.com"
    assert not session.lost
    store.close()

    logs = home / "demo" / "logs"
    client, processor = (
        (logs / "Client.log").read_text(),
        (logs / "Processor.log").read_text(),
    )
    assert "signed in and granted consent" in client
    assert "succeeded in" in processor
    assert "succeeded in" not in client
    assert "signed in" not in processor


def test_a_missing_samples_folder_is_a_clear_error(home: Path) -> None:
    done = _demo(home, "--samples", str(home / "nowhere"))
    assert done.returncode != 0
    assert "samples folder" in done.stderr
    assert "Traceback" not in done.stderr
