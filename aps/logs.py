"""Logging: ``Client.log`` on workstations, ``Processor.log`` on job processors.

Log lines are for the person running the machine: one per transition, in full
sentences. No token, code, verifier or secret is ever logged; as a second line
of defence every message passes through :func:`_redact` before it is written.
"""

from __future__ import annotations

import re
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from loguru import logger

from aps.impersonation import processor_running

if TYPE_CHECKING:
    from loguru import Record

    from aps.settings import Settings

Role = Literal["client", "processor"]
FILES = {"client": "Client.log", "processor": "Processor.log"}

_FORMAT = "{time:YYYY-MM-DD HH:mm:ss.SSS} | {level: <7} | {message}"
_SECRET = re.compile(
    r"(?i)(bearer\s+|basic\s+)[\w.~+/=-]+"
    r"|eyJ[\w-]+\.[\w-]+\.[\w-]*"
    r"|\b((?:access|refresh|id)_token|code_verifier|client_secret|code)"
    r"(['\"]?\s*[=:]\s*['\"]?)[\w.~+/=-]+"
)

_PACKAGES = ("aps", "hooks")
_OWN = tuple(f"{package}." for package in _PACKAGES)
_lock = threading.Lock()
_configured: dict[str, object] = {}


def _redact(record: Record) -> None:
    record["message"] = _SECRET.sub(_mask, record["message"])


def _mask(match: re.Match[str]) -> str:
    if match.group(1):
        return f"{match.group(1)}***"
    if match.group(2):
        return f"{match.group(2)}{match.group(3)}***"
    return "***"


def _belongs_to(role: Role) -> Callable[[Record], bool]:
    """Which records the role's file takes.

    The sandbox stands in for APS: what it logs belongs to its own console.
    A process that is both a workstation and a job processor (the demo, a
    test) writes to Processor.log while a processor runs, else to Client.log.
    """

    def keep(record: Record) -> bool:
        if (record["name"] or "").startswith("aps.sandbox"):
            return False
        _redact(record)
        if not ("client-sink" in _configured and "processor-sink" in _configured):
            return True
        return processor_running() == (role == "processor")

    return keep


def configure(role: Role, settings: Settings) -> Path:
    """Write this process's log lines to the role's file; return its path.

    Called by ``aps.connect()`` and by the CLI. Calling it again with the same
    role and settings does nothing, so hosts may call it freely. Loguru's own
    default sink (everything to stderr) is replaced by one for warnings only,
    so a host's console stays quiet.
    """
    path = settings.log_folder / FILES[role]
    key = (role, str(path), settings.log_level.upper())
    with _lock:
        if _configured.get(role) == key:
            return path

        _take_over_console()

        sink_id = _configured.pop(f"{role}-sink", None)
        if isinstance(sink_id, int):
            logger.remove(sink_id)

        path.parent.mkdir(parents=True, exist_ok=True)
        _configured[f"{role}-sink"] = logger.add(
            path,
            level=settings.log_level.upper(),
            format=_FORMAT,
            filter=_belongs_to(role),
            encoding="utf-8",
        )
        _configured[role] = key
    return path


def quiet_console() -> None:
    """Keep apshooks' log lines off the console before any log file is set up.

    Hosts that set up loguru themselves are left alone.
    """
    with _lock:
        _take_over_console()


def _take_over_console() -> None:
    # apshooks stays silent until it has somewhere of its own to write: a
    # library must not print on its host's console (see aps/__init__.py).
    if not _configured:
        _replace_default_sink()
        _configured["console"] = True
        for package in _PACKAGES:
            logger.enable(package)


def ensure(role: Role) -> None:
    """Set up the role's log file unless some log file is set up already.

    Called where something failed and is about to be logged: it never raises,
    since a log file that cannot be set up must not add a second failure.
    """
    with _lock:
        if any(key.endswith("-sink") for key in _configured):
            return
    try:
        from aps.settings import Settings

        configure(role, Settings.load())
    except Exception:
        return


def also_to_console(level: str = "INFO") -> None:
    """Show apshooks' own lines on stderr too: for services run in a terminal."""
    with _lock:
        _take_over_console()
        if "echo" not in _configured:
            _configured["echo"] = logger.add(
                sys.stderr,
                level=level.upper(),
                format="{time:HH:mm:ss} {message}",
                filter=_own_redacted,
            )


def _own_redacted(record: Record) -> bool:
    if not (record["name"] or "").startswith(_OWN):
        return False
    _redact(record)
    return True


def _replace_default_sink() -> None:
    try:
        logger.remove(0)
    except ValueError:
        return  # The host already set up loguru its own way: leave it alone.
    # apshooks' own warnings are in the log file and reach the user as errors;
    # the console keeps only the host's and its scripts' warnings.
    logger.add(
        sys.stderr,
        level="WARNING",
        format="{level}: {message}",
        filter=lambda record: not (record["name"] or "").startswith(_OWN),
    )
