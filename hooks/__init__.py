"""Vault events, client customizations, jobs and the job processor."""

from hooks.jobs import Job, JobError, Status, add_job, job
from hooks.processor import Processor
from hooks.queue import Queue, open_queue

__all__ = [
    "Job",
    "JobError",
    "Processor",
    "Queue",
    "Status",
    "add_job",
    "job",
    "open_queue",
]
