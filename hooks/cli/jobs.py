"""``apshooks worker``, ``submit``, ``jobs``, ``job``, ``cancel`` and ``retry``."""

from __future__ import annotations

import json
import signal
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import click

import aps
from aps import logs
from aps.cli import table
from aps.settings import Settings
from hooks.jobs import DEFAULT_PRIORITY, Status, add_job
from hooks.processor import Processor
from hooks.queue import Queue, open_queue


def _queue() -> Queue:
    return open_queue(Settings.load().store_url)


@click.command()
@click.option(
    "--jobs",
    "jobs_folder",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder of the job scripts (default: the 'jobs' setting).",
)
@click.option("--concurrency", default=1, show_default=True, help="Jobs at once.")
@click.option(
    "--types",
    multiple=True,
    help="Job types to run, as glob patterns like Sample.* (repeat or use commas).",
)
@click.option("--lease", default=30.0, show_default=True, help="Lease, in seconds.")
@click.option("--heartbeat", type=float, help="Seconds between lease renewals.")
@click.option(
    "--grace", default=30.0, show_default=True, help="Seconds to finish on stop."
)
@click.option("--until-empty", is_flag=True, help="Stop once no job is left.")
def worker(
    jobs_folder: Path | None,
    concurrency: int,
    types: tuple[str, ...],
    lease: float,
    heartbeat: float | None,
    grace: float,
    until_empty: bool,
) -> None:
    """Run the job processor: claim jobs and run their job scripts.

    Ctrl-C or SIGTERM stops claiming and lets running jobs finish within the
    grace period; a second one releases them at once.
    """
    patterns = [part for value in types for part in value.replace(",", " ").split()]
    processor = Processor(
        _queue(),
        jobs_folder=jobs_folder,
        concurrency=concurrency,
        types=patterns,
        lease=lease,
        heartbeat=heartbeat,
        grace=grace,
    )
    click.echo("Press Ctrl-C to stop the job processor.", err=True)
    logs.also_to_console(processor.settings.log_level)
    with _stopped_by_signals(processor):
        processor.run(until_empty=until_empty)


@contextmanager
def _stopped_by_signals(processor: Processor) -> Iterator[None]:
    received = []

    def handle(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        processor.request_stop(grace=0 if len(received) > 1 else None)

    previous = {number: signal.signal(number, handle) for number in _SIGNALS}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _parameter(text: str) -> tuple[str, Any]:
    name, equals, value = text.partition("=")
    if not equals or not name:
        raise click.BadParameter(f"{text!r} is not NAME=VALUE.", param_hint="--param")
    try:
        return name, json.loads(value)
    except json.JSONDecodeError:
        return name, value  # Not JSON: the text itself.


@click.command()
@click.argument("name")
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="NAME=VALUE",
    help="A job parameter; VALUE is read as JSON when it is JSON, else as text.",
)
@click.option("--description", default="", help="What the job is for.")
@click.option(
    "--priority",
    default=DEFAULT_PRIORITY,
    show_default=True,
    help="Lower numbers run sooner.",
)
@click.option("--submitter", help="The Vault user who submits (default: you).")
def submit(
    name: str,
    params: tuple[str, ...],
    description: str,
    priority: int,
    submitter: str | None,
) -> None:
    """Add a job of type NAME to the queue.

    When an Autodesk ID is signed in on this machine, the job records it: that
    is whom it may connect to APS as on the job processor.
    """
    parameters = dict(_parameter(text) for text in params)
    if Settings.load().client_id:
        conn = aps.connect(sign_in=False, raise_on_error=False)
        if not conn:
            click.echo(
                f"The job records no Autodesk ID, so it cannot connect to APS as "
                f"its submitter: {conn.error}",
                err=True,
            )
    queue = _queue()
    job = add_job(
        name,
        parameters,
        description=description,
        priority=priority,
        submitter=submitter,
        queue=queue,
    )
    click.echo(f"Job {job.id} ({job.name}) is {job.status}.")


@click.command("jobs")
@click.option(
    "--status",
    type=click.Choice([status.value for status in Status], case_sensitive=False),
    help="Only jobs with this status.",
)
@click.option("--limit", default=50, show_default=True, help="How many to show.")
def list_jobs(status: str | None, limit: int) -> None:
    """List the newest jobs."""
    found = _queue().jobs(status=Status(status) if status else None, limit=limit)
    if not found:
        click.echo("No jobs.")
        return
    rows = [
        (
            job.id,
            job.status,
            job.priority,
            job.created.astimezone().strftime("%Y-%m-%d %H:%M:%S"),
            job.name,
            job.error if job.error and job.status != "Success" else "",
        )
        for job in found
    ]
    table(("Id", "Status", "Priority", "Created", "Job type", "Error"), rows)


@click.command("job")
@click.argument("job_id", type=int)
def show_job(job_id: int) -> None:
    """Show one job, its result and every attempt."""
    queue = _queue()
    job = queue.get(job_id)
    for label, value in (
        ("Id", job.id),
        ("Name", job.name),
        ("Status", job.status),
        ("Description", job.description),
        ("Priority", job.priority),
        ("Submitter", job.submitter),
        ("Autodesk ID", job.autodesk_id or "(none)"),
        ("Created", job.created.isoformat(timespec="seconds")),
        ("Parameters", json.dumps(job.parameters)),
        ("Result", json.dumps(job.result)),
        ("Error", job.error or ""),
    ):
        click.echo(f"{label + ':':<13}{value}")
    for attempt in queue.attempts(job_id):
        took = ""
        if attempt.ended:
            took = f" in {(attempt.ended - attempt.started).total_seconds():.3f} s"
        outcome = attempt.outcome or "running"
        error = f": {attempt.error}" if attempt.error else ""
        click.echo(
            f"Attempt {attempt.number} on {attempt.worker}: {outcome}{took}{error}"
        )
        if attempt.traceback:
            click.echo(textwrap.indent(attempt.traceback.rstrip(), "    "))


@click.command()
@click.argument("job_id", type=int)
def cancel(job_id: int) -> None:
    """Cancel a Pending job, or ask a Running one to stop."""
    job = _queue().cancel(job_id)
    if job.status == Status.RUNNING:
        click.echo(f"Job {job_id} is running; it was asked to stop.")
    else:
        click.echo(f"Job {job_id} is {job.status}.")


@click.command()
@click.argument("job_id", type=int)
def retry(job_id: int) -> None:
    """Put a Failed or Cancelled job back in the queue."""
    job = _queue().retry(job_id)
    click.echo(f"Job {job_id} is {job.status} again.")


commands: list[click.Command] = [worker, submit, list_jobs, show_job, cancel, retry]
