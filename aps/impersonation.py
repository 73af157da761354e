"""Where ``aps.connect(user=...)`` is allowed: inside a job, as its submitter.

The job processor opens :func:`impersonation` around each job with the Autodesk
ID recorded when the job was submitted. Only inside that scope, and only for
that ID (or IDs the processor's settings allow explicitly), may code connect as
another user. The scope is a context variable, so it follows the job's thread
and its asyncio tasks and never leaks into a neighbouring job.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import attrs

from aps.errors import ImpersonationRefused


@attrs.define
class Scope:
    """One job's scope: whom it may connect as, and the connection it made."""

    submitter: str | None
    allowed: frozenset[str]
    connection: Any = None


_scope: ContextVar[Scope | None] = ContextVar("apshooks_impersonation", default=None)
_processors = 0
_processors_lock = threading.Lock()


@contextmanager
def impersonation(
    autodesk_id: str | None, *, also: Iterable[str] = ()
) -> Iterator[Scope]:
    """Allow ``connect(user=autodesk_id)`` (and the ``also`` IDs) in the block.

    ``autodesk_id`` is None for a job submitted without an APS connection: it
    may impersonate nobody but the ``also`` IDs.
    """
    ids = {autodesk_id} if autodesk_id else set()
    scope = Scope(autodesk_id, frozenset({*ids, *also}))
    token = _scope.set(scope)
    try:
        yield scope
    finally:
        _scope.reset(token)


@contextmanager
def processing() -> Iterator[None]:
    """Mark the process as a running job processor for the block.

    While one runs, no code in the process may sign in through a browser: a
    thread that a job started without its scope would otherwise reach the
    processor's own session, or open a browser on a server.
    """
    global _processors
    with _processors_lock:
        _processors += 1
    try:
        yield
    finally:
        with _processors_lock:
            _processors -= 1


def processor_running() -> bool:
    return _processors > 0


def current() -> Scope | None:
    """The job's scope the caller runs in, if any."""
    return _scope.get()


def active() -> bool:
    """Whether the caller runs inside a job's impersonation scope."""
    return _scope.get() is not None


def check(user: str) -> None:
    """Raise :class:`ImpersonationRefused` unless ``user`` may be impersonated."""
    scope = _scope.get()
    if scope is None:
        raise ImpersonationRefused(
            f"Cannot connect as {user!r}: impersonation works only inside a job "
            "on the job processor. On a workstation, call aps.connect() without "
            "user= to connect as the signed-in Autodesk ID."
        )
    if scope.submitter is None and user not in scope.allowed:
        who = f" as {user!r}" if user else ""
        raise ImpersonationRefused(
            f"Cannot connect{who}: this job has no recorded Autodesk ID, "
            "because it was submitted by a process without an APS connection. "
            "Submit it from a workstation that is signed in (aps.connect() "
            "before add_job, or 'apshooks login' before 'apshooks submit')."
        )
    if user not in scope.allowed:
        raise ImpersonationRefused(
            f"Cannot connect as {user!r}: this job may impersonate only the "
            "Autodesk ID that submitted it. Add the ID to the processor's "
            "'impersonate' setting to allow it explicitly."
        )
