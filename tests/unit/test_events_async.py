"""Async handlers, from synchronous and from asynchronous hosts."""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import hooks
from hooks import events


@pytest.fixture(autouse=True)
def _isolated() -> Iterator[None]:
    with events.isolated():
        yield


@pytest.fixture
def notify() -> list[str]:
    sent: list[str] = []

    @hooks.on("UpdateFileStates_Post")
    async def handler(files: list[str], successful: bool) -> int:
        await asyncio.sleep(0)
        sent.extend(files)
        return len(files)

    return sent


def test_emit_runs_an_async_handler_to_completion(notify: list[str]) -> None:
    result = hooks.emit("UpdateFileStates_Post", files=["a.ipt"], successful=True)

    assert result.values == [1]
    assert notify == ["a.ipt"]


def test_emit_inside_a_running_loop_still_completes_async_handlers(
    notify: list[str],
) -> None:
    async def host() -> list[object]:
        return hooks.emit("UpdateFileStates_Post", files=["b.ipt"]).values

    assert asyncio.run(host()) == [1]
    assert notify == ["b.ipt"]


def test_aemit_awaits_async_handlers_on_the_hosts_loop() -> None:
    loops: list[int] = []

    @hooks.on("LoginVault_Post")
    async def handler() -> None:
        loops.append(id(asyncio.get_running_loop()))

    hooks.on("LoginVault_Post")(lambda user: user)

    async def host() -> tuple[list[object], int]:
        result = await hooks.aemit("LoginVault_Post", user="jane")
        return result.values, id(asyncio.get_running_loop())

    values, host_loop = asyncio.run(host())
    assert values == [None, "jane"]
    assert loops == [host_loop]


def test_an_async_handler_failure_is_isolated_too() -> None:
    @hooks.on("AddFile_Post")
    async def broken() -> None:
        raise ValueError("no vault")

    hooks.on("AddFile_Post")(lambda: "still ran")

    result = hooks.emit("AddFile_Post")
    assert result.values == [None, "still ran"]
    assert result.failures[0].reason == "ValueError: no vault"

    async def host() -> list[object]:
        return (await hooks.aemit("AddFile_Post")).values

    assert asyncio.run(host()) == [None, "still ran"]


def test_an_async_restrictions_handler_can_restrict() -> None:
    @hooks.on("MoveFolder_Restrictions")
    async def check(folder: str) -> None:
        hooks.restrict(folder, "Folders under $/Released do not move.")

    restricted = hooks.emit("MoveFolder_Restrictions", folder="$/Released/A")
    assert [r.entity for r in restricted.restrictions] == ["$/Released/A"]

    async def host() -> int:
        result = await hooks.aemit("MoveFolder_Restrictions", folder="$/B")
        return len(result.restrictions)

    assert asyncio.run(host()) == 1


def test_handlers_registered_in_another_thread_run_on_the_next_emit() -> None:
    done = threading.Event()

    def register() -> None:
        hooks.on("AddFolder_Post")(lambda: "from a thread")
        done.set()

    threading.Thread(target=register).start()
    assert done.wait(5)

    assert hooks.emit("AddFolder_Post").values == ["from a thread"]


def test_wrapped_and_callable_async_handlers_are_awaited_too() -> None:
    ran: list[str] = []

    def logged(function: Any) -> Any:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return function(*args, **kwargs)

        return wrapper

    class Notifier:
        async def __call__(self, user: str) -> str:
            ran.append(f"object {user}")
            return "object"

    @logged
    async def wrapped(user: str) -> str:
        ran.append(f"wrapped {user}")
        return "wrapped"

    with events.isolated():
        hooks.on("LoginVault_Post")(wrapped)
        hooks.on("LoginVault_Post")(Notifier())
        result = hooks.emit("LoginVault_Post", user="jane")

    assert result.values == ["wrapped", "object"]
    assert ran == ["wrapped jane", "object jane"]


def test_a_sync_wrapper_that_runs_its_coroutine_itself_stays_sync() -> None:
    async def fetch(user: str) -> int:
        return 42

    @functools.wraps(fetch)
    def fetch_now(user: str) -> int:
        return asyncio.run(fetch(user))

    with events.isolated():
        hooks.on("LoginVault_Post")(fetch_now)
        result = hooks.emit("LoginVault_Post", user="jane")

    assert result.ok
    assert result.values == [42]
