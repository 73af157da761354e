"""The event bus: Vault operations' events, their handlers and restrictions.

Every event is a :class:`blinker.Signal` in one namespace and holds its handlers
strongly, so a lambda or closure registered with :func:`on` never vanishes. A
host drives an operation's phases with :func:`operation` (Restrictions, Pre, the
operation itself, Post) or fires single events with :func:`emit`. Handlers name
the arguments they need; one handler's failure never stops the others.
"""

from __future__ import annotations

import asyncio
import contextvars
import difflib
import inspect
import itertools
import threading
import traceback
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import CoroutineType
from typing import Any, TypeVar

import attrs
import blinker
from loguru import logger

from aps import logs
from aps.errors import APSError

PHASES = ("Restrictions", "Pre", "Post")
VAULT_OPERATIONS = (
    "AddFile",
    "CheckinFile",
    "UpdateFileStates",
    "AddFolder",
    "MoveFolder",
    "UpdateFolderStates",
    "AddItem",
    "CommitItems",
    "PromoteItems",
    "UpdateItemStates",
    "AddChangeOrder",
    "CommitChangeOrder",
    "UpdateChangeOrderState",
    "UpdateCustomEntityStates",
    "DeleteFiles",
    "DeleteFolder",
)
LOGIN = "LoginVault_Post"
VAULT_EVENTS = (
    LOGIN,
    *(f"{name}_{phase}" for name in VAULT_OPERATIONS for phase in PHASES),
)

F = TypeVar("F", bound=Callable[..., Any])
Caller = Callable[[Mapping[str, Any]], Any]


class EventError(APSError):
    """An unknown event, or the bus used where it cannot work."""


@attrs.frozen
class Restriction:
    """Why an operation may not run on one entity (a file, folder, item...)."""

    entity: str
    message: str


class Restricted(APSError):
    """Raised by :func:`operation` when a Restrictions handler blocked it."""

    def __init__(
        self,
        operation: str,
        restrictions: Sequence[Restriction],
        result: Result | None = None,
    ) -> None:
        self.operation = operation
        self.restrictions = tuple(restrictions)
        self.result = result  # The Restrictions phase's, with every outcome.
        reasons = "".join(f"\n  {r.entity}: {r.message}" for r in self.restrictions)
        super().__init__(
            f"{operation} was blocked by {len(self.restrictions)} "
            f"restriction(s); nothing was changed:{reasons}"
        )


@attrs.define(eq=False)
class Handler:
    """A function registered for one event, with its calling plan worked out."""

    event: str
    function: Callable[..., Any]
    priority: int
    sequence: int
    bind: Caller  # Calls the function; an async one returns its coroutine.
    call: Caller  # Calls the function to completion, whatever its kind.
    is_async: bool
    name: str
    script: Path | None
    line: int

    def __call__(self, sender: object = None, /, **arguments: Any) -> Any:
        """Blinker's calling convention, so ``Signal.send`` reaches handlers too."""
        return self.call(arguments)


@attrs.frozen
class Outcome:
    """What one handler did during one emit."""

    event: str
    handler: str
    script: Path | None
    line: int  # Where it failed, or else where it is defined.
    ok: bool
    value: Any = None
    error: BaseException | None = None

    @property
    def reason(self) -> str:
        """The error's type and message, or "" when the handler succeeded."""
        return _reason(self.error)

    def __str__(self) -> str:
        where = f"{self.script.name}:{self.line}" if self.script else "?"
        status = "ok" if self.ok else f"failed: {self.reason}"
        return f"{self.handler} ({where}) {status}"


@attrs.define(eq=False)
class Result:
    """What :func:`emit` returns: each handler's outcome, in the order they ran."""

    event: str
    _handlers: tuple[Handler, ...]
    _values: list[Any]
    _errors: dict[int, BaseException] | None
    restrictions: tuple[Restriction, ...] = ()

    @property
    def ok(self) -> bool:
        """Whether every handler returned without raising."""
        return not self._errors

    @property
    def outcomes(self) -> list[Outcome]:
        # Built on demand: emit itself only keeps return values and errors.
        errors = self._errors or {}
        return [
            _outcome(self.event, handler, value, errors.get(index))
            for index, (handler, value) in enumerate(
                zip(self._handlers, self._values, strict=True)
            )
        ]

    @property
    def failures(self) -> list[Outcome]:
        return [outcome for outcome in self.outcomes if not outcome.ok]

    @property
    def values(self) -> list[Any]:
        """The handlers' return values (None for those that failed)."""
        return list(self._values)


@attrs.define(eq=False)
class Operation:
    """One run of :func:`operation`: its arguments and each phase's result.

    The body may add to ``arguments``; Post handlers receive them, together with
    ``successful``.
    """

    name: str
    arguments: dict[str, Any] = attrs.field(repr=False)  # May hold secrets.
    results: dict[str, Result] = attrs.Factory(dict)
    successful: bool | None = None

    @property
    def restrictions(self) -> tuple[Restriction, ...]:
        checked = self.results.get("Restrictions")
        return checked.restrictions if checked else ()


@attrs.define(eq=False)
class _Event:
    signal: blinker.Signal
    collects: bool  # A Restrictions phase: restrict() may be called in it.
    handlers: tuple[Handler, ...] = ()


_namespace = blinker.Namespace()
_events: dict[str, _Event] = {}
_operations: set[str] = set()
_lock = threading.RLock()
_sequence = itertools.count()

_strict: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "apshooks_strict", default=False
)
_collector: contextvars.ContextVar[list[Restriction] | None] = contextvars.ContextVar(
    "apshooks_restrictions", default=None
)
_recorder: contextvars.ContextVar[list[Handler] | None] = contextvars.ContextVar(
    "apshooks_recorder", default=None
)


# The catalogue.


def declare(event: str) -> str:
    """Make ``event`` known so handlers may be registered for it and it may fire.

    Declaring a known event again does nothing. A name ending in
    ``_Restrictions`` lets its handlers call :func:`restrict`.
    """
    if not event or not isinstance(event, str):
        raise EventError(f"An event name must be a non-empty string, not {event!r}.")
    with _lock:
        if event not in _events:
            collects = event.endswith("_Restrictions")
            _events[event] = _Event(_namespace.signal(event), collects)
    return event


def declare_operation(operation: str) -> tuple[str, str, str]:
    """Declare ``<operation>_Restrictions``, ``_Pre`` and ``_Post`` at once."""
    restrictions, pre, post = (declare(f"{operation}_{phase}") for phase in PHASES)
    with _lock:
        _operations.add(operation)
    return restrictions, pre, post


def catalogue() -> list[str]:
    """Every known event name, sorted."""
    return sorted(_events)


def signal(event: str) -> blinker.Signal:
    """The blinker signal behind ``event``, for code that speaks blinker."""
    return _entry(event).signal


def _entry(event: str) -> _Event:
    entry = _events.get(event)
    if entry is None:
        raise _unknown(event, list(_events), "event")
    return entry


def _unknown(name: str, known: list[str], kind: str) -> EventError:
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    hint = (
        f"Did you mean {' or '.join(map(repr, close))}?"
        if close
        else "Run `apshooks events --all` to list the known events."
    )
    declare_with = "declare" if kind == "event" else "declare_operation"
    return EventError(
        f"There is no {kind} named {name!r}. {hint} To add one of your own, "
        f"call hooks.{declare_with}({name!r}) first (in a customization script, "
        "for the command line)."
    )


for _name in VAULT_OPERATIONS:
    declare_operation(_name)
declare(LOGIN)


# Registration.


def on(event: str, *, priority: int = 0) -> Callable[[F], F]:
    """Register the decorated function as a handler of ``event``.

    Handlers run by ascending ``priority`` (lower first, default 0, negative
    allowed), then in registration order. The function is returned unchanged.
    """
    _entry(event)

    def decorate(function: F) -> F:
        register(event, function, priority=priority)
        return function

    return decorate


def register(event: str, function: Callable[..., Any], *, priority: int = 0) -> Handler:
    """Register ``function`` for ``event``; :func:`unregister` undoes it."""
    entry = _entry(event)
    handler = _handler(event, function, priority)
    with _lock:
        entry.signal.connect(handler, weak=False)
        _refresh(entry)
    recorded = _recorder.get()
    if recorded is not None:
        recorded.append(handler)
    return handler


def unregister(*handlers: Handler) -> None:
    """Remove handlers; those already removed are skipped."""
    with _lock:
        for handler in handlers:
            entry = _events.get(handler.event)
            if entry is None:
                continue  # Its event is gone too (see isolated()).
            entry.signal.disconnect(handler)
            _refresh(entry)


def handlers(event: str | None = None) -> list[Handler]:
    """The registered handlers of ``event`` (or of every event), in run order."""
    if event is not None:
        return list(_entry(event).handlers)
    return [h for name in sorted(_events) for h in _events[name].handlers]


@contextmanager
def recording() -> Iterator[list[Handler]]:
    """Collect every handler registered inside the block, e.g. by one script."""
    recorded: list[Handler] = []
    token = _recorder.set(recorded)
    try:
        yield recorded
    finally:
        _recorder.reset(token)


@contextmanager
def isolated() -> Iterator[None]:
    """Undo, at the end of the block, the registrations and declarations in it.

    For tests: each one starts from, and leaves behind, the same handlers.
    """
    with _lock:
        before = {name: set(entry.handlers) for name, entry in _events.items()}
        operations = set(_operations)
    try:
        yield
    finally:
        with _lock:
            _restore(before, operations)


def _restore(before: dict[str, set[Handler]], operations: set[str]) -> None:
    for name in list(_events):
        entry = _events[name]
        if name not in before:
            del _events[name]
            _namespace.pop(name, None)
            continue
        now = set(entry.handlers)
        for handler in now - before[name]:
            entry.signal.disconnect(handler)
        for handler in before[name] - now:
            entry.signal.connect(handler, weak=False)
        _refresh(entry)
    _operations.intersection_update(operations)


def _refresh(entry: _Event) -> None:
    # The signal is the registry; emit walks this sorted snapshot of it, which
    # a concurrent registration replaces as a whole.
    registered = [r for r in entry.signal.receivers.values() if isinstance(r, Handler)]
    entry.handlers = tuple(sorted(registered, key=lambda h: (h.priority, h.sequence)))


def _handler(event: str, function: Callable[..., Any], priority: int) -> Handler:
    if not callable(function):
        raise EventError(f"A handler of {event} must be callable, not {function!r}.")
    code = getattr(inspect.unwrap(function), "__code__", None)
    script = Path(code.co_filename) if code else None
    bind = _binder(function)
    is_async = inspect.iscoroutinefunction(function)
    return Handler(
        event=event,
        function=function,
        priority=priority,
        sequence=next(_sequence),
        bind=bind,
        call=(lambda arguments: _complete(bind(arguments))) if is_async else bind,
        is_async=is_async,
        name=getattr(function, "__qualname__", repr(function)),
        script=script,
        line=code.co_firstlineno if code else 0,
    )


# Argument binding.


def _binder(function: Callable[..., Any]) -> Caller:
    """A caller passing each parameter the argument of the same name.

    A parameter with no such argument gets its default, or None when it has
    none. A ``**kwargs`` parameter receives every argument. The caller is a
    generated lambda so that emit pays for one call, not for a signature walk.
    """
    try:
        parameters = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):
        return lambda arguments: function(**arguments)

    takes_all = any(p.kind is p.VAR_KEYWORD for p in parameters)
    names: dict[str, Any] = {"f": function}
    positional: list[str] = []
    keyword: list[str] = []
    missing: dict[str, Any] = {}
    for index, p in enumerate(parameters):
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        default = None if p.default is p.empty else p.default
        names[f"d{index}"] = default
        value = f"a.get({p.name!r}, d{index})"
        if p.kind is p.POSITIONAL_ONLY or (
            p.kind is p.POSITIONAL_OR_KEYWORD and not takes_all
        ):
            positional.append(value)
        elif takes_all:
            missing[p.name] = default
        else:
            keyword.append(f"{p.name}={value}")

    if takes_all:
        names["m"] = missing
        keyword = ["**{**m, **a}"] if missing else ["**a"]
    source = f"lambda a: f({', '.join(positional + keyword)})"
    caller: Caller = eval(source, names)  # The source holds only parameter names.
    return caller


# Emitting.


def emit(event: str, /, *, strict: bool | None = None, **arguments: Any) -> Result:
    """Run every handler of ``event`` with ``arguments`` and say how each went.

    A handler that raises is logged and listed in the result; the others still
    run. With ``strict=True`` (or inside :func:`strict`) the error propagates.
    Async handlers run to completion here; async hosts should use :func:`aemit`.
    """
    entry = _events.get(event)
    if entry is None:
        raise _unknown(event, list(_events), "event")
    if strict is None:
        strict = _strict.get()
    if not entry.collects and _collector.get() is None:
        return _run(event, entry.handlers, arguments, strict)  # The usual case.

    with _collecting(entry) as collected:
        result = _run(event, entry.handlers, arguments, strict)
    result.restrictions = tuple(collected)
    return result


@contextmanager
def _collecting(entry: _Event) -> Iterator[list[Restriction]]:
    """The restrictions the handlers of ``entry`` add, while they run.

    A Restrictions event collects; any other, even one emitted from inside a
    Restrictions handler, must not add to the outer operation's list.
    """
    collected: list[Restriction] = []
    token = _collector.set(collected if entry.collects else None)
    try:
        yield collected
    finally:
        _collector.reset(token)


def _run(
    event: str, run: tuple[Handler, ...], arguments: Mapping[str, Any], strict: bool
) -> Result:
    values: list[Any] = []
    errors: dict[int, BaseException] | None = None
    for handler in run:
        try:
            value = handler.call(arguments)
            if type(value) is CoroutineType:
                # A sync wrapper around an async function, or an object with
                # an async __call__: known only once it returns a coroutine.
                value = _complete(value)
            values.append(value)
        except (Exception, SystemExit) as error:  # sys.exit() stops no host
            if strict:
                raise
            errors = _failed(errors, len(values), handler, error)
            values.append(None)
    return Result(event, run, values, errors)


async def aemit(
    event: str, /, *, strict: bool | None = None, **arguments: Any
) -> Result:
    """:func:`emit` for async hosts: async handlers are awaited on this loop."""
    entry = _entry(event)
    if strict is None:
        strict = _strict.get()
    with _collecting(entry) as collected:
        result = await _arun(event, entry.handlers, arguments, strict)
    result.restrictions = tuple(collected)
    return result


async def _arun(
    event: str, run: tuple[Handler, ...], arguments: Mapping[str, Any], strict: bool
) -> Result:
    values: list[Any] = []
    errors: dict[int, BaseException] | None = None
    for handler in run:
        try:
            value = handler.bind(arguments)
            values.append(await value if inspect.isawaitable(value) else value)
        except (Exception, SystemExit) as error:  # sys.exit() stops no host
            if strict:
                raise
            errors = _failed(errors, len(values), handler, error)
            values.append(None)
    return Result(event, run, values, errors)


def _complete(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run an async handler's coroutine to its end from synchronous code."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)

    # emit() was called on a running loop, which cannot be re-entered: the
    # coroutine gets a loop of its own on another thread, and the caller waits.
    context = contextvars.copy_context()
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = context.run(asyncio.run, coroutine)
        except BaseException as error:
            outcome["error"] = error

    thread = threading.Thread(target=run, name="apshooks-async-handler")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


@contextmanager
def strict() -> Iterator[None]:
    """Inside the block, a failing handler's error propagates out of emit."""
    token = _strict.set(True)
    try:
        yield
    finally:
        _strict.reset(token)


def restrict(entity: str, message: str) -> None:
    """Block the running operation for ``entity``, telling the user why."""
    collected = _collector.get()
    if collected is None:
        raise EventError(
            "restrict() works only inside a handler of a _Restrictions event, "
            "while the event runs. Register the check for the operation's "
            "Restrictions phase, e.g. @on('UpdateFileStates_Restrictions')."
        )
    collected.append(Restriction(str(entity), str(message)))


# Failures.


def _failed(
    errors: dict[int, BaseException] | None,
    index: int,
    handler: Handler,
    error: BaseException,
) -> dict[int, BaseException]:
    script, line = _where(handler, error)
    logs.ensure("client")  # A failure is worth a log file even in a bare host.
    # Only the error's own text is logged, never the event's arguments.
    logger.error(
        f"Handler {handler.name} of event {handler.event} failed in "
        f"{script or 'an unknown file'}, line {line}: {_reason(error)}"
    )
    errors = errors if errors is not None else {}
    errors[index] = error
    return errors


def _where(handler: Handler, error: BaseException | None) -> tuple[Path | None, int]:
    """The handler's file and the last line of it the error passed through."""
    line = handler.line
    if error is None or handler.script is None:
        return handler.script, line
    filename = str(handler.script)
    for frame, number in traceback.walk_tb(error.__traceback__):
        if frame.f_code.co_filename == filename:
            line = number
    return handler.script, line


def _reason(error: BaseException | None) -> str:
    if error is None:
        return ""
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _outcome(
    event: str, handler: Handler, value: Any, error: BaseException | None
) -> Outcome:
    script, line = _where(handler, error)
    return Outcome(event, handler.name, script, line, error is None, value, error)


# Operations.


@contextmanager
def operation(
    name: str, /, *, strict: bool | None = None, **arguments: Any
) -> Iterator[Operation]:
    """Run an operation's phases around the block, as Vault does.

    Restrictions handlers run first, all of them; if any called
    :func:`restrict`, :class:`Restricted` is raised and neither Pre nor Post
    runs. Otherwise Pre runs, then the block, then Post, which is told through
    ``successful`` whether the block raised (its error then still propagates).
    """
    if name not in _operations:
        raise _unknown(name, sorted(_operations), "operation")
    op = Operation(name, dict(arguments))

    checked = emit(f"{name}_Restrictions", strict=strict, **op.arguments)
    op.results["Restrictions"] = checked
    if checked.restrictions:
        count = len(checked.restrictions)
        logger.info(f"Operation {name} was blocked by {count} restriction(s).")
        raise Restricted(name, checked.restrictions, checked)

    op.results["Pre"] = emit(f"{name}_Pre", strict=strict, **op.arguments)
    try:
        yield op
    except BaseException:
        op.successful = False
        raise
    else:
        op.successful = True
    finally:
        post = {**op.arguments, "successful": op.successful}
        op.results["Post"] = emit(f"{name}_Post", strict=strict, **post)


def operations() -> list[str]:
    """Every operation whose three phases are declared, sorted."""
    return sorted(_operations)
