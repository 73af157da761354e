"""The job commands of ``apshooks``, on the store the settings name."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from hooks import Status, open_queue
from hooks.cli import main


@pytest.fixture
def store(home: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("APSHOOKS_STORE", str(home / "cli.db"))
    return f"sqlite:///{home / 'cli.db'}"


def apshooks(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_submit_reads_json_values_and_text(store: str) -> None:
    output = apshooks(
        "submit", "Sample.ListProjects", "--param", "EntityId=42",
        "--param", "Kind=FILE", "--param", "Ids=[1, 2]", "--priority", "3",
    )  # fmt: skip

    queue = open_queue(store)
    (job,) = queue.jobs()
    queue.close()
    assert output == f"Job {job.id} (Sample.ListProjects) is Pending.\n"
    assert job.parameters == {"EntityId": 42, "Kind": "FILE", "Ids": [1, 2]}
    assert job.priority == 3


def test_a_parameter_without_a_value_is_refused(store: str) -> None:
    result = CliRunner().invoke(main, ["submit", "Sample.X", "--param", "EntityId"])

    assert result.exit_code == 2
    assert "'EntityId' is not NAME=VALUE" in result.output


def test_worker_runs_the_script_and_job_shows_every_attempt(
    store: str, home: Path
) -> None:
    jobs = home / "scripts"
    jobs.mkdir()
    (jobs / "Sample.Fails.py").write_text(
        "from hooks import job\n\n"
        '@job("Sample.Fails", attempts=2, backoff=0)\n'
        "def fails(job):\n"
        '    raise RuntimeError(f"attempt {job.attempt} failed")\n',
        encoding="utf-8",
    )
    apshooks("submit", "Sample.Fails")

    apshooks("worker", "--jobs", str(jobs), "--until-empty")
    shown = apshooks("job", "1")

    assert "Status:      Failed" in shown
    assert "Error:       attempt 2 failed" in shown
    assert "Attempt 1 on " in shown
    assert ": Failed in " in shown
    assert shown.count("Attempt ") == 2
    assert "attempt 2 failed" in apshooks("jobs", "--status", "failed")


def test_cancel_and_retry(store: str) -> None:
    apshooks("submit", "Sample.Later")

    assert apshooks("cancel", "1") == "Job 1 is Cancelled.\n"
    assert apshooks("retry", "1") == "Job 1 is Pending again.\n"
    queue = open_queue(store)
    assert queue.get(1).status is Status.PENDING
    queue.close()
    assert apshooks("jobs", "--status", "Cancelled") == "No jobs.\n"


def test_errors_are_one_clear_line(store: str) -> None:
    result = CliRunner().invoke(main, ["retry", "7"])

    assert result.exit_code == 1
    assert result.output.strip() == "Error: There is no job 7 in " + store[10:] + "."
