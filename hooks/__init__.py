"""Vault events, client customizations, jobs and the job processor."""

from hooks.customizations import LoadReport, load, reload, unload, watch
from hooks.events import (
    Outcome,
    Restricted,
    Restriction,
    Result,
    aemit,
    declare,
    declare_operation,
    emit,
    on,
    operation,
    restrict,
    strict,
)
from hooks.jobs import Job, JobError, Status, add_job, job
from hooks.processor import Processor
from hooks.queue import Queue, open_queue

__all__ = [
    "Job",
    "JobError",
    "LoadReport",
    "Outcome",
    "Processor",
    "Queue",
    "Restricted",
    "Restriction",
    "Result",
    "Status",
    "add_job",
    "aemit",
    "declare",
    "declare_operation",
    "emit",
    "job",
    "load",
    "on",
    "open_queue",
    "operation",
    "reload",
    "restrict",
    "strict",
    "unload",
    "watch",
]
