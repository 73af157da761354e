"""The job queue, kept in the store beside the sessions.

:class:`Queue` holds every statement both backends share; :mod:`.sqlite` and
:mod:`.postgresql` add how each claims a job without a race and how an idle job
processor learns, within milliseconds, that there is work. Every change to a
running job is fenced by its id and attempt number, so a worker that lost its
job to another changes nothing.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Literal

from aps.database import Database, transaction
from aps.settings import Settings
from hooks.jobs import Attempt, Job, JobError, JSONValue, Status

Heartbeat = Literal["ok", "cancel", "gone"]

JOB_COLUMNS = (
    "id, name, parameters, description, priority, status, submitter, autodesk_id, "
    "created, attempt, result, error, worker"
)
ATTEMPT_COLUMNS = "job_id, attempt, worker, started, ended, outcome, error, traceback"

# Columns and indexes both backends share; {id} and {real} are their types.
SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id {id},
    name TEXT NOT NULL,
    parameters TEXT NOT NULL,
    description TEXT NOT NULL,
    priority INTEGER NOT NULL,
    status TEXT NOT NULL,
    submitter TEXT NOT NULL,
    autodesk_id TEXT,
    created {real} NOT NULL,
    available {real} NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0,
    lost INTEGER NOT NULL DEFAULT 0,
    max_lost INTEGER NOT NULL DEFAULT 3,
    retry_delay {real} NOT NULL DEFAULT 0,
    cancel INTEGER NOT NULL DEFAULT 0,
    worker TEXT,
    lease {real},
    result TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS jobs_pending ON jobs (priority, id)
    WHERE status = 'Pending';
CREATE INDEX IF NOT EXISTS jobs_running ON jobs (lease) WHERE status = 'Running';
CREATE TABLE IF NOT EXISTS job_attempts (
    job_id BIGINT NOT NULL,
    attempt INTEGER NOT NULL,
    worker TEXT NOT NULL,
    started {real} NOT NULL,
    ended {real},
    outcome TEXT,
    error TEXT,
    traceback TEXT,
    PRIMARY KEY (job_id, attempt)
);
"""

# Where a running job is changed, it must still be the attempt we hold.
_FENCE = "id = ? AND attempt = ? AND status = 'Running'"


class Queue:
    """Jobs in one store. Open one with :func:`open_queue`.

    Safe to share between threads: each thread gets its own connection.
    """

    # The SQL expression for the database's clock, in seconds since the epoch.
    # Leases use the database's clock so job processors on machines whose
    # clocks disagree still agree on when a lease ran out.
    now_sql = ""
    # Appended to the claim's inner SELECT.
    lock_sql = ""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._local = threading.local()
        self._connections: list[Any] = []
        self._lock = threading.Lock()
        self._statements: dict[str, str] = {}
        self.create_tables()

    # Connections and statements.

    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self.db.connect()
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def _sql(self, query: str) -> str:
        statement = self._statements.get(query)
        if statement is None:
            statement = self.db.sql(query.replace("{now}", self.now_sql))
            self._statements[query] = statement
        return statement

    def _run(self, query: str, *params: Any, conn: Any = None) -> Any:
        return (conn or self._conn()).execute(self._sql(query), params)

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        with transaction(self.db, self._conn()) as conn:
            yield conn

    def disconnect(self) -> None:
        """Close the calling thread's connection, before the thread ends."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            return
        self._local.conn = None
        with self._lock:
            if conn not in self._connections:
                return  # close() came first.
            self._connections.remove(conn)
        conn.close()

    def close(self) -> None:
        """Close every connection this queue opened."""
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()
        self._local = threading.local()

    def create_tables(self) -> None:
        raise NotImplementedError

    # What a backend adds.

    # How this backend matches a job name against one glob pattern.
    match_sql = ""

    @staticmethod
    def glob(pattern: str) -> str:
        """``pattern`` as ``match_sql`` expects it."""
        return pattern

    def type_filter(self, patterns: Sequence[str]) -> tuple[str, list[str]]:
        """A SQL condition that matches job names against glob ``patterns``."""
        if not patterns:
            return "1 = 1", []
        condition = " OR ".join([self.match_sql] * len(patterns))
        return f"({condition})", [self.glob(pattern) for pattern in patterns]

    def notify(self, conn: Any) -> None:
        """Tell idle job processors, once ``conn`` commits, that work arrived."""

    def start_listening(self) -> None:
        """Start noticing changes now, so none made before the next wait is missed."""

    def wait(self, timeout: float, wake: threading.Event) -> None:
        """Return when the queue may have changed, ``wake`` is set, or later."""
        raise NotImplementedError

    # Submitting and reading.

    def add(
        self,
        name: str,
        parameters: dict[str, JSONValue],
        *,
        description: str = "",
        priority: int = 10,
        submitter: str = "",
        autodesk_id: str | None = None,
    ) -> Job:
        """Store a new Pending job (``parameters`` already checked) and return it."""
        with self._transaction() as conn:
            row = self._run(
                f"INSERT INTO jobs (name, parameters, description, priority, status,"
                f" submitter, autodesk_id, created, available)"
                f" VALUES (?, ?, ?, ?, 'Pending', ?, ?, {{now}}, {{now}})"
                f" RETURNING {JOB_COLUMNS}",
                name,
                json.dumps(parameters),
                description,
                int(priority),
                submitter,
                autodesk_id,
                conn=conn,
            ).fetchone()
            self.notify(conn)
        _wake_local(self.db.url)
        return _job(row)

    def get(self, job_id: int) -> Job:
        row = self._run(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?", job_id)
        found = row.fetchone()
        if found is None:
            raise JobError(f"There is no job {job_id} in {self.db.display}.")
        return _job(found)

    def jobs(
        self, *, status: Status | str | None = None, limit: int = 100
    ) -> list[Job]:
        """The newest jobs first, optionally only those with ``status``."""
        if status:
            query = f"SELECT {JOB_COLUMNS} FROM jobs WHERE status = ?"
            rows = self._run(f"{query} ORDER BY id DESC LIMIT ?", Status(status), limit)
        else:
            query = f"SELECT {JOB_COLUMNS} FROM jobs"
            rows = self._run(f"{query} ORDER BY id DESC LIMIT ?", limit)
        return [_job(row) for row in rows.fetchall()]

    def attempts(self, job_id: int) -> list[Attempt]:
        rows = self._run(
            f"SELECT {ATTEMPT_COLUMNS} FROM job_attempts WHERE job_id = ?"
            " ORDER BY attempt",
            job_id,
        )
        return [_attempt(row) for row in rows.fetchall()]

    def pending(self, types: Sequence[str] = ()) -> int:
        """How many jobs of ``types`` wait to run, backoff included."""
        condition, params = self.type_filter(types)
        row = self._run(
            f"SELECT COUNT(*) FROM jobs WHERE status = 'Pending' AND {condition}",
            *params,
        ).fetchone()
        return int(row[0])

    def next_due(self, types: Sequence[str] = ()) -> float | None:
        """Seconds until the next Pending job of ``types`` may run, if any."""
        condition, params = self.type_filter(types)
        row = self._run(
            "SELECT MIN(available) - {now} FROM jobs"
            f" WHERE status = 'Pending' AND {condition}",
            *params,
        ).fetchone()
        return None if row[0] is None else max(0.0, float(row[0]))

    # Cancelling and retrying.

    def cancel(self, job_id: int) -> Job:
        """Cancel a Pending job, or ask a Running one to stop."""
        with self._transaction() as conn:
            pending = "UPDATE jobs SET status = 'Cancelled' WHERE id = ?"
            running = "UPDATE jobs SET cancel = 1 WHERE id = ?"
            done = (
                self._run(
                    f"{pending} AND status = 'Pending'", job_id, conn=conn
                ).rowcount
                or self._run(
                    f"{running} AND status = 'Running'", job_id, conn=conn
                ).rowcount
            )
        job = self.get(job_id)
        if not done:
            raise JobError(
                f"Job {job_id} is {job.status}; only Pending or Running jobs can be "
                "cancelled."
            )
        return job

    def retry(self, job_id: int) -> Job:
        """Put a Failed or Cancelled job back in the queue with all its attempts."""
        with self._transaction() as conn:
            done = self._run(
                "UPDATE jobs SET status = 'Pending', available = {now}, failures = 0,"
                " lost = 0, cancel = 0, error = NULL, result = NULL"
                " WHERE id = ? AND status IN ('Failed', 'Cancelled')",
                job_id,
                conn=conn,
            ).rowcount
            if done:
                self.notify(conn)
        job = self.get(job_id)
        if not done:
            raise JobError(
                f"Job {job_id} is {job.status}; only Failed or Cancelled jobs can be "
                "retried."
            )
        _wake_local(self.db.url)
        return job

    # What a job processor does.

    def claim(self, worker: str, types: Sequence[str], lease: float) -> Job | None:
        """Take the next job of ``types`` for ``worker`` under a lease, if any."""
        condition, params = self.type_filter(types)
        with self._transaction() as conn:
            row = self._run(
                "UPDATE jobs SET status = 'Running', attempt = attempt + 1,"
                " worker = ?, lease = {now} + ?, cancel = 0"
                " WHERE id = (SELECT id FROM jobs"
                " WHERE status = 'Pending' AND available <= {now}"
                f" AND {condition} ORDER BY priority, id LIMIT 1{self.lock_sql})"
                f" RETURNING {JOB_COLUMNS}",
                worker,
                lease,
                *params,
                conn=conn,
            ).fetchone()
            if row is None:
                return None
            job = _job(row)
            self._run(
                "INSERT INTO job_attempts (job_id, attempt, worker, started)"
                " VALUES (?, ?, ?, {now})",
                job.id,
                job.attempt,
                worker,
                conn=conn,
            )
        return job

    def started(self, job: Job, *, lost: int, retry_delay: float) -> bool:
        """Record the job type's limits, for whoever finds the job's lease expired."""
        cursor = self._run(
            f"UPDATE jobs SET max_lost = ?, retry_delay = ? WHERE {_FENCE}",
            lost,
            retry_delay,
            job.id,
            job.attempt,
        )
        return bool(cursor.rowcount)

    def heartbeat(self, job: Job, lease: float) -> Heartbeat:
        """Extend the job's lease; say whether it was cancelled or taken away."""
        row = self._run(
            f"UPDATE jobs SET lease = {{now}} + ? WHERE {_FENCE} RETURNING cancel",
            lease,
            job.id,
            job.attempt,
        ).fetchone()
        if row is None:
            return "gone"
        return "cancel" if row[0] else "ok"

    def succeed(self, job: Job, result: JSONValue) -> Status | None:
        """End the attempt well; None when the job is no longer this attempt's."""
        with self._transaction() as conn:
            row = self._run(
                "UPDATE jobs SET status = CASE WHEN cancel = 1 THEN 'Cancelled'"
                " ELSE 'Success' END, result = ?, error = NULL, lease = NULL"
                f" WHERE {_FENCE} RETURNING status",
                json.dumps(result),
                job.id,
                job.attempt,
                conn=conn,
            ).fetchone()
            if row is None:
                return None
            status = Status(row[0])
            self._end_attempt(conn, job, status, None, None)
        return status

    def fail(
        self,
        job: Job,
        error: str,
        *,
        traceback: str | None = None,
        attempts: int = 1,
        retry_delay: float = 0.0,
    ) -> Status | None:
        """End the attempt with ``error``: Pending while attempts remain, else Failed.

        None when the job is no longer this attempt's.
        """
        with self._transaction() as conn:
            row = self._run(
                "UPDATE jobs SET failures = failures + 1, error = ?, lease = NULL,"
                " available = {now} + ?, status = CASE WHEN cancel = 1 THEN"
                " 'Cancelled' WHEN failures + 1 < ? THEN 'Pending' ELSE 'Failed' END"
                f" WHERE {_FENCE} RETURNING status",
                error,
                retry_delay,
                attempts,
                job.id,
                job.attempt,
                conn=conn,
            ).fetchone()
            if row is None:
                return None
            status = Status(row[0])
            self._end_attempt(conn, job, Status.FAILED, error, traceback)
            if status is Status.PENDING:
                self.notify(conn)
        return status

    def release(self, job: Job, reason: str) -> bool:
        """Give an unfinished job back to the queue, for another worker to run."""
        with self._transaction() as conn:
            done = self._run(
                "UPDATE jobs SET status = CASE WHEN cancel = 1 THEN 'Cancelled'"
                " ELSE 'Pending' END, lease = NULL, available = {now}"
                f" WHERE {_FENCE}",
                job.id,
                job.attempt,
                conn=conn,
            ).rowcount
            if done:
                self._end_attempt(conn, job, "Released", reason, None)
                self.notify(conn)
        return bool(done)

    def reap(self) -> list[Job]:
        """Take back every job whose lease ran out; return them as they are now.

        Each counts as a lost attempt: the job runs again, or ends Failed once
        it has lost as many attempts as its job type tolerates.
        """
        with self._transaction() as conn:
            rows = self._run(
                "UPDATE jobs SET lost = lost + 1, lease = NULL,"
                " available = {now} + retry_delay,"
                " status = CASE WHEN cancel = 1 THEN 'Cancelled'"
                " WHEN lost + 1 >= max_lost THEN 'Failed' ELSE 'Pending' END,"
                " error = CASE WHEN cancel = 0 AND lost + 1 >= max_lost THEN ?"
                " ELSE error END"
                " WHERE status = 'Running' AND lease < {now}"
                f" RETURNING {JOB_COLUMNS}",
                _LOST_TOO_OFTEN,
                conn=conn,
            ).fetchall()
            jobs = [_job(row) for row in rows]
            for job in jobs:
                reason = f"The worker {job.worker} stopped renewing the job's lease."
                self._end_attempt(conn, job, "Lost", reason, None)
            if any(job.status is Status.PENDING for job in jobs):
                self.notify(conn)
        return jobs

    def _end_attempt(
        self,
        conn: Any,
        job: Job,
        outcome: str,
        error: str | None,
        traceback: str | None,
    ) -> None:
        self._run(
            "UPDATE job_attempts SET ended = {now}, outcome = ?, error = ?,"
            " traceback = ? WHERE job_id = ? AND attempt = ?",
            str(outcome),
            error,
            traceback,
            job.id,
            job.attempt,
            conn=conn,
        )


_LOST_TOO_OFTEN = (
    "The job's worker stopped while running it as many times as its job type "
    "allows, so it is not run again. Find what stops the worker, then retry the job."
)


def _time(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(float(value), UTC)


def _job(row: Sequence[Any]) -> Job:
    (id_, name, parameters, description, priority, status, submitter) = row[:7]
    (autodesk_id, created, attempt, result, error, worker) = row[7:]
    return Job(
        id=int(id_),
        name=name,
        parameters=json.loads(parameters),
        description=description,
        priority=int(priority),
        status=Status(status),
        submitter=submitter,
        autodesk_id=autodesk_id,
        created=datetime.fromtimestamp(float(created), UTC),
        attempt=int(attempt),
        result=None if result is None else json.loads(result),
        error=error,
        worker=worker,
    )


def _attempt(row: Sequence[Any]) -> Attempt:
    job_id, number, worker, started, ended, outcome, error, traceback = row
    return Attempt(
        job_id=int(job_id),
        number=int(number),
        worker=worker,
        started=datetime.fromtimestamp(float(started), UTC),
        ended=_time(ended),
        outcome=outcome,
        error=error,
        traceback=traceback,
    )


# Job processors in this process that wait for work, by store URL, so that an
# add_job here wakes them without waiting for the database to tell them.
_waiting: dict[str, set[threading.Event]] = {}
_waiting_lock = threading.Lock()


def listen_local(url: str, wake: threading.Event) -> None:
    with _waiting_lock:
        _waiting.setdefault(url, set()).add(wake)


def unlisten_local(url: str, wake: threading.Event) -> None:
    with _waiting_lock:
        _waiting.get(url, set()).discard(wake)


def _wake_local(url: str) -> None:
    with _waiting_lock:
        events = list(_waiting.get(url, ()))
    for event in events:
        event.set()


def open_queue(store: str | Database | None = None) -> Queue:
    """The queue in ``store`` (a URL), or in the store the settings name."""
    if store is None:
        store = Settings.load().store_url
    db = store if isinstance(store, Database) else Database(store)
    if db.dialect == "postgresql":
        from hooks.queue.postgresql import PostgreSQLQueue

        return PostgreSQLQueue(db)

    from hooks.queue.sqlite import SQLiteQueue

    return SQLiteQueue(db)


_defaults: dict[str, Queue] = {}
_defaults_lock = threading.Lock()


def default_queue() -> Queue:
    """The queue :func:`hooks.add_job` uses: the one in the settings' store."""
    url = Settings.load().store_url
    with _defaults_lock:
        queue = _defaults.get(url)
        if queue is None:
            queue = _defaults[url] = open_queue(url)
        return queue
