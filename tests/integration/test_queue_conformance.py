"""What every queue backend guarantees, run unchanged on SQLite and PostgreSQL."""

from __future__ import annotations

import getpass
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

import aps
from hooks import Job, JobError, Processor, Status, add_job, job, open_queue
from hooks.queue import Queue


@pytest.fixture
def queue(store_url: str) -> Iterator[Queue]:
    opened = open_queue(store_url)
    yield opened
    opened.close()


def processor(queue: Queue, tmp_path: Path, **options: object) -> Processor:
    options.setdefault("lease", 2.0)
    return Processor(queue, jobs_folder=tmp_path / "no-scripts", **options)  # type: ignore[arg-type]


@contextmanager
def running(worker: Processor) -> Iterator[Processor]:
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        yield worker
    finally:
        worker.stop()
        thread.join(10)
        assert not thread.is_alive()


def test_add_job_returns_the_stored_job(queue: Queue) -> None:
    added = add_job(
        "Conf.Add",
        {"EntityId": 42, "EntityClassId": "FILE"},
        description="List projects",
        priority=3,
        queue=queue,
    )

    assert added == queue.get(added.id)
    assert (added.name, added.description, added.priority) == (
        "Conf.Add",
        "List projects",
        3,
    )
    assert added.parameters == {"EntityId": 42, "EntityClassId": "FILE"}
    assert added.status is Status.PENDING
    assert added.submitter == getpass.getuser()
    assert added.autodesk_id is None
    assert abs(added.created - datetime.now(UTC)) < timedelta(seconds=30)


def test_add_job_records_the_connection_autodesk_id_and_a_vault_user(
    queue: Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    connection = SimpleNamespace(user="jane@example.com")
    monkeypatch.setattr(aps, "connection", connection, raising=False)

    added = add_job(
        "Conf.Who", {"SubmittedByAutodeskId": "x"}, submitter="Jane", queue=queue
    )

    assert queue.get(added.id).autodesk_id == "jane@example.com"
    assert queue.get(added.id).submitter == "Jane"


def test_non_json_parameters_are_refused_and_nothing_is_stored(queue: Queue) -> None:
    with pytest.raises(JobError, match=r"'When'.*datetime"):
        add_job("Conf.Bad", {"When": datetime.now(UTC)}, queue=queue)

    assert queue.jobs() == []


def test_lower_priority_first_then_in_the_order_added(queue: Queue) -> None:
    for label, priority in [("a", 5), ("b", 1), ("c", 5), ("d", 1), ("e", 0)]:
        add_job("Conf.Order", {"label": label}, priority=priority, queue=queue)

    claimed = []
    while (found := queue.claim("w", (), 30)) is not None:
        claimed.append(found.parameters["label"])

    assert claimed == ["e", "b", "d", "a", "c"]


def test_a_processor_limited_to_some_types_never_takes_the_others(
    queue: Queue,
) -> None:
    for name in ["Sample.A", "Other.B", "Sample.C", "SampleX"]:
        add_job(name, queue=queue)

    claimed = []
    while (found := queue.claim("w", ("Sample.*",), 30)) is not None:
        claimed.append(found.name)

    assert claimed == ["Sample.A", "Sample.C"]
    assert queue.pending(("Other.*",)) == 1
    assert queue.pending(("Sample?",)) == 1


def test_an_exception_ends_the_job_failed_with_its_message(
    queue: Queue, tmp_path: Path
) -> None:
    @job("Conf.Raises")
    def raises(job: Job) -> None:
        raise RuntimeError("The PDF could not be written.")

    added = add_job("Conf.Raises", queue=queue)
    processor(queue, tmp_path).run_until_empty()

    ended = queue.get(added.id)
    (attempt,) = queue.attempts(added.id)
    assert ended.status is Status.FAILED
    assert ended.error == "The PDF could not be written."
    assert attempt.outcome == "Failed"
    assert attempt.error == "The PDF could not be written."
    assert attempt.traceback is not None
    assert "RuntimeError" in attempt.traceback


def test_a_job_type_with_attempts_is_retried_after_its_backoff(
    queue: Queue, tmp_path: Path
) -> None:
    runs: list[int] = []

    @job("Conf.Flaky", attempts=3, backoff=0.05)
    def flaky(job: Job) -> str:
        runs.append(job.attempt)
        if len(runs) < 3:
            raise ConnectionError(f"try {len(runs)} failed")
        return "done"

    added = add_job("Conf.Flaky", queue=queue)
    processor(queue, tmp_path).run_until_empty()

    ended = queue.get(added.id)
    history = queue.attempts(added.id)
    assert (ended.status, ended.result, runs) == (Status.SUCCESS, "done", [1, 2, 3])
    assert [a.outcome for a in history] == ["Failed", "Failed", "Success"]
    assert [a.error for a in history] == ["try 1 failed", "try 2 failed", None]
    # The attempt's end and the backoff's start are two clock readings a few
    # milliseconds apart, so the gap is checked with that much slack.
    gap = history[1].started - history[0].ended  # type: ignore[operator]
    assert gap >= timedelta(seconds=0.04)


def test_attempts_run_out(queue: Queue, tmp_path: Path) -> None:
    @job("Conf.Broken", attempts=2, backoff=0)
    def broken(job: Job) -> None:
        raise ValueError(f"attempt {job.attempt}")

    added = add_job("Conf.Broken", queue=queue)
    processor(queue, tmp_path).run_until_empty()

    assert queue.get(added.id).status is Status.FAILED
    assert queue.get(added.id).error == "attempt 2"
    assert len(queue.attempts(added.id)) == 2


def test_cancelling_a_pending_job_means_it_never_runs(
    queue: Queue, tmp_path: Path
) -> None:
    ran = threading.Event()
    job("Conf.Cancelled")(lambda job: ran.set())

    added = add_job("Conf.Cancelled", queue=queue)
    assert queue.cancel(added.id).status is Status.CANCELLED
    processor(queue, tmp_path).run_until_empty()

    assert not ran.is_set()
    assert queue.get(added.id).status is Status.CANCELLED


def test_a_running_job_is_asked_to_stop_and_ends_cancelled(
    queue: Queue, tmp_path: Path
) -> None:
    started, stopped = threading.Event(), threading.Event()

    @job("Conf.Long")
    def long(job: Job) -> str:
        started.set()
        while not job.cancel_requested:
            stopped.wait(0.01)
        stopped.set()
        return "stopped early"

    added = add_job("Conf.Long", queue=queue)
    with running(processor(queue, tmp_path, lease=0.6)):
        assert started.wait(10)
        assert queue.cancel(added.id).status is Status.RUNNING
        assert stopped.wait(10)

    assert queue.get(added.id).status is Status.CANCELLED
    assert queue.attempts(added.id)[0].outcome == "Cancelled"


def test_only_pending_or_running_jobs_can_be_cancelled(queue: Queue) -> None:
    added = add_job("Conf.Done", queue=queue)
    claimed = queue.claim("w", (), 30)
    assert claimed is not None
    queue.succeed(claimed, None)

    with pytest.raises(JobError, match=f"Job {added.id} is Success"):
        queue.cancel(added.id)
    with pytest.raises(JobError, match="There is no job 999"):
        queue.cancel(999)


def test_retry_puts_a_failed_job_back_with_all_its_attempts(
    queue: Queue, tmp_path: Path
) -> None:
    script_fixed = threading.Event()

    @job("Conf.Retried")
    def retried(job: Job) -> str:
        if not script_fixed.is_set():
            raise RuntimeError("not yet")
        return "fixed"

    added = add_job("Conf.Retried", queue=queue)
    processor(queue, tmp_path).run_until_empty()
    assert queue.get(added.id).status is Status.FAILED

    script_fixed.set()
    assert queue.retry(added.id).status is Status.PENDING
    processor(queue, tmp_path).run_until_empty()

    assert queue.get(added.id).status is Status.SUCCESS
    assert [a.outcome for a in queue.attempts(added.id)] == ["Failed", "Success"]
    with pytest.raises(JobError, match="only Failed or Cancelled"):
        queue.retry(added.id)


def test_a_stale_worker_changes_nothing_after_its_job_was_released(
    queue: Queue,
) -> None:
    added = add_job("Conf.Fenced", queue=queue)
    stale = queue.claim("worker-a", (), -1)  # A lease that has already run out.
    assert stale is not None

    (released,) = queue.reap()
    fresh = queue.claim("worker-b", (), 30)
    assert fresh is not None

    assert (released.id, released.status, fresh.attempt) == (
        added.id,
        Status.PENDING,
        2,
    )
    assert queue.heartbeat(stale, 30) == "gone"
    assert queue.succeed(stale, "stale result") is None
    assert queue.fail(stale, "stale error") is None
    assert queue.release(stale, "stale") is False
    assert queue.get(added.id).status is Status.RUNNING
    assert queue.succeed(fresh, "fresh result") is Status.SUCCESS
    assert queue.get(added.id).result == "fresh result"
    assert [a.outcome for a in queue.attempts(added.id)] == ["Lost", "Success"]
    assert [a.worker for a in queue.attempts(added.id)] == ["worker-a", "worker-b"]


def test_a_heartbeat_keeps_the_lease(queue: Queue) -> None:
    add_job("Conf.Beating", queue=queue)
    claimed = queue.claim("w", (), -1)
    assert claimed is not None

    assert queue.heartbeat(claimed, 30) == "ok"
    assert queue.reap() == []


def test_a_job_that_keeps_losing_its_worker_ends_failed(queue: Queue) -> None:
    added = add_job("Conf.Killer", queue=queue)
    outcomes = []
    for _ in range(2):
        claimed = queue.claim("w", (), -1)
        assert claimed is not None
        queue.limit_lost(claimed, 2)
        outcomes.append(queue.reap()[0].status)

    ended = queue.get(added.id)
    assert outcomes == [Status.PENDING, Status.FAILED]
    assert ended.status is Status.FAILED
    assert ended.error is not None
    assert "retry the job" in ended.error
    assert queue.claim("w", (), 0) is None


def test_a_processor_recovers_the_job_of_a_dead_worker(
    queue: Queue, tmp_path: Path
) -> None:
    job("Conf.Recovered")(lambda job: job.attempt)
    added = add_job("Conf.Recovered", queue=queue)
    dead = queue.claim("dead-worker", (), -1)
    assert dead is not None

    processor(queue, tmp_path).run_until_empty()

    assert queue.get(added.id).status is Status.SUCCESS
    assert queue.get(added.id).result == 2
    assert [a.outcome for a in queue.attempts(added.id)] == ["Lost", "Success"]


def test_releasing_gives_the_job_back_without_losing_an_attempt(queue: Queue) -> None:
    added = add_job("Conf.Released", queue=queue)
    claimed = queue.claim("w", (), 30)
    assert claimed is not None

    assert queue.release(claimed, "Stopping.") is True

    again = queue.claim("w", (), 30)
    assert again is not None
    assert (again.id, again.attempt) == (added.id, 2)
    assert queue.attempts(added.id)[0].outcome == "Released"


def test_stopping_releases_what_did_not_end_within_the_grace_period(
    queue: Queue, tmp_path: Path
) -> None:
    started, finish = threading.Event(), threading.Event()

    @job("Conf.Slow")
    def slow(job: Job) -> None:
        started.set()
        finish.wait(10)

    added = add_job("Conf.Slow", queue=queue)
    worker = processor(queue, tmp_path, grace=0.05)
    with running(worker):
        assert started.wait(10)
    finish.set()

    assert queue.get(added.id).status is Status.PENDING
    assert queue.attempts(added.id)[0].outcome == "Released"


def test_jobs_run_side_by_side_up_to_the_concurrency(
    queue: Queue, tmp_path: Path
) -> None:
    together = threading.Barrier(3, timeout=10)
    job("Conf.Together")(lambda job: together.wait())
    added = [add_job("Conf.Together", queue=queue) for _ in range(3)]

    processor(queue, tmp_path, concurrency=3).run_until_empty()

    assert [queue.get(a.id).status for a in added] == [Status.SUCCESS] * 3


def test_an_idle_processor_starts_a_job_added_from_another_connection(
    store_url: str, queue: Queue, tmp_path: Path
) -> None:
    ran = threading.Event()
    job("Conf.Woken")(lambda job: ran.set())

    with open_queue(store_url) as elsewhere, running(processor(queue, tmp_path)):
        assert not ran.wait(0.05)
        elsewhere.add("Conf.Woken", {})
        assert ran.wait(5)


def test_the_result_is_stored_as_json(queue: Queue, tmp_path: Path) -> None:
    job("Conf.Result")(lambda job: {"projects": ["A", "B"], "count": 2})
    job("Conf.NotJSON")(lambda job: object())
    good = add_job("Conf.Result", queue=queue)
    bad = add_job("Conf.NotJSON", queue=queue)

    processor(queue, tmp_path).run_until_empty()

    assert queue.get(good.id).result == {"projects": ["A", "B"], "count": 2}
    assert queue.get(bad.id).status is Status.FAILED
    assert "cannot be stored as JSON" in (queue.get(bad.id).error or "")


def test_listing_by_status_newest_first(queue: Queue) -> None:
    first, second, third = (add_job("Conf.List", queue=queue) for _ in range(3))
    queue.cancel(second.id)

    assert [j.id for j in queue.jobs()] == [third.id, second.id, first.id]
    assert [j.id for j in queue.jobs(status="Pending")] == [third.id, first.id]
    assert [j.id for j in queue.jobs(status=Status.CANCELLED)] == [second.id]
