"""The job processor with real job scripts, working folders and log files."""

from __future__ import annotations

import os
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

import aps
from aps.errors import StoreError
from aps.impersonation import check
from aps.settings import Settings
from hooks import Job, JobError, Processor, Status, add_job, job, open_queue
from hooks.queue import Queue


@pytest.fixture
def queue(home: Path) -> Iterator[Queue]:
    opened = open_queue(f"sqlite:///{home / 'store.db'}")
    yield opened
    opened.close()


@pytest.fixture
def jobs_folder(home: Path) -> Path:
    folder = home / "jobs"
    folder.mkdir()
    return folder


def write_script(
    folder: Path, name: str, body: str, *, mtime: float | None = None
) -> None:
    script = folder / f"{name}.py"
    script.write_text(
        "from hooks import job\n\n" + textwrap.dedent(body), encoding="utf-8"
    )
    if mtime is not None:
        os.utime(script, (mtime, mtime))


def run(queue: Queue, folder: Path, **options: object) -> None:
    Processor(queue, jobs_folder=folder, lease=2.0, **options).run_until_empty()  # type: ignore[arg-type]


def test_the_job_script_named_after_the_job_type_runs_it(
    queue: Queue, jobs_folder: Path
) -> None:
    write_script(
        jobs_folder,
        "Sample.Greet",
        """
        @job("Sample.Greet")
        def greet(job):
            return f"Hello {job.parameters['Who']} from job {job.id}"
        """,
    )
    added = add_job("Sample.Greet", {"Who": "Jane"}, queue=queue)

    run(queue, jobs_folder)

    assert queue.get(added.id).result == f"Hello Jane from job {added.id}"


def test_a_changed_script_is_used_from_the_next_job_on(
    queue: Queue, jobs_folder: Path
) -> None:
    body = '@job("Sample.Version")\ndef version(job):\n    return {}\n'
    write_script(jobs_folder, "Sample.Version", body.format(1), mtime=1_000_000)
    first = add_job("Sample.Version", queue=queue)
    run(queue, jobs_folder)

    write_script(jobs_folder, "Sample.Version", body.format(2), mtime=2_000_000)
    second = add_job("Sample.Version", queue=queue)
    run(queue, jobs_folder)

    assert (queue.get(first.id).result, queue.get(second.id).result) == (1, 2)


def test_a_missing_or_broken_script_fails_its_job_and_the_rest_still_run(
    queue: Queue, jobs_folder: Path
) -> None:
    write_script(jobs_folder, "Sample.Broken", "def broken(:\n")
    write_script(jobs_folder, "Sample.Empty", "x = 1\n")
    write_script(
        jobs_folder,
        "Sample.Fine",
        '@job("Sample.Fine")\ndef fine(job):\n    return 1\n',
    )
    missing = add_job("Sample.Missing", queue=queue)
    broken = add_job("Sample.Broken", queue=queue)
    empty = add_job("Sample.Empty", queue=queue)
    fine = add_job("Sample.Fine", queue=queue)

    run(queue, jobs_folder)

    assert [queue.get(j.id).status for j in (missing, broken, empty)] == [
        Status.FAILED
    ] * 3
    assert "No job script for job type 'Sample.Missing'" in str(
        queue.get(missing.id).error
    )
    assert "failed to load: SyntaxError" in str(queue.get(broken.id).error)
    assert '@job("Sample.Empty")' in str(queue.get(empty.id).error)
    assert queue.get(fine.id).status is Status.SUCCESS


def test_each_job_gets_a_fresh_working_folder_removed_afterwards(
    queue: Queue, jobs_folder: Path
) -> None:
    seen: list[tuple[Path, bool, list[Path]]] = []

    @job("Proc.Workdir")
    def use_workdir(job: Job) -> None:
        assert job.workdir is not None
        contents = list(job.workdir.iterdir())
        (job.workdir / "out.pdf").write_bytes(b"%PDF")
        seen.append((job.workdir, job.workdir.is_dir(), contents))

    add_job("Proc.Workdir", queue=queue)
    add_job("Proc.Workdir", queue=queue)
    run(queue, jobs_folder)

    (first, first_was_dir, first_contents), (second, _, second_contents) = seen
    assert first != second
    assert first_was_dir
    assert first_contents == second_contents == []
    assert not first.exists()
    assert not second.exists()


def test_a_job_may_impersonate_only_its_submitter(
    queue: Queue, jobs_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    @job("Proc.Impersonate")
    def impersonate(job: Job) -> str:
        check(job.autodesk_id or "")
        check(str(job.parameters["Other"]))
        return "impersonated both"

    monkeypatch.setattr(
        aps, "connection", SimpleNamespace(user="jane@example.com"), raising=False
    )
    added = add_job("Proc.Impersonate", {"Other": "joe@example.com"}, queue=queue)
    allowed = add_job("Proc.Impersonate", {"Other": "svc@example.com"}, queue=queue)
    monkeypatch.setattr(aps, "connection", None)
    anonymous = add_job("Proc.Impersonate", {"Other": "joe@example.com"}, queue=queue)

    run(queue, jobs_folder, settings=Settings.load(impersonate="svc@example.com"))

    assert queue.get(added.id).status is Status.FAILED
    assert "Cannot connect as 'joe@example.com'" in str(queue.get(added.id).error)
    assert queue.get(allowed.id).result == "impersonated both"
    assert "no recorded Autodesk ID" in str(queue.get(anonymous.id).error)


def test_a_job_whose_consent_expired_fails_with_the_documented_text(
    queue: Queue, jobs_folder: Path
) -> None:
    @job("Proc.Consent")
    def consent(job: Job) -> None:
        raise aps.errors.ConsentRequired.for_job("jane@example.com")

    added = add_job("Proc.Consent", queue=queue)
    run(queue, jobs_folder)

    assert queue.get(added.id).error == (
        "Job processing requires Autodesk Platform Services authentication! "
        "Please connect on your workstation using Autodesk ID 'jane@example.com' "
        "and grant consent."
    )


def test_the_processor_log_has_one_line_per_transition_and_no_parameter(
    queue: Queue, jobs_folder: Path, home: Path
) -> None:
    job("Proc.Logged")(lambda job: None)
    job("Proc.Failing")(lambda job: 1 / 0)
    good = add_job("Proc.Logged", {"Password": "hunter2-secret"}, queue=queue)
    bad = add_job("Proc.Failing", queue=queue)

    run(queue, jobs_folder)

    log = (home / "logs" / "Processor.log").read_text(encoding="utf-8")
    assert f"Job {good.id} (Proc.Logged) was claimed by" in log
    assert f"Job {good.id} (Proc.Logged) succeeded in" in log
    assert f"Job {bad.id} (Proc.Failing) failed: division by zero" in log
    assert "hunter2-secret" not in log


def test_a_damaged_store_file_is_reported_and_left_as_it_was(home: Path) -> None:
    damaged = home / "damaged.db"
    damaged.write_bytes(b"this is not an SQLite database" * 100)
    before = damaged.read_bytes()

    with pytest.raises(StoreError, match="cannot be read"):
        open_queue(f"sqlite:///{damaged}")

    assert damaged.read_bytes() == before


def test_add_job_uses_the_store_from_the_settings(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APSHOOKS_STORE", str(home / "configured.db"))

    added = add_job("Proc.Configured", {"EntityId": 42})

    stored = open_queue(f"sqlite:///{home / 'configured.db'}")
    assert stored.get(added.id).parameters == {"EntityId": 42}
    stored.close()


def test_a_job_claimed_again_at_once_keeps_its_heartbeat(
    queue: Queue, jobs_folder: Path
) -> None:
    # With no backoff the processor claims the failed job again as the first
    # attempt ends; the second attempt outlives the lease and must be renewed.
    @job("Proc.Again", attempts=2, backoff=0, lost=1)
    def again(job: Job) -> str:
        if job.attempt == 1:
            raise RuntimeError("first try")
        time.sleep(2.5)  # the job's own work, longer than its 1 s lease
        return "second try"

    added = add_job("Proc.Again", queue=queue)
    Processor(queue, jobs_folder=jobs_folder, lease=1.0).run_until_empty()

    done = queue.get(added.id)
    assert (done.status, done.result) == (Status.SUCCESS, "second try")
    assert [a.outcome for a in queue.attempts(added.id)] == ["Failed", "Success"]


def test_sys_exit_in_a_job_script_fails_that_job_only(
    queue: Queue, jobs_folder: Path
) -> None:
    (jobs_folder / "Proc.Exits.py").write_text("import sys\nsys.exit(2)\n")
    write_script(
        jobs_folder, "Proc.Fine", '@job("Proc.Fine")\ndef fine(job):\n    return 1\n'
    )
    exits = add_job("Proc.Exits", queue=queue)
    fine = add_job("Proc.Fine", queue=queue)
    run(queue, jobs_folder)

    assert queue.get(exits.id).status is Status.FAILED
    assert "failed to load" in str(queue.get(exits.id).error)
    assert queue.get(fine.id).status is Status.SUCCESS


def test_threads_that_come_and_go_leave_no_connection_behind(queue: Queue) -> None:
    def submit() -> None:
        add_job("Proc.Churn", queue=queue)

    for _ in range(21):  # each new thread's first call closes what ended ones left
        thread = threading.Thread(target=submit)
        thread.start()
        thread.join()
    assert len(queue._connections) <= 2


def test_a_store_in_a_folder_not_made_yet_works_on_first_use(tmp_path: Path) -> None:
    with open_queue(f"sqlite:///{tmp_path / 'new' / 'store.db'}") as fresh:
        added = add_job("Proc.First", queue=fresh)
        assert fresh.get(added.id).status is Status.PENDING


def test_impossible_timings_are_refused_with_what_to_fix(queue: Queue) -> None:
    with pytest.raises(JobError, match=r"heartbeat .* must be shorter than the lease"):
        Processor(queue, lease=1.0, heartbeat=5.0)
    with pytest.raises(JobError, match="concurrency must be 1 or more"):
        Processor(queue, concurrency=0)
    with pytest.raises(JobError, match="brackets"):
        Processor(queue, types=["Sample.[AB]*"])


@pytest.mark.parametrize("way", ["stop", "request_stop"])
def test_a_second_stop_request_releases_running_jobs_at_once(
    queue: Queue, jobs_folder: Path, way: str
) -> None:
    # request_stop is what the CLI's signal handlers call: it takes no lock.
    started, finish = threading.Event(), threading.Event()

    @job("Proc.Waits")
    def waits(job: Job) -> None:
        started.set()
        finish.wait(30)

    added = add_job("Proc.Waits", queue=queue)
    processor = Processor(queue, jobs_folder=jobs_folder, lease=2.0, grace=60.0)
    ask = getattr(processor, way)
    runner = threading.Thread(target=processor.run)
    runner.start()
    try:
        assert started.wait(10)
        ask()  # the first Ctrl-C: the job gets its 60 s
        ask(grace=0)  # the second: no more waiting
        runner.join(5)
        assert not runner.is_alive()
        assert queue.get(added.id).status is Status.PENDING
    finally:
        finish.set()
        runner.join(10)


def test_a_job_raising_cancelled_error_fails_alone(
    queue: Queue, jobs_folder: Path
) -> None:
    import asyncio

    @job("Proc.Cancels")
    def cancels(job: Job) -> None:
        raise asyncio.CancelledError

    @job("Proc.After")
    def after(job: Job) -> str:
        return "ran"

    first = add_job("Proc.Cancels", queue=queue)
    second = add_job("Proc.After", queue=queue)
    run(queue, jobs_folder)

    assert queue.get(first.id).status is Status.FAILED
    assert queue.get(second.id).result == "ran"
