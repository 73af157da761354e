"""Jobs: the :class:`Job` model, :func:`add_job`, and the ``@job`` registry.

A workstation submits a job with :func:`add_job`; a job processor runs it with
the function a job script registered under the job's name with :func:`job`.
Job scripts live in the jobs folder, one per job type, named after it
(``Sample.ListProjects.py``), and are loaded again when they change.
"""

from __future__ import annotations

import enum
import functools
import getpass
import importlib.util
import json
import math
import re
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import attrs

import aps
from aps.errors import APSError

if TYPE_CHECKING:
    from hooks.queue import Queue

JSONValue: TypeAlias = (
    "bool | int | float | str | list[JSONValue] | dict[str, JSONValue] | None"
)
JobFunction: TypeAlias = Callable[["Job"], Any]
Backoff: TypeAlias = "float | Callable[[int], float]"

DEFAULT_PRIORITY = 10


class JobError(APSError):
    """A job cannot be submitted, found or changed as asked."""


class Status(enum.StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCESS = "Success"
    FAILED = "Failed"
    CANCELLED = "Cancelled"


@attrs.frozen(kw_only=True)
class Job:
    """One job as stored in the queue, and as a job function receives it."""

    id: int
    name: str
    # Parameters and results may hold anything a job needs, secrets included,
    # so a job printed into a log line shows neither.
    parameters: dict[str, JSONValue] = attrs.field(repr=False)
    description: str = ""
    priority: int = DEFAULT_PRIORITY
    status: Status = Status.PENDING
    submitter: str = ""
    autodesk_id: str | None = None
    created: datetime
    attempt: int = 0
    result: JSONValue = attrs.field(default=None, repr=False)
    error: str | None = None
    worker: str | None = None
    _scratch: Workdir | None = attrs.field(
        default=None, repr=False, eq=False, alias="scratch"
    )
    _stop: threading.Event = attrs.field(
        factory=threading.Event, repr=False, eq=False, alias="stop"
    )

    @property
    def workdir(self) -> Path:
        """A fresh folder of the job's own, removed once the job has ended."""
        if self._scratch is None:
            raise JobError(
                f"Job {self.id} has no working folder: only a running job has one."
            )
        return self._scratch.path()

    @property
    def cancel_requested(self) -> bool:
        """True once the job should stop early: it was cancelled, its job
        processor is stopping past the grace period, or its lease was lost."""
        return self._stop.is_set()


class Workdir:
    """A job's working folder, made when first asked for: most jobs never are."""

    def __init__(self, job_id: int) -> None:
        self._prefix = f"apshooks-job-{job_id}-"
        self._path: Path | None = None
        self._lock = threading.Lock()

    def path(self) -> Path:
        with self._lock:
            if self._path is None:
                self._path = Path(tempfile.mkdtemp(prefix=self._prefix))
            return self._path

    def remove(self) -> None:
        with self._lock:
            if self._path is not None:
                shutil.rmtree(self._path, ignore_errors=True)


@attrs.frozen
class Attempt:
    """One run of a job: who ran it, when, and how it ended."""

    job_id: int
    number: int
    worker: str
    started: datetime
    ended: datetime | None
    outcome: str | None
    error: str | None
    traceback: str | None


def _default_backoff(attempt: int) -> float:
    """Seconds before attempt ``attempt + 1``: 10 s, 20 s, 40 s ... up to 10 min."""
    return float(min(600, 10 * 2 ** (attempt - 1)))


@attrs.frozen
class JobType:
    """A job function and how often it may be tried.

    ``attempts`` counts the runs that may end in an exception before the job
    ends Failed (1, the default, is Vault's behaviour). ``lost`` counts the runs
    whose worker stopped answering; past it the job ends Failed rather than
    taking down worker after worker.
    """

    name: str
    function: JobFunction
    attempts: int = 1
    backoff: Backoff = _default_backoff
    lost: int = 3

    def delay(self, attempt: int) -> float:
        """Seconds to wait before running again after attempt ``attempt``."""
        if callable(self.backoff):
            return max(0.0, float(self.backoff(attempt)))
        return max(0.0, float(self.backoff))


_registry: dict[str, JobType] = {}
_registry_lock = threading.Lock()


def job(
    name: str, *, attempts: int = 1, backoff: Backoff = _default_backoff, lost: int = 3
) -> Callable[[JobFunction], JobFunction]:
    """Register the decorated function as the job type ``name``.

    :param attempts: runs that may raise before the job ends Failed.
    :param backoff: seconds between attempts, or a function of the attempt
        number that returns them.
    :param lost: runs whose worker died that are tolerated before the job ends
        Failed.
    """
    if attempts < 1 or lost < 1:
        raise JobError(f"Job type {name!r} needs attempts and lost of at least 1.")

    def register(function: JobFunction) -> JobFunction:
        with _registry_lock:
            _registry[name] = JobType(name, function, attempts, backoff, lost)
        return function

    return register


def registered(name: str) -> JobType | None:
    """The job type registered under ``name`` in this process, if any."""
    with _registry_lock:
        return _registry.get(name)


def add_job(
    name: str,
    parameters: Mapping[str, Any] | None = None,
    *,
    description: str = "",
    priority: int = DEFAULT_PRIORITY,
    submitter: str | None = None,
    queue: Queue | None = None,
) -> Job:
    """Submit a job of type ``name`` and return it, Pending.

    The submitter is the OS user unless a Vault user is given. When this
    process holds an APS connection, its Autodesk ID is recorded: it is the one
    user the job may impersonate on the job processor.
    """
    from hooks.queue import default_queue

    check_name(name)
    checked = check_parameters(parameters or {})
    connection = getattr(aps, "connection", None)
    user = getattr(connection, "user", None) if connection else None
    autodesk_id = user if isinstance(user, str) and user else None
    return (queue or default_queue()).add(
        name,
        checked,
        description=description,
        priority=priority,
        submitter=submitter or _os_user(),
        autodesk_id=autodesk_id,
    )


# A job type names a file in the jobs folder: nothing that could leave it.
_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")


def check_name(name: str) -> None:
    """Raise :class:`JobError` unless ``name`` can be a job type."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise JobError(
            f"{name!r} cannot be a job type: use letters, digits, '.', '_' and '-', "
            "like Sample.ListProjects."
        )


@functools.cache
def _os_user() -> str:
    # Read once: the account a process runs as does not change under it.
    return getpass.getuser()


def check_parameters(parameters: Mapping[str, Any]) -> dict[str, JSONValue]:
    """``parameters`` as a plain dict, or :class:`JobError` naming the bad value."""
    if not isinstance(parameters, Mapping):
        raise JobError(
            f"Job parameters must be a mapping of names to values, not "
            f"{type(parameters).__name__}."
        )
    for key, value in parameters.items():
        if not isinstance(key, str):
            raise JobError(f"Job parameter names must be strings; {key!r} is not.")
        problem = _json_problem(value)
        if problem:
            raise JobError(
                f"Job parameter {key!r} holds {problem}, which cannot be stored as "
                "JSON. Pass strings, numbers, booleans, None, lists or dicts."
            )
    return json.loads(json.dumps(dict(parameters)))  # type: ignore[no-any-return]


def _json_problem(value: Any) -> str | None:
    """What in ``value`` is not a JSON value, or None when all of it is."""
    if value is None or isinstance(value, bool | int | str):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"the number {value}"
    if isinstance(value, list | tuple):
        return next(filter(None, map(_json_problem, value)), None)
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            return "a dict with keys that are not strings"
        return next(filter(None, map(_json_problem, value.values())), None)
    return f"a {type(value).__name__}"


class JobScripts:
    """The job scripts in one folder, each loaded again when its file changes."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._loaded: dict[str, tuple[float, JobType]] = {}
        self._lock = threading.Lock()

    def find(self, name: str) -> JobType:
        """The job type ``name``: from its script, else registered in-process."""
        check_name(name)
        script = self.folder / f"{name}.py"
        try:
            mtime = script.stat().st_mtime
        except OSError:
            found = registered(name)
            if found is None:
                raise JobError(
                    f"No job script for job type {name!r}: expected {script}. Add "
                    "the script, then retry the job."
                ) from None
            return found

        with self._lock:
            cached = self._loaded.get(name)
            if cached and cached[0] == mtime:
                return cached[1]
            found = self._load(name, script)
            self._loaded[name] = (mtime, found)
            return found

    def _load(self, name: str, script: Path) -> JobType:
        module_name = f"apshooks_job_{abs(hash(str(script)))}"
        spec = importlib.util.spec_from_file_location(module_name, script)
        if spec is None or spec.loader is None:
            raise JobError(f"The job script {script} cannot be loaded as Python.")

        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        with _registry_lock:
            _registry.pop(name, None)
        try:
            spec.loader.exec_module(module)
        except (Exception, SystemExit) as error:  # sys.exit() in a script too.
            raise JobError(
                f"The job script {script} failed to load: "
                f"{type(error).__name__}: {error}. Fix it, then retry the job."
            ) from None

        found = registered(name)
        if found is None:
            raise JobError(
                f"The job script {script} registers no function for {name!r}. "
                f'Decorate its job function with @job("{name}").'
            )
        return found
