"""The job processor: claims jobs from the queue and runs their job functions.

One dispatcher (the thread that calls :meth:`Processor.run`) claims a job
whenever a slot is free and starts a thread for it; a heartbeat thread renews
the lease of every running job, passes on cancel requests, and takes back the
jobs of workers that stopped renewing theirs. A job runs in a fresh working
folder, inside the impersonation scope of the Autodesk ID that submitted it.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from queue import SimpleQueue

import attrs
from loguru import logger

import aps.logs
from aps.errors import StoreError
from aps.impersonation import impersonation, processing
from aps.settings import Settings
from hooks.jobs import Job, JobError, JobScripts, JobType, JSONValue, Status, Workdir
from hooks.queue import Claim, Queue, listen_local, unlisten_local

# How long the dispatcher waits at most before it looks at the queue again,
# whatever it was told; a safety net, not the way work is found.
IDLE_SECONDS = 1.0
# How often an idle dispatcher looks for a stop request left by a signal.
STOP_CHECK = 0.2
# The longest wait between two tries while the store cannot be used.
OUTAGE_MAX = 30.0


class Processor:
    """Runs jobs from ``queue`` until :meth:`stop` is called.

    :param jobs_folder: where the job scripts are; the settings' by default.
    :param concurrency: how many jobs run at once, each in a thread.
    :param types: glob patterns (``Sample.*``) of the job types to run; all
        when empty. Jobs of other types are never claimed.
    :param lease: seconds a claimed job stays this processor's without a
        heartbeat; after that another job processor takes it back.
    :param heartbeat: seconds between lease renewals; a third of the lease by
        default.
    :param grace: seconds running jobs get to finish once stopping.
    """

    def __init__(
        self,
        queue: Queue,
        *,
        jobs_folder: Path | str | None = None,
        concurrency: int = 1,
        types: Sequence[str] = (),
        lease: float = 30.0,
        heartbeat: float | None = None,
        grace: float = 30.0,
        settings: Settings | None = None,
    ) -> None:
        self.queue = queue
        self.settings = settings or Settings.load()
        folder = Path(jobs_folder) if jobs_folder else self.settings.jobs_folder
        self.scripts = JobScripts(folder)
        self.concurrency = concurrency
        self.types = tuple(types)
        self.lease = lease
        self.heartbeat = heartbeat or lease / 3
        self.grace = grace
        _check_timing(concurrency, lease, self.heartbeat, grace)
        _check_patterns(self.types)
        self.worker = f"{socket.gethostname()}:{os.getpid()}"

        self._running: dict[int, Job] = {}
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._stopped_at = 0.0
        self._asked_at: float | None = None
        self._grace_asked: float | None = None
        self._inbox: SimpleQueue[Job | None] = SimpleQueue()
        # The lost-attempts limit of each job type seen so far, and the one
        # each running job's claim recorded.
        self._lost_limits: dict[str, int] = {}
        self._recorded: dict[int, int | None] = {}

    def run(self, *, until_empty: bool = False) -> None:
        """Run jobs until stopped, or with ``until_empty`` until none is left.

        "None left" means no Pending job of this processor's types (those
        waiting out a backoff included) and none running here.
        """
        aps.logs.configure("processor", self.settings)
        self._stopping.clear()
        types = ", ".join(self.types) or "all"
        with processing():
            logger.info(
                f"Job processor {self.worker} started with {self.concurrency} "
                f"thread(s) for job types {types} on {self.queue.db.display}."
            )
            try:
                with self._heartbeats(), self._listening(), self._job_threads():
                    try:
                        self._dispatch(until_empty)
                    except KeyboardInterrupt:  # Ctrl-C without the CLI's handler.
                        self.stop()
                    self._finish()
            finally:
                # A thread still inside a released job must not claim another.
                self._stopping.set()
            logger.info(f"Job processor {self.worker} stopped.")

    def run_until_empty(self) -> None:
        """Run jobs until no runnable job remains, then return."""
        self.run(until_empty=True)

    def stop(self, *, grace: float | None = None) -> None:
        """Stop claiming; running jobs get ``grace`` seconds, then are released.

        Safe to call from any thread; a signal handler calls :meth:`request_stop`.
        """
        if grace is not None:
            self.grace = grace
        if not self._stopping.is_set():
            self._stopped_at = self._asked_at or time.monotonic()
        self._stopping.set()
        self._wake.set()

    def request_stop(self, *, grace: float | None = None) -> None:
        """:meth:`stop`, for signal handlers: it takes no lock.

        A handler runs between two steps of the main thread, which may hold
        the very lock an Event needs; so this only leaves a note, which the
        dispatcher and the grace period read within a fraction of a second.
        """
        if self._asked_at is None:
            self._asked_at = time.monotonic()
        if grace is not None:
            self._grace_asked = grace

    def _heed_request(self) -> None:
        if self._asked_at is not None and not self._stopping.is_set():
            self.stop(grace=self._grace_asked)
        if self._grace_asked is not None:
            self.grace = self._grace_asked

    # Dispatching.

    def _dispatch(self, until_empty: bool) -> None:
        outage = 0.0
        while not self._stopping.is_set():
            self._heed_request()
            if self._stopping.is_set():
                break
            self._wake.clear()
            try:
                if self._free_slots() and self._claim_one():
                    outage = 0.0
                    continue
                if until_empty and self._empty():
                    return
                self._wait()
                outage = 0.0
            except StoreError as error:
                if error.lasting:  # A damaged file, a missing driver: no waiting.
                    raise
                # The database went away for a moment (a restart, a network
                # blip): say so, and try again less and less often.
                outage = min(OUTAGE_MAX, outage * 2 or IDLE_SECONDS)
                logger.warning(
                    f"Job processor {self.worker} cannot use the store: {error} "
                    f"Trying again in {outage:g} s."
                )
                self._pause(outage)

    def _pause(self, seconds: float) -> None:
        """Wait ``seconds``, ending early for a stop, a signal's one included."""
        deadline = time.monotonic() + seconds
        while not self._stopping.is_set() and time.monotonic() < deadline:
            self._heed_request()
            self._stopping.wait(STOP_CHECK)

    def _free_slots(self) -> int:
        with self._lock:
            # A thread holds two jobs for a moment as one ends and the next
            # is claimed in the same transaction.
            return max(0, self.concurrency - len(self._running))

    def _claim_one(self) -> bool:
        request = self._request()
        job = self.queue.claim(
            request.worker, request.types, request.lease, request.lost_limits
        )
        if job is None:
            return False
        self._adopt(job, request)
        self._inbox.put(job)
        return True

    def _request(self) -> Claim:
        with self._lock:
            limits = dict(self._lost_limits)
        return Claim(self.worker, self.types, self.lease, limits)

    def _adopt(self, job: Job, request: Claim) -> None:
        logger.info(
            f"Job {job.id} ({job.name}) was claimed by {job.worker}, "
            f"attempt {job.attempt}."
        )
        with self._lock:
            self._running[job.id] = job
            self._recorded[job.id] = request.lost_limits.get(job.name)

    def _empty(self) -> bool:
        with self._lock:
            if self._running:
                return False
        # A job whose worker died is runnable again once its lease ran out.
        self._reap()
        return self.queue.pending(self.types) == 0

    def _wait(self) -> None:
        if not self._free_slots():
            self._wake.wait(STOP_CHECK)
            return
        due = self.queue.next_due(self.types)
        # Short waits, so that a stop request from a signal is noticed soon.
        timeout = STOP_CHECK if due is None else min(due, STOP_CHECK)
        if timeout > 0:
            self.queue.wait(timeout, self._wake)

    @contextmanager
    def _listening(self) -> Iterator[None]:
        self.queue.start_listening()
        listen_local(self.queue.db.url, self._wake)
        try:
            yield
        finally:
            unlisten_local(self.queue.db.url, self._wake)

    def _finish(self) -> None:
        """Give running jobs the grace period, then release the others.

        The grace period counts from the stop request, and a later request may
        shorten it (a second Ctrl-C ends it), so it is looked at again often.
        """
        if not self._stopping.is_set():  # Ran out of work: nothing is running.
            self._stopped_at = time.monotonic()
        granted = self.grace
        interrupted = False
        with self._idle:
            try:
                while self._running:
                    self._heed_request()
                    left = self._stopped_at + self.grace - time.monotonic()
                    if left <= 0:
                        break
                    self._idle.wait(min(left, 0.1))
            except KeyboardInterrupt:  # A second Ctrl-C: the grace is over.
                interrupted = True
                self.grace = 0
            unfinished = list(self._running.values())

        for job in unfinished:
            job._stop.set()
            if self.queue.release(job, "The job processor stopped before it ended."):
                within = (
                    f"within the {granted:g} s grace period"
                    if self.grace == granted
                    else "before a second stop request"
                )
                logger.warning(
                    f"Job {job.id} ({job.name}) did not end {within} and was "
                    "released to run again."
                )
        if interrupted:
            raise KeyboardInterrupt

    # Running jobs.

    @contextmanager
    def _job_threads(self) -> Iterator[None]:
        # Threads that live as long as the run, so each keeps one connection
        # to the store instead of opening one per job.
        inbox: SimpleQueue[Job | None] = SimpleQueue()
        self._inbox = inbox
        threads = [
            threading.Thread(
                target=self._take_jobs, args=(inbox,), name=f"job-{n}", daemon=True
            )
            for n in range(1, self.concurrency + 1)
        ]
        for thread in threads:
            thread.start()
        try:
            yield
        finally:
            for _ in threads:
                inbox.put(None)
            with self._lock:
                stuck = bool(self._running)
            # A thread still inside a released job cannot be stopped; the
            # others end at once and are waited for.
            if not stuck:
                for thread in threads:
                    thread.join()

    def _relax(self) -> None:
        # Only a speed-up: should the store fail here, the first real write
        # reports it where it is handled.
        with suppress(Exception):
            self.queue.relax_this_thread()

    def _take_jobs(self, inbox: SimpleQueue[Job | None]) -> None:
        self._relax()
        try:
            while (job := inbox.get()) is not None:
                while job is not None:
                    job = self._run_job(job)
        except BaseException as error:
            # A job thread must never vanish quietly: its jobs would stay
            # Running for ever. Stop the processor so that they are released.
            logger.critical(
                f"A job thread of {self.worker} stopped ({type(error).__name__}: "
                f"{error}); the job processor stops so its jobs run elsewhere."
            )
            self.stop(grace=0)
            raise
        finally:
            self.queue.disconnect()

    def _run_job(self, job: Job) -> Job | None:
        """Run ``job``; return the next one, claimed as this one ended."""
        following = None
        try:
            following = self._attempt(job)
        except Exception as error:  # The store failed: the lease will lapse.
            logger.error(f"Job {job.id} could not be recorded: {error}")
        finally:
            with self._idle:
                # The same job may come back as the next claim, as a new
                # attempt: only this attempt's entry goes.
                if self._running.get(job.id) is job:
                    del self._running[job.id]
                    self._recorded.pop(job.id, None)
                self._idle.notify_all()
            self._wake.set()
        return following

    def _then(self) -> Claim | None:
        """What to claim as a job ends: nothing once stopping."""
        return None if self._stopping.is_set() else self._request()

    def _attempt(self, job: Job) -> Job | None:
        started = time.monotonic()
        try:
            job_type = self.scripts.find(job.name)
        except JobError as error:
            return self._record_failure(job, str(error), None, attempts=1, delay=0.0)

        delay = job_type.delay(job.attempt)
        with self._lock:
            recorded = self._recorded.get(job.id)
            self._lost_limits[job.name] = job_type.lost
        if recorded != job_type.lost:  # The claim did not know it.
            self.queue.limit_lost(job, job_type.lost)
        try:
            result = self._call(job_type, job)
        except BaseException as error:
            # Whatever a job raises ends that job only (sys.exit(), a stray
            # CancelledError...); Ctrl-C is the processor's to handle.
            if isinstance(error, KeyboardInterrupt):
                raise
            return self._record_failure(
                job,
                _message(error),
                traceback.format_exc(),
                attempts=job_type.attempts,
                delay=delay,
            )
        return self._record_success(job, result, time.monotonic() - started)

    def _call(self, job_type: JobType, job: Job) -> JSONValue:
        workdir = Workdir(job.id)
        scope = impersonation(job.autodesk_id, also=self.settings.impersonate)
        try:
            with scope:
                result = job_type.function(attrs.evolve(job, scratch=workdir))
        finally:
            workdir.remove()
        try:
            json.dumps(result)
        except (TypeError, ValueError):
            raise JobError(
                f"The job function returned a {type(result).__name__}, which "
                "cannot be stored as JSON. Return JSON values only."
            ) from None
        return result  # type: ignore[no-any-return]

    def _record_success(
        self, job: Job, result: JSONValue, seconds: float
    ) -> Job | None:
        then = self._then()
        status, following = self.queue.succeed_then_claim(job, result, then)
        if status is Status.SUCCESS:
            logger.info(
                f"Job {job.id} ({job.name}) succeeded in {seconds * 1000:.0f} ms."
            )
        elif status is Status.CANCELLED:
            logger.info(f"Job {job.id} ({job.name}) ended and was cancelled.")
        else:
            _log_stale(job)
        if following and then:
            self._adopt(following, then)
        return following

    def _record_failure(
        self,
        job: Job,
        message: str,
        trace: str | None,
        *,
        attempts: int,
        delay: float,
    ) -> Job | None:
        then = self._then()
        status, following = self.queue.fail_then_claim(
            job, message, then, traceback=trace, attempts=attempts, delay=delay
        )
        if status is Status.FAILED:
            logger.error(f"Job {job.id} ({job.name}) failed: {message}")
        elif status is Status.PENDING:
            logger.warning(
                f"Job {job.id} ({job.name}) attempt {job.attempt} failed: "
                f"{message.rstrip('.')}. It runs again in {delay:g} s."
            )
        elif status is Status.CANCELLED:
            logger.info(f"Job {job.id} ({job.name}) was cancelled.")
        else:
            _log_stale(job)
        if following and then:
            self._adopt(following, then)
        return following

    # Heartbeats.

    @contextmanager
    def _heartbeats(self) -> Iterator[None]:
        done = threading.Event()
        thread = threading.Thread(
            target=self._beat, args=(done,), name="heartbeat", daemon=True
        )
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()

    def _beat(self, done: threading.Event) -> None:
        self._relax()
        while not done.wait(self.heartbeat):
            try:
                self._renew_leases()
                self._reap()
            except Exception as error:
                logger.warning(f"Job processor {self.worker} heartbeat failed: {error}")
        self.queue.disconnect()

    def _renew_leases(self) -> None:
        with self._lock:
            running = list(self._running.values())
        for job in running:
            state = self.queue.heartbeat(job, self.lease)
            with self._lock:
                still_running = self._running.get(job.id) is job
            # A job that ended since the snapshot is gone for a good reason.
            if state != "ok" and still_running and not job._stop.is_set():
                job._stop.set()
                if state == "cancel":
                    logger.info(f"Job {job.id} ({job.name}) was asked to stop.")
                else:
                    logger.warning(
                        f"Job {job.id} ({job.name}) lost its lease while running; "
                        "another job processor may run it again."
                    )

    def _reap(self) -> None:
        for job in self.queue.reap():
            logger.warning(
                f"Job {job.id} ({job.name}) was lost with its job processor "
                f"{job.worker} (its lease expired) and released; it is now "
                f"{job.status}."
            )


def _check_timing(
    concurrency: int, lease: float, heartbeat: float, grace: float
) -> None:
    problem = None
    if concurrency < 1:
        problem = f"The concurrency must be 1 or more, not {concurrency}."
    elif lease <= 0:
        problem = f"The lease must be longer than 0 s, not {lease:g} s."
    elif not 0 < heartbeat < lease:
        problem = (
            f"The heartbeat ({heartbeat:g} s) must be shorter than the lease "
            f"({lease:g} s), or every running job would be taken back."
        )
    elif grace < 0:
        problem = f"The grace period cannot be negative ({grace:g} s)."
    if problem:
        raise JobError(f"{problem} Fix the job processor's options.")


def _check_patterns(patterns: Sequence[str]) -> None:
    # Both stores understand * and ?; only SQLite would read [...] as a class.
    odd = [pattern for pattern in patterns if "[" in pattern or "]" in pattern]
    if odd:
        raise JobError(
            f"The job type pattern {odd[0]!r} uses brackets; patterns may use "
            "only * (any text) and ? (one character), such as Sample.*."
        )


def _message(error: BaseException) -> str:
    # The exception's own message, as Vault records a job's ErrorMessage; the
    # attempt keeps the whole traceback beside it.
    return str(error) or type(error).__name__


def _log_stale(job: Job) -> None:
    logger.warning(
        f"Job {job.id} ({job.name}) attempt {job.attempt} is no longer this "
        "worker's (its lease expired); what it did is not recorded."
    )
