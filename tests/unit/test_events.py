"""The event bus: catalogue, registration, argument binding, failures."""

from __future__ import annotations

import gc
import inspect
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import blinker
import pytest
from loguru import logger

import hooks
from hooks import events
from hooks.events import EventError

HERE = Path(__file__)


@pytest.fixture(autouse=True)
def _isolated() -> Iterator[None]:
    with events.isolated():
        yield


@pytest.fixture
def log() -> Iterator[list[str]]:
    lines: list[str] = []
    sink = logger.add(lines.append, format="{level} {message}", level="DEBUG")
    yield lines
    logger.remove(sink)


def _line_of(function: Callable[..., Any], text: str) -> int:
    lines, first = inspect.getsourcelines(function)
    return first + next(i for i, line in enumerate(lines) if text in line)


# The catalogue.


def test_the_catalogue_holds_every_vault_operation_phase_and_login() -> None:
    names = events.catalogue()

    assert len(names) == 16 * 3 + 1
    assert "LoginVault_Post" in names
    assert "LoginVault_Pre" not in names
    for phase in ("Restrictions", "Pre", "Post"):
        assert f"UpdateFileStates_{phase}" in names
        assert f"UpdateCustomEntityStates_{phase}" in names
    assert "UpdateChangeOrderState_Post" in names


def test_an_unknown_event_is_refused_at_registration_with_a_suggestion() -> None:
    with pytest.raises(EventError, match="Did you mean 'UpdateFileStates_Post'"):
        hooks.on("UpdateFileState_Post")


def test_an_unknown_event_is_refused_at_emit_with_a_suggestion() -> None:
    with pytest.raises(EventError, match="Did you mean 'LoginVault_Post'"):
        hooks.emit("LoginVaul_Post")


def test_a_name_far_from_any_event_points_to_the_list() -> None:
    with pytest.raises(EventError, match="apshooks events --all"):
        hooks.emit("Completely different")


def test_declared_events_can_be_handled_and_emitted() -> None:
    hooks.declare("MyTool_Post")
    seen: list[str] = []
    hooks.on("MyTool_Post")(lambda name: seen.append(name))

    hooks.emit("MyTool_Post", name="report.pdf")

    assert seen == ["report.pdf"]
    assert "MyTool_Post" in events.catalogue()


def test_declare_operation_adds_its_three_phases() -> None:
    assert hooks.declare_operation("Publish") == (
        "Publish_Restrictions",
        "Publish_Pre",
        "Publish_Post",
    )
    assert "Publish" in events.operations()


def test_isolated_undoes_declarations_and_registrations() -> None:
    with events.isolated():
        hooks.declare("Temporary_Post")
        hooks.on("LoginVault_Post")(lambda: None)

    assert "Temporary_Post" not in events.catalogue()
    assert events.handlers("LoginVault_Post") == []


# Registration.


def test_handlers_are_held_strongly() -> None:
    seen: list[str] = []

    def register_a_closure() -> None:
        hooks.on("LoginVault_Post")(lambda user: seen.append(user))

    register_a_closure()
    gc.collect()
    hooks.emit("LoginVault_Post", user="jane")

    assert seen == ["jane"]


def test_handlers_run_in_registration_order_then_by_priority() -> None:
    order: list[str] = []
    for name in ("first", "second", "third"):
        events.register("AddFile_Pre", lambda name=name: order.append(name))
    events.register("AddFile_Pre", lambda: order.append("early"), priority=-10)
    events.register("AddFile_Pre", lambda: order.append("late"), priority=5)

    hooks.emit("AddFile_Pre")

    assert order == ["early", "first", "second", "third", "late"]


def test_on_returns_the_function_unchanged() -> None:
    def handler(user: str) -> str:
        return user.upper()

    assert hooks.on("LoginVault_Post")(handler) is handler
    assert handler("jane") == "JANE"


def test_unregister_removes_a_handler() -> None:
    seen: list[int] = []
    handler = events.register("AddFolder_Post", lambda: seen.append(1))
    events.unregister(handler)

    hooks.emit("AddFolder_Post")

    assert seen == []
    assert events.handlers("AddFolder_Post") == []


def test_handlers_are_blinker_receivers_of_the_event_signal() -> None:
    events.register("AddItem_Post", lambda item: f"got {item}")
    signal = events.signal("AddItem_Post")

    assert isinstance(signal, blinker.Signal)
    [(_, value)] = signal.send(None, item="100-001")
    assert value == "got 100-001"


def test_a_handler_lists_its_script_and_line() -> None:
    def located() -> None:
        pass

    handler = events.register("AddFile_Post", located)

    assert handler.script == HERE
    assert handler.line == _line_of(located, "def located")
    assert handler.name.endswith("located")


# Argument binding.


def test_a_handler_receives_only_the_arguments_it_names() -> None:
    @hooks.on("UpdateFileStates_Post")
    def handler(successful: bool, files: list[str]) -> tuple[bool, list[str]]:
        return successful, files

    result = hooks.emit("UpdateFileStates_Post", files=["a.ipt"], successful=True)

    assert result.values == [(True, ["a.ipt"])]


def test_a_missing_argument_is_none_unless_the_handler_has_a_default() -> None:
    @hooks.on("LoginVault_Post")
    def handler(user: str, vault: str = "Vault", server: str | None = None) -> Any:
        return user, vault, server

    assert hooks.emit("LoginVault_Post").values == [(None, "Vault", None)]
    assert hooks.emit("LoginVault_Post", server="s").values == [(None, "Vault", "s")]


def test_kwargs_receives_every_argument() -> None:
    @hooks.on("LoginVault_Post")
    def handler(user: str, **rest: Any) -> dict[str, Any]:
        return {"user": user, **rest}

    [value] = hooks.emit("LoginVault_Post", user="jane", vault="Vault").values
    assert value == {"user": "jane", "vault": "Vault"}
    assert hooks.emit("LoginVault_Post").values == [{"user": None}]


def test_keyword_only_and_positional_only_parameters_are_bound_by_name() -> None:
    @hooks.on("LoginVault_Post")
    def handler(user: str, /, *args: Any, vault: str, port: int = 80) -> Any:
        return user, args, vault, port

    [value] = hooks.emit("LoginVault_Post", user="jane", vault="V").values
    assert value == ("jane", (), "V", 80)


def test_parameters_are_read_once_at_registration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hooks.on("LoginVault_Post")(lambda user: user)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("inspect.signature was called during emit")

    monkeypatch.setattr(inspect, "signature", refuse)
    assert hooks.emit("LoginVault_Post", user="jane").values == ["jane"]


def test_a_callable_object_is_bound_by_its_call_parameters() -> None:
    class Greeter:
        def __call__(self, user: str) -> str:
            return f"hello {user}"

    events.register("LoginVault_Post", Greeter())

    assert hooks.emit("LoginVault_Post", user="jane").values == ["hello jane"]


# Failures and strict mode.


def _failing(user: str) -> None:
    raise ValueError("the server is down")


def test_a_failing_handler_does_not_stop_the_others() -> None:
    hooks.on("LoginVault_Post")(lambda: "before")
    hooks.on("LoginVault_Post")(_failing)
    hooks.on("LoginVault_Post")(lambda: "after")

    result = hooks.emit("LoginVault_Post", user="jane")

    assert not result.ok
    assert result.values == ["before", None, "after"]
    assert [outcome.ok for outcome in result.outcomes] == [True, False, True]
    [failure] = result.failures
    assert failure.handler == "_failing"
    assert failure.script == HERE
    assert failure.line == _line_of(_failing, "raise ValueError")
    assert failure.reason == "ValueError: the server is down"
    assert isinstance(failure.error, ValueError)
    assert "_failing (test_events.py:" in str(failure)


def test_a_failure_is_logged_with_event_script_and_line_but_no_argument(
    log: list[str],
) -> None:
    hooks.on("LoginVault_Post")(_failing)

    hooks.emit("LoginVault_Post", user="secret-user-value")

    [line] = log
    assert line.startswith("ERROR Handler _failing of event LoginVault_Post")
    assert f"{HERE}, line {_line_of(_failing, 'raise ValueError')}" in line
    assert "the server is down" in line
    assert "secret-user-value" not in line


def test_the_failure_line_is_the_last_one_in_the_handlers_file() -> None:
    def calls_into_the_library() -> None:
        inspect.signature(42)  # type: ignore[arg-type]

    hooks.on("AddFile_Pre")(calls_into_the_library)

    [failure] = hooks.emit("AddFile_Pre").failures

    assert failure.script == HERE
    assert failure.line == _line_of(calls_into_the_library, "inspect.signature(42)")


def test_strict_mode_raises_the_handlers_error() -> None:
    hooks.on("LoginVault_Post")(_failing)

    with pytest.raises(ValueError, match="the server is down"):
        hooks.emit("LoginVault_Post", strict=True)
    with hooks.strict(), pytest.raises(ValueError, match="the server is down"):
        hooks.emit("LoginVault_Post")
    assert not hooks.emit("LoginVault_Post").ok


def test_strict_false_overrides_the_strict_block() -> None:
    hooks.on("LoginVault_Post")(_failing)

    with hooks.strict():
        assert not hooks.emit("LoginVault_Post", strict=False).ok


def test_an_event_without_handlers_succeeds_with_no_outcomes() -> None:
    result = hooks.emit("DeleteFolder_Post", folder="$/Designs")

    assert result.ok
    assert result.outcomes == []
    assert result.event == "DeleteFolder_Post"
