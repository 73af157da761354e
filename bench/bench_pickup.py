"""Pickup latency: from add_job to the job starting on an idle job processor.

The job processor runs in a process of its own, as in production, so the
wake-up crosses processes: ``PRAGMA data_version`` on SQLite, ``LISTEN/NOTIFY``
on PostgreSQL. Both ends of each latency are read from the database's own
clock (the job's creation and its attempt's start), so no clocks are compared.
The baseline, measured in the same run, is huey's consumer on SQLite with its
default polling.

    .venv/bin/python bench/bench_pickup.py [--jobs N] [--no-postgresql]
"""

from __future__ import annotations

import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _stores


def _worker(system: str, store: str) -> None:
    """The job processor, or huey's consumer, until stdin closes."""
    if system == "huey":
        huey = _huey(store)
        consumer = huey.create_consumer(workers=1)
        consumer.start()
        print("ready", flush=True)
        sys.stdin.read()
        consumer.stop(graceful=True)
        return

    import threading

    from hooks import Processor, job, open_queue

    job("Bench.Noop")(lambda job: None)
    processor = Processor(open_queue(store), jobs_folder=Path(tempfile.mkdtemp()))
    thread = threading.Thread(target=processor.run)
    thread.start()
    print("ready", flush=True)
    sys.stdin.read()
    processor.stop()
    thread.join()


def _huey(store: str) -> Any:
    from huey import SqliteHuey

    huey = SqliteHuey(filename=store, results=False)

    @huey.task(name="started")  # type: ignore[untyped-decorator]
    def started(submitted: float) -> None:
        with open(store + ".latencies", "a", encoding="utf-8") as out:
            out.write(f"{time.time() - submitted}\n")

    huey.started = started
    return huey


def _submit_all(system: str, store: str, jobs: int) -> list[float]:
    """Submit one job at a time with idle gaps; return the latencies in ms."""
    pauses = random.Random(1)
    if system == "huey":
        started = _huey(store).started
        for _ in range(jobs):
            time.sleep(pauses.uniform(0.02, 0.05))
            started(time.time())
        _wait_for_lines(Path(store + ".latencies"), jobs)
        lines = Path(store + ".latencies").read_text().split()
        return [float(line) * 1000 for line in lines]

    from hooks import add_job, open_queue

    with open_queue(store) as queue:
        added = []
        for _ in range(jobs):
            time.sleep(pauses.uniform(0.02, 0.05))  # Let the processor go idle.
            added.append(add_job("Bench.Noop", queue=queue).id)
        while queue.pending() or queue.jobs(status="Running"):
            time.sleep(0.05)
        return [
            (queue.attempts(n)[0].started - queue.get(n).created).total_seconds() * 1000
            for n in added
        ]


def _wait_for_lines(path: Path, count: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if path.exists() and len(path.read_text().split()) >= count:
            return
        time.sleep(0.05)
    raise SystemExit(f"huey ran fewer than {count} jobs within a minute.")


def measure(system: str, store: str, jobs: int) -> list[float]:
    worker = subprocess.Popen(
        [sys.executable, __file__, "--worker", system, store],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert worker.stdout is not None
    assert worker.stdout.readline() == "ready\n"
    try:
        return _submit_all(system, store, jobs)
    finally:
        worker.communicate(timeout=30)  # ends its stdin, waits, closes its pipes


def main() -> None:
    chosen = _stores.options(__doc__.splitlines()[0], jobs=300)
    runs = _stores.runs(
        "huey consumer, SQLite (baseline)", postgresql=not chosen.no_postgresql
    )

    print(f"{chosen.jobs} jobs, each submitted to an idle processor.")
    base: tuple[float, float] | None = None
    for label, system, store in runs:
        latencies = measure(system, store, chosen.jobs)
        cuts = statistics.quantiles(latencies, n=100)
        p50, p99 = statistics.median(latencies), cuts[98]
        base = base or (p50, p99)
        print(
            f"{label:<34} p50 {p50:7.2f} ms ({p50 / base[0]:.3f}x)   "
            f"p99 {p99:7.2f} ms ({p99 / base[1]:.3f}x)"
        )


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        _worker(sys.argv[2], sys.argv[3])
    else:
        main()
