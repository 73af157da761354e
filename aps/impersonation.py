"""Where ``aps.connect(user=...)`` is allowed: inside a job, as its submitter.

The job processor opens :func:`impersonation` around each job with the Autodesk
ID recorded when the job was submitted. Only inside that scope, and only for
that ID (or IDs the processor's settings allow explicitly), may code connect as
another user. The scope is a context variable, so it follows the job's thread
and its asyncio tasks and never leaks into a neighbouring job.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from aps.errors import ImpersonationRefused

_allowed: ContextVar[frozenset[str] | None] = ContextVar(
    "apshooks_impersonation", default=None
)


@contextmanager
def impersonation(autodesk_id: str, *, also: Iterable[str] = ()) -> Iterator[None]:
    """Allow ``connect(user=autodesk_id)`` (and the ``also`` IDs) in the block."""
    token = _allowed.set(frozenset({autodesk_id, *also}))
    try:
        yield
    finally:
        _allowed.reset(token)


def active() -> bool:
    """Whether the caller runs inside a job's impersonation scope."""
    return _allowed.get() is not None


def check(user: str) -> None:
    """Raise :class:`ImpersonationRefused` unless ``user`` may be impersonated."""
    allowed = _allowed.get()
    if allowed is None:
        raise ImpersonationRefused(
            f"Cannot connect as {user!r}: impersonation works only inside a job "
            "on the job processor. On a workstation, call aps.connect() without "
            "user= to connect as the signed-in Autodesk ID."
        )
    if user not in allowed:
        raise ImpersonationRefused(
            f"Cannot connect as {user!r}: this job may impersonate only the "
            "Autodesk ID that submitted it. Add the ID to the processor's "
            "'impersonate' setting to allow it explicitly."
        )
