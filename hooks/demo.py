"""The whole product in one run, offline: ``apshooks demo``.

It starts the sandbox, signs the demo user in, loads the sample customizations
and emits ``LoginVault_Post`` (whose sample handler submits a job), then runs a
job processor until the queue is empty. The sample job connects as its
submitter and lists the projects of the ACC hub. :func:`run` returns what
happened; the command prints it.
"""

from __future__ import annotations

import getpass
import os
import webbrowser
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs

import aps
from aps import _connect, logs
from aps.crypto import key_file
from aps.errors import APSError
from aps.sandbox import Sandbox, free_callback_url
from aps.settings import Settings, data_dir
from hooks import customizations, events
from hooks.events import Restricted, operation
from hooks.jobs import Job, Status
from hooks.processor import Processor
from hooks.queue import Queue, open_queue

DEMO_USER = "jane@example.com"


class DemoFailed(APSError):
    """A step of the demo did not do what it should."""


@attrs.frozen
class Report:
    """What the demo saw, for people and for tests."""

    user: str
    hubs: aps.Hubs
    job: Job
    seconds: float
    restriction: str
    store: str
    logs: Path

    @property
    def projects(self) -> list[dict[str, Any]]:
        result = self.job.result
        if not isinstance(result, list):
            return []
        return [project for project in result if isinstance(project, dict)]


def samples_folder() -> Path:
    """The ``samples`` folder of the source checkout apshooks runs from."""
    return Path(__file__).resolve().parents[1] / "samples"


def run(
    *,
    store: str | None = None,
    interactive: bool = False,
    samples: Path | None = None,
    say: Callable[[str], None] = print,
) -> Report:
    """Run the demo end to end and return what it saw; raise when a step fails."""
    samples = samples or samples_folder()
    if not (samples / "customizations").is_dir():
        raise DemoFailed(
            f"The samples folder {samples} is missing. Run the demo from a source "
            "checkout (pip install -e .) or pass --samples DIR."
        )
    folder = data_dir() / "demo"
    callback = free_callback_url()

    with (
        _environment_restored(),
        Sandbox.start(
            data=samples / "sandbox.toml",
            auto_consent=None if interactive else DEMO_USER,
            callback_urls=[callback],
        ) as sandbox,
    ):
        settings = _point_at(sandbox, callback, folder, samples, store)
        logs.configure("client", settings)
        say(f"Sandbox: {sandbox.url} (offline, on this machine)")
        conn = _sign_in(settings, interactive)
        say(f"Signed in: {conn.user}")
        hubs = conn.hubs
        job, seconds = _login_and_process(settings, conn.user)
        restriction = _try_release()

        store_shown = _connect.store_for(settings).db.display

    return Report(
        user=conn.user,
        hubs=hubs,
        job=job,
        seconds=seconds,
        restriction=restriction,
        store=store_shown,
        logs=settings.log_folder,
    )


@contextmanager
def _environment_restored() -> Iterator[None]:
    """Leave the caller's environment as it was once the demo is done."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _point_at(
    sandbox: Sandbox, callback: str, folder: Path, samples: Path, store: str | None
) -> Settings:
    # The sample scripts call aps.connect() and add_job() with no arguments, as
    # they would on a workstation: the environment points them at the sandbox.
    os.environ.update(sandbox.environment())
    os.environ.update(
        {
            "APS_CALLBACK_URL": callback,
            "APSHOOKS_STORE": store or f"sqlite:///{folder / 'apshooks.db'}",
            "APSHOOKS_LOG_DIR": str(folder / "logs"),
            "APSHOOKS_CUSTOMIZATIONS": str(samples / "customizations"),
            "APSHOOKS_JOBS": str(samples / "jobs"),
        }
    )
    # The demo's own key, so that a shared PostgreSQL store works without one.
    os.environ.setdefault("APSHOOKS_SECRET_KEY", key_file(folder / "apshooks.key"))
    return Settings.load()


def _sign_in(settings: Settings, interactive: bool) -> aps.Connection:
    # Always a fresh sign-in: the demo shows consent, not a stored session.
    if interactive:
        return _connect.sign_in(settings, browser=webbrowser.open)
    # The sandbox consents at once for the demo user; no page to show.
    return _connect.sign_in(
        settings, browser=Sandbox.browser, announce=lambda url: None
    )


def _login_and_process(settings: Settings, user: str) -> tuple[Job, float]:
    """The job the login hook submitted, once processed, and how long it ran."""
    queue = open_queue(settings.store_url)
    try:
        return _submit_and_run(queue, settings, user)
    finally:
        queue.close()


def _submit_and_run(
    queue: Queue, settings: Settings, user: str
) -> tuple[Job, float]:
    before = {job.id for job in queue.jobs()}

    report = customizations.load(settings.customizations_folder)
    if report.failed:
        problems = "; ".join(str(error) for error in report.failed)
        raise DemoFailed(f"The sample customizations failed to load: {problems}")
    result = events.emit("LoginVault_Post", user=getpass.getuser(), vault="Vault")
    if not result.ok:
        reasons = "; ".join(str(o) for o in result.outcomes if not o.ok)
        raise DemoFailed(f"The LoginVault_Post handlers failed: {reasons}")

    submitted = [job for job in queue.jobs() if job.id not in before]
    if not submitted:
        raise DemoFailed("The login hook submitted no job.")
    Processor(queue, settings=settings, lease=10).run_until_empty()

    job = queue.get(submitted[0].id)
    if job.status is not Status.SUCCESS:
        raise DemoFailed(f"Job {job.id} ended {job.status}: {job.error}")
    if job.autodesk_id != user:
        raise DemoFailed(
            f"Job {job.id} was recorded for {job.autodesk_id}, not for {user}."
        )
    last = queue.attempts(job.id)[-1]
    ran = (last.ended - last.started).total_seconds() if last.ended else 0.0
    return job, ran


def _try_release() -> str:
    files = [{"name": "Bracket.ipt", "new_state": "Released", "pdf": None}]
    try:
        with operation("UpdateFileStates", files=files):
            return "none (the release went through)"
    except Restricted as blocked:
        return "; ".join(f"{r.entity}: {r.message}" for r in blocked.restrictions)


def print_report(report: Report, say: Callable[[str], None] = print) -> None:
    say("Hubs:")
    for hub in report.hubs:
        say(f"  {hub.name}  ({hub.kind.value}, {hub.region})")
    for error in report.hubs.errors:
        say(f"  Error: {error}")
    job = report.job
    took = report.seconds * 1000
    say(f"Job {job.id} {job.name}: {job.status} in {took:.0f} ms, as {job.autodesk_id}")
    say(f"Projects found in build_JohnsCompany: {len(report.projects)}")
    for project in report.projects:
        folders = ", ".join(project.get("folders") or [])
        say(f"  {project['name']}  [{folders}]")
    say(f"Release without a PDF was blocked: {report.restriction}")
    say(f"Store: {report.store}")
    say(f"Logs: {report.logs}")


__all__ = ["DemoFailed", "Report", "print_report", "run", "samples_folder"]
