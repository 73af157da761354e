"""The job queue, kept in the store beside the sessions.

:class:`Queue` holds every statement both backends share; :mod:`.sqlite` and
:mod:`.postgresql` add how each claims a job without a race and how an idle job
processor learns, within milliseconds, that there is work. Every change to a
running job is fenced by its id and attempt number, so a worker that lost its
job to another changes nothing.
"""

from __future__ import annotations

import atexit
import json
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Literal, NamedTuple

import attrs

from aps.database import Database, connection_broken, transaction
from aps.settings import Settings
from hooks.jobs import Attempt, Job, JobError, JSONValue, Status
from hooks.queue.tables import (
    ATTEMPT_COLUMNS,
    JOB_COLUMNS,
    attempt_from,
    job_from,
)

Heartbeat = Literal["ok", "cancel", "gone"]


@attrs.frozen(eq=False)
class _Held:
    """A connection, the lock its thread holds while using it, and that thread."""

    conn: Any
    lock: threading.RLock
    thread: threading.Thread


@attrs.frozen
class _Rows:
    """What a statement returned, read before its connection is let go."""

    rows: list[Any]
    rowcount: int

    @classmethod
    def read(cls, cursor: Any) -> _Rows:
        rows = cursor.fetchall() if cursor.description else []
        return cls(rows, cursor.rowcount)

    def fetchone(self) -> Any:
        return self.rows[0] if self.rows else None

    def fetchall(self) -> list[Any]:
        return self.rows


@attrs.frozen
class Claim:
    """What a worker asks for when it claims a job; see :meth:`Queue.claim`."""

    worker: str
    types: tuple[str, ...] = ()
    lease: float = 30.0
    lost_limits: Mapping[str, int] = attrs.field(factory=dict)


class Ended(NamedTuple):
    """How an attempt ended (None: it was no longer ours), and the next job."""

    status: Status | None
    next: Job | None


# Where a running job is changed, it must still be the attempt we hold.
_FENCE = "id = ? AND attempt = ? AND status = 'Running'"

ADD_SQL = (
    "INSERT INTO jobs (name, parameters, description, priority, status,"
    " submitter, autodesk_id, created, available)"
    " VALUES (?, ?, ?, ?, 'Pending', ?, ?, {now}, {now})"
    f" RETURNING {JOB_COLUMNS}"
)
SUCCEED_SQL = (
    "UPDATE jobs SET status = CASE WHEN cancel = 1 THEN 'Cancelled'"
    " ELSE 'Success' END, result = ?, error = NULL, lease = NULL"
    f" WHERE {_FENCE}"
)


class Queue:
    """Jobs in one store. Open one with :func:`open_queue`; close it when done,
    or use it as a context manager.

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
        self._connections: list[_Held] = []
        self._lock = threading.Lock()
        self._statements: dict[str, str] = {}
        self.create_tables()

    # Connections and statements.

    @contextmanager
    def _using(self) -> Iterator[Any]:
        """The calling thread's connection, held so that close() waits for it.

        Database errors leave as a StoreError that says what they mean.
        """
        held: _Held | None = getattr(self._local, "held", None)
        if held is None:
            self._close_orphans()
            thread = threading.current_thread()
            held = _Held(self.db.connect(), threading.RLock(), thread)
            self._local.held = held
            with self._lock:
                self._connections.append(held)
        try:
            with held.lock, self.db.guard():
                yield held.conn
        except BaseException:
            if connection_broken(held.conn):  # Dropped by the server: reconnect next.
                self.disconnect()
            raise

    def _close_orphans(self) -> None:
        """Close the connections of threads that ended without disconnecting.

        Hosts call add_job from threads of their own that come and go; without
        this each would leave a connection open until the queue closes.
        """
        with self._lock:
            orphans = [h for h in self._connections if not h.thread.is_alive()]
            for held in orphans:
                self._connections.remove(held)
        for held in orphans:
            with held.lock:
                held.conn.close()

    def _sql(self, query: str) -> str:
        statement = self._statements.get(query)
        if statement is None:
            statement = self.db.sql(query.replace("{now}", self.now_sql))
            self._statements[query] = statement
        return statement

    def _run(self, query: str, *params: Any, conn: Any = None) -> _Rows:
        """Run one statement and read all it returns while the connection is held."""
        if conn is not None:
            return _Rows.read(conn.execute(self._sql(query), params))
        with self._using() as own:
            return _Rows.read(own.execute(self._sql(query), params))

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        with self._using() as own, transaction(self.db, own) as conn:
            yield conn

    @contextmanager
    def _processor_transaction(self) -> Iterator[Any]:
        """A transaction for a job processor's own bookkeeping."""
        with self._transaction() as conn:
            self.relax_durability(conn)
            yield conn

    def disconnect(self) -> None:
        """Close the calling thread's connection, before the thread ends."""
        held: _Held | None = getattr(self._local, "held", None)
        if held is None:
            return
        self._local.held = None
        with self._lock:
            if held not in self._connections:
                return  # close() came first.
            self._connections.remove(held)
        with held.lock:
            held.conn.close()

    def __enter__(self) -> Queue:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every connection this queue opened, once each is free."""
        with self._lock:
            connections, self._connections = self._connections, []
        for held in connections:
            with held.lock:
                held.conn.close()
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

    def relax_durability(self, conn: Any) -> None:
        """Let this transaction commit without waiting for the disk, if it can."""

    def relax_this_thread(self) -> None:
        """:meth:`relax_durability` for everything the calling thread writes.

        For the threads of a job processor, which write only its bookkeeping.
        """

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
        row = self._insert(
            name,
            json.dumps(parameters),
            description,
            int(priority),
            submitter,
            autodesk_id,
        )
        _wake_local(self.db.url)
        return job_from(row)

    def _insert(self, *values: Any) -> Any:
        with self._transaction() as conn:
            row = self._run(ADD_SQL, *values, conn=conn).fetchone()
            self.notify(conn)
        return row

    def get(self, job_id: int) -> Job:
        row = self._run(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?", job_id)
        found = row.fetchone()
        if found is None:
            raise JobError(f"There is no job {job_id} in {self.db.display}.")
        return job_from(found)

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
        return [job_from(row) for row in rows.fetchall()]

    def attempts(self, job_id: int) -> list[Attempt]:
        rows = self._run(
            f"SELECT {ATTEMPT_COLUMNS} FROM job_attempts WHERE job_id = ?"
            " ORDER BY attempt",
            job_id,
        )
        return [attempt_from(row) for row in rows.fetchall()]

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

    def claim(
        self,
        worker: str,
        types: Sequence[str] = (),
        lease: float = 30.0,
        lost_limits: Mapping[str, int] | None = None,
    ) -> Job | None:
        """Take the next job of ``types`` for ``worker`` under a lease, if any.

        ``lost_limits`` are the lost attempts each known job type tolerates;
        recording them with the claim saves a write per job.
        """
        request = Claim(worker, tuple(types), lease, dict(lost_limits or {}))
        with self._processor_transaction() as conn:
            return self._claim(conn, request)

    def claim_sql(self, request: Claim) -> tuple[str, list[Any]]:
        """The statement that claims the next job, and its parameters."""
        condition, params = self.type_filter(request.types)
        limits = sorted(request.lost_limits.items())
        cases = " ".join(["WHEN ? THEN ?"] * len(limits))
        max_lost = f"CASE name {cases} ELSE max_lost END" if limits else "max_lost"
        statement = (
            "UPDATE jobs SET status = 'Running', attempt = attempt + 1,"
            f" worker = ?, lease = {{now}} + ?, cancel = 0, max_lost = {max_lost}"
            " WHERE id = (SELECT id FROM jobs"
            " WHERE status = 'Pending' AND available <= {now}"
            f" AND {condition} ORDER BY priority, id LIMIT 1{self.lock_sql})"
            f" RETURNING {JOB_COLUMNS}"
        )
        values = [request.worker, request.lease]
        return statement, [*values, *(v for pair in limits for v in pair), *params]

    def _claim(self, conn: Any, request: Claim) -> Job | None:
        statement, values = self.claim_sql(request)
        row = self._run(statement, *values, conn=conn).fetchone()
        if row is None:
            return None
        job = job_from(row)
        self._run(
            "INSERT INTO job_attempts (job_id, attempt, worker, started)"
            " VALUES (?, ?, ?, {now})",
            job.id,
            job.attempt,
            request.worker,
            conn=conn,
        )
        return job

    def limit_lost(self, job: Job, lost: int) -> bool:
        """Record how many lost attempts the job's type tolerates.

        Whoever finds the job's lease expired reads it there.
        """
        cursor = self._run(
            f"UPDATE jobs SET max_lost = ? WHERE {_FENCE}", lost, job.id, job.attempt
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
        return self.succeed_then_claim(job, result, None).status

    def succeed_then_claim(
        self, job: Job, result: JSONValue, then: Claim | None
    ) -> Ended:
        """:meth:`succeed`, and claim the next job in the same transaction.

        One write instead of two per job is what lets workers keep up.
        """
        with self._processor_transaction() as conn:
            row = self._run(
                f"{SUCCEED_SQL} RETURNING status",
                json.dumps(result),
                job.id,
                job.attempt,
                conn=conn,
            ).fetchone()
            status = None if row is None else Status(row[0])
            if status is not None:
                self._end_attempt(conn, job, status, None, None)
            return Ended(status, self._claim(conn, then) if then else None)

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
        ended = self.fail_then_claim(
            job, error, None, traceback=traceback, attempts=attempts, delay=retry_delay
        )
        return ended.status

    def fail_then_claim(
        self,
        job: Job,
        error: str,
        then: Claim | None,
        *,
        traceback: str | None = None,
        attempts: int = 1,
        delay: float = 0.0,
    ) -> Ended:
        """:meth:`fail`, and claim the next job in the same transaction."""
        with self._processor_transaction() as conn:
            row = self._run(
                "UPDATE jobs SET failures = failures + 1, error = ?, lease = NULL,"
                " available = {now} + ?, status = CASE WHEN cancel = 1 THEN"
                " 'Cancelled' WHEN failures + 1 < ? THEN 'Pending' ELSE 'Failed' END"
                f" WHERE {_FENCE} RETURNING status",
                error,
                delay,
                attempts,
                job.id,
                job.attempt,
                conn=conn,
            ).fetchone()
            status = None if row is None else Status(row[0])
            if status is not None:
                # A job cancelled while it ran, that then stopped with an
                # error, ended because it was cancelled.
                cancelled = status is Status.CANCELLED
                outcome = Status.CANCELLED if cancelled else Status.FAILED
                self._end_attempt(conn, job, outcome, error, traceback)
            if status is Status.PENDING:
                self.notify(conn)
            return Ended(status, self._claim(conn, then) if then else None)

    def release(self, job: Job, reason: str) -> bool:
        """Give an unfinished job back to the queue, for another worker to run."""
        with self._processor_transaction() as conn:
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
        it has lost as many attempts as its job type tolerates. It runs again
        at once: a lost attempt says nothing about the job to wait out.
        """
        with self._processor_transaction() as conn:
            rows = self._run(
                "UPDATE jobs SET lost = lost + 1, lease = NULL, available = {now},"
                " status = CASE WHEN cancel = 1 THEN 'Cancelled'"
                " WHEN lost + 1 >= max_lost THEN 'Failed' ELSE 'Pending' END,"
                " error = CASE WHEN cancel = 0 AND lost + 1 >= max_lost THEN ?"
                " ELSE error END"
                " WHERE status = 'Running' AND lease < {now}"
                f" RETURNING {JOB_COLUMNS}",
                _LOST_TOO_OFTEN,
                conn=conn,
            ).fetchall()
            jobs = [job_from(row) for row in rows]
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
            if not _defaults:
                atexit.register(_close_defaults)
            queue = _defaults[url] = open_queue(url)
        return queue


def _close_defaults() -> None:
    with _defaults_lock:
        queues = list(_defaults.values())
        _defaults.clear()
    for queue in queues:
        queue.close()
