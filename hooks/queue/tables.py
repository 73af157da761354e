"""How jobs are stored: the two tables, and their rows as jobs and attempts.

Times are seconds since the epoch and JSON is kept as text, so both backends
store the same values the same way.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from hooks.jobs import Attempt, Job, Status

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


def _time(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(float(value), UTC)


def job_from(row: Sequence[Any]) -> Job:
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


def attempt_from(row: Sequence[Any]) -> Attempt:
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
