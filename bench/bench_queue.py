"""Throughput: enqueue and process 10,000 no-op jobs with 2 worker processes.

Compared, in the same run and on the same machine, with huey's SQLite storage
doing the same work. Each system gets the same protocol: two worker processes
start and wait; the jobs are enqueued one by one (timed); then both workers
are told to go and drain the queue until it is empty (timed).

    .venv/bin/python bench/bench_queue.py [--jobs N] [--no-postgresql]
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _stores

WORKERS = 2


def _worker(system: str, store: str) -> None:
    """One worker process: get ready, wait for 'go', drain the queue, exit."""
    if system == "huey":
        from huey import SqliteHuey

        huey = SqliteHuey(filename=store)
        huey.task(name="noop")(_noop)
        print("ready", flush=True)
        sys.stdin.readline()
        while (task := huey.dequeue()) is not None:
            huey.execute(task)
        return

    from hooks import Processor, job, open_queue

    job("Bench.Noop")(_noop)
    queue = open_queue(store)
    processor = Processor(queue, jobs_folder=Path(tempfile.mkdtemp()))
    print("ready", flush=True)
    sys.stdin.readline()
    processor.run_until_empty()


def _noop(*args: object) -> None:
    return None


def _enqueue_apshooks(store: str) -> Callable[[int], None]:
    from hooks import add_job, open_queue

    queue = open_queue(store)
    _opened.append(queue)

    def enqueue(n: int) -> None:
        add_job("Bench.Noop", {"n": n}, queue=queue)

    return enqueue


_opened: list[Any] = []  # Queues the producer opened, closed once measured.


def _enqueue_huey(store: str) -> Callable[[int], None]:
    from huey import SqliteHuey

    huey = SqliteHuey(filename=store)
    noop = huey.task(name="noop")(_noop)
    return lambda n: noop(n) and None


def measure(system: str, store: str, jobs: int) -> tuple[float, float]:
    """Seconds to enqueue ``jobs`` jobs, and to process them."""
    enqueue = _enqueue_huey(store) if system == "huey" else _enqueue_apshooks(store)
    workers = [
        subprocess.Popen(
            [sys.executable, __file__, "--worker", system, store],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(WORKERS)
    ]
    for worker in workers:
        assert worker.stdout is not None
        assert worker.stdout.readline() == "ready\n"

    started = time.perf_counter()
    for n in range(jobs):
        enqueue(n)
    enqueued = time.perf_counter()

    for worker in workers:
        assert worker.stdin is not None
        worker.stdin.write("go\n")
        worker.stdin.flush()
    for worker in workers:
        worker.communicate()  # waits, and closes its pipes
        assert worker.returncode == 0, f"A {system} worker failed."
    processed = time.perf_counter()
    while _opened:
        _opened.pop().close()
    return enqueued - started, processed - enqueued


def main() -> None:
    chosen = _stores.options(__doc__.splitlines()[0], jobs=10_000)
    runs = _stores.runs("huey, SQLite (baseline)", postgresql=not chosen.no_postgresql)

    print(f"{chosen.jobs} no-op jobs, {WORKERS} worker processes, one producer.")
    baseline: float | None = None
    for label, system, store in runs:
        enqueue, process = measure(system, store, chosen.jobs)
        rate = chosen.jobs / (enqueue + process)
        baseline = baseline or rate
        print(
            f"{label:<24} enqueue {chosen.jobs / enqueue:>7.0f}/s  "
            f"process {chosen.jobs / process:>7.0f}/s  "
            f"total {rate:>7.0f} jobs/s  = {rate / baseline:.2f}x huey"
        )


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        _worker(sys.argv[2], sys.argv[3])
    else:
        main()
