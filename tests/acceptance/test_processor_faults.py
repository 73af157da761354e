"""Whole job processors, killed at random moments: no job is lost or run twice
without a reason."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from hooks import Status, open_queue
from hooks.queue import Queue

APSHOOKS = str(Path(sys.executable).parent / "apshooks")
JOBS = 1000
WORKERS = 4
KILLS = 8

RECORDING_SCRIPT = """\
import os
import time

from hooks import job


@job("Fault.Record", lost=50, backoff=0)
def record(job):
    with open(job.parameters["runs"], "a", encoding="utf-8") as runs:
        runs.write(f"{job.id} {job.attempt} {os.getpid()}\\n")
    time.sleep(job.parameters["seconds"])
    return job.attempt
"""


def start_worker(jobs: Path, store_url: str, *options: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "APSHOOKS_STORE": store_url}
    short_leases = ["--lease", "1", "--heartbeat", "0.2"]
    with (jobs.parent / "worker-output.txt").open("ab") as output:
        return subprocess.Popen(
            [APSHOOKS, "worker", "--jobs", str(jobs), *short_leases, *options],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def wait_until(condition: object, seconds: float) -> None:
    """Poll ``condition`` (nothing else can tell across processes) until true."""
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"Still not true after {seconds} s: {condition}")
        time.sleep(0.05)


def pid(worker: str | None) -> int:
    """The process id in a worker's name, ``host:pid``."""
    return int(str(worker).rsplit(":", 1)[1])


def count(queue: Queue, status: Status) -> int:
    return len(queue.jobs(status=status, limit=JOBS * 2))


@pytest.fixture
def queue(store_url: str) -> Iterator[Queue]:
    opened = open_queue(store_url)
    yield opened
    opened.close()


@pytest.fixture
def jobs(home: Path) -> Path:
    folder = home / "jobs"
    folder.mkdir()
    (folder / "Fault.Record.py").write_text(RECORDING_SCRIPT, encoding="utf-8")
    return folder


@pytest.mark.timeout(120)
def test_killed_workers_lose_no_job_and_rerun_only_what_they_held(
    store_url: str, queue: Queue, jobs: Path, home: Path
) -> None:
    runs = home / "runs.txt"
    for _ in range(JOBS):
        queue.add("Fault.Record", {"runs": str(runs), "seconds": 0.01})

    workers = [
        start_worker(jobs, store_url, "--concurrency", "2") for _ in range(WORKERS)
    ]
    killed: set[int] = set()
    chance = random.Random(os.getpid())
    while len(killed) < KILLS and count(queue, Status.SUCCESS) < JOBS * 0.9:
        time.sleep(chance.uniform(0.1, 0.4))
        busy = {pid(job.worker) for job in queue.jobs(status=Status.RUNNING)}
        candidates = [n for n, worker in enumerate(workers) if worker.pid in busy]
        if not candidates:
            continue
        victim = chance.choice(candidates)
        workers[victim].send_signal(signal.SIGKILL)
        workers[victim].wait()
        killed.add(workers[victim].pid)
        workers[victim] = start_worker(jobs, store_url, "--concurrency", "2")

    try:
        wait_until(lambda: count(queue, Status.SUCCESS) == JOBS, 60)
    finally:
        print("Jobs by status:", Counter(j.status for j in queue.jobs(limit=JOBS)))
    for worker in workers:
        worker.send_signal(signal.SIGTERM)
    assert [worker.wait(30) for worker in workers] == [0] * WORKERS

    ran = Counter(int(line.split()[0]) for line in runs.read_text().splitlines())
    assert len(killed) >= 3, "Too few kills landed to test anything."
    assert count(queue, Status.RUNNING) == count(queue, Status.PENDING) == 0
    assert sorted(ran) == [job.id for job in reversed(queue.jobs(limit=JOBS))]
    lost_somewhere = 0
    for job_id, times in ran.items():
        outcomes = queue.attempts(job_id)
        lost = [a for a in outcomes if a.outcome == "Lost"]
        assert [a.outcome for a in outcomes].count("Success") == 1
        assert {pid(a.worker) for a in lost} <= killed
        assert times <= 1 + len(lost), f"Job {job_id} ran {times} times."
        lost_somewhere += bool(lost)
    assert lost_somewhere > 0, "No kill hit a running job."


@pytest.mark.timeout(60)
def test_sigterm_lets_the_running_job_finish_and_claims_nothing_more(
    store_url: str, queue: Queue, jobs: Path, home: Path
) -> None:
    runs = home / "runs.txt"
    first = queue.add("Fault.Record", {"runs": str(runs), "seconds": 0.5})
    worker = start_worker(jobs, store_url, "--grace", "10")
    wait_until(runs.exists, 20)
    second = queue.add("Fault.Record", {"runs": str(runs), "seconds": 0})

    worker.send_signal(signal.SIGTERM)

    assert worker.wait(20) == 0
    assert queue.get(first.id).status is Status.SUCCESS
    assert queue.get(second.id).status is Status.PENDING


@pytest.mark.timeout(60)
def test_a_job_that_outlives_the_grace_period_is_released(
    store_url: str, queue: Queue, jobs: Path, home: Path
) -> None:
    runs = home / "runs.txt"
    held = queue.add("Fault.Record", {"runs": str(runs), "seconds": 30})
    worker = start_worker(jobs, store_url, "--grace", "0.2")
    wait_until(runs.exists, 20)

    worker.send_signal(signal.SIGTERM)

    assert worker.wait(20) == 0
    assert queue.get(held.id).status is Status.PENDING
    assert [a.outcome for a in queue.attempts(held.id)] == ["Released"]


@pytest.mark.timeout(60)
def test_a_job_that_keeps_killing_its_worker_ends_failed(
    store_url: str, queue: Queue, jobs: Path
) -> None:
    (jobs / "Fault.Crash.py").write_text(
        "import os\nimport signal\n\nfrom hooks import job\n\n\n"
        '@job("Fault.Crash", lost=2)\n'
        "def crash(job):\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n",
        encoding="utf-8",
    )
    crasher = queue.add("Fault.Crash", {})
    worker = start_worker(jobs, store_url)
    deaths = 0

    def settled() -> bool:
        nonlocal worker, deaths
        if worker.poll() is not None:
            deaths += 1
            worker = start_worker(jobs, store_url)
        return queue.get(crasher.id).status is Status.FAILED

    wait_until(settled, 30)
    worker.send_signal(signal.SIGTERM)

    assert worker.wait(20) == 0
    assert deaths == 2
    assert [a.outcome for a in queue.attempts(crasher.id)] == ["Lost", "Lost"]
    assert "not run again" in str(queue.get(crasher.id).error)
