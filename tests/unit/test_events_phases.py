"""Operations: Restrictions, Pre, the operation itself, then Post."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import hooks
from hooks import events
from hooks.events import EventError, Restricted

FILES = [
    {"name": "Bracket.ipt", "new_state": "Released", "pdf": "Bracket.pdf"},
    {"name": "Plate.ipt", "new_state": "Released"},
    {"name": "Shaft.ipt", "new_state": "Released"},
]


@pytest.fixture(autouse=True)
def _isolated() -> Iterator[None]:
    with events.isolated():
        yield


@pytest.fixture
def phases() -> list[str]:
    """Registers a Pre and a Post handler that note when they run."""
    ran: list[str] = []
    hooks.on("UpdateFileStates_Pre")(lambda: ran.append("Pre"))

    @hooks.on("UpdateFileStates_Post")
    def post(successful: bool) -> None:
        ran.append(f"Post successful={successful}")

    return ran


def _no_release_without_pdf(files: list[dict[str, Any]]) -> None:
    for f in files:
        if f["new_state"] == "Released" and not f.get("pdf"):
            hooks.restrict(f["name"], "Create the PDF before releasing.")


def test_the_phases_run_in_vaults_order(phases: list[str]) -> None:
    with hooks.operation("UpdateFileStates", files=FILES[:1]):
        phases.append("operation")

    assert phases == ["Pre", "operation", "Post successful=True"]


def test_a_restriction_blocks_the_operation_and_pre_and_post(
    phases: list[str],
) -> None:
    hooks.on("UpdateFileStates_Restrictions")(_no_release_without_pdf)

    with (
        pytest.raises(Restricted) as raised,
        hooks.operation("UpdateFileStates", files=FILES),
    ):
        phases.append("operation")

    assert phases == []
    assert [r.entity for r in raised.value.restrictions] == ["Plate.ipt", "Shaft.ipt"]
    message = str(raised.value)
    assert "UpdateFileStates was blocked by 2 restriction(s)" in message
    assert "Plate.ipt: Create the PDF before releasing." in message
    assert "Shaft.ipt: Create the PDF before releasing." in message


def test_every_restrictions_handler_runs_even_after_a_restriction() -> None:
    hooks.on("DeleteFiles_Restrictions")(lambda: hooks.restrict("A.ipt", "In use."))
    hooks.on("DeleteFiles_Restrictions")(lambda: hooks.restrict("B.ipt", "Locked."))

    with pytest.raises(Restricted) as raised, hooks.operation("DeleteFiles"):
        pass

    assert raised.value.restrictions == (
        events.Restriction("A.ipt", "In use."),
        events.Restriction("B.ipt", "Locked."),
    )
    assert raised.value.result is not None
    assert len(raised.value.result.outcomes) == 2


def test_a_failing_restrictions_handler_does_not_block() -> None:
    @hooks.on("AddFolder_Restrictions")
    def broken() -> None:
        raise KeyError("folder")

    with hooks.operation("AddFolder") as op:
        pass

    assert op.restrictions == ()
    assert not op.results["Restrictions"].ok
    assert op.successful is True


def test_post_is_told_when_the_operation_failed_and_the_error_still_raises(
    phases: list[str],
) -> None:
    with (
        pytest.raises(OSError, match="disk full"),
        hooks.operation("UpdateFileStates", files=FILES) as op,
    ):
        raise OSError("disk full")

    assert phases == ["Pre", "Post successful=False"]
    assert op.successful is False


def test_the_op_object_gives_each_phases_result() -> None:
    hooks.on("CommitItems_Pre")(lambda items: len(items))
    hooks.on("CommitItems_Post")(lambda number, successful: (number, successful))

    with hooks.operation("CommitItems", items=["100-001", "100-002"]) as op:
        op.arguments["number"] = "CO-7"

    assert list(op.results) == ["Restrictions", "Pre", "Post"]
    assert op.results["Pre"].values == [2]
    assert op.results["Post"].values == [("CO-7", True)]
    assert op.restrictions == ()


def test_restrict_outside_a_restrictions_handler_is_a_clear_error() -> None:
    with pytest.raises(EventError, match="only inside a handler of a _Restrictions"):
        hooks.restrict("Plate.ipt", "No.")

    hooks.on("AddFile_Pre")(lambda: hooks.restrict("Plate.ipt", "No."))
    [failure] = hooks.emit("AddFile_Pre").failures
    assert isinstance(failure.error, EventError)


def test_emitting_a_restrictions_event_returns_its_restrictions() -> None:
    hooks.on("UpdateFileStates_Restrictions")(_no_release_without_pdf)

    result = hooks.emit("UpdateFileStates_Restrictions", files=FILES)

    assert [r.entity for r in result.restrictions] == ["Plate.ipt", "Shaft.ipt"]
    assert result.ok


def test_an_unknown_operation_is_refused_with_a_suggestion() -> None:
    with (
        pytest.raises(EventError, match="Did you mean 'UpdateFileStates'"),
        hooks.operation("UpdateFileState"),
    ):
        pass


def test_a_declared_operation_runs_its_phases() -> None:
    hooks.declare_operation("Publish")
    hooks.on("Publish_Restrictions")(lambda target: hooks.restrict(target, "Busy."))

    with (
        pytest.raises(Restricted, match=r"web: Busy\."),
        hooks.operation("Publish", target="web"),
    ):
        pass


def test_strict_mode_lets_a_handler_error_escape_the_operation() -> None:
    @hooks.on("AddItem_Pre")
    def broken() -> None:
        raise RuntimeError("no numbering scheme")

    ran: list[str] = []
    with (
        pytest.raises(RuntimeError, match="no numbering scheme"),
        hooks.operation("AddItem", strict=True),
    ):
        ran.append("operation")

    assert ran == []


def test_restrict_in_an_event_fired_from_a_restrictions_handler_is_refused() -> None:
    with events.isolated():

        @hooks.on("UpdateFileStates_Restrictions")
        def check(files: list[str]) -> None:
            hooks.emit("LoginVault_Post", strict=True)

        @hooks.on("LoginVault_Post")
        def sneaky() -> None:
            hooks.restrict("a.ipt", "not from here")

        with pytest.raises(events.EventError), hooks.operation(
            "UpdateFileStates", files=["a.ipt"], strict=True
        ):
            pass
