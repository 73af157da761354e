"""Time one ``emit()`` against ``blinker.Signal.send`` with the same handlers.

Run with ``.venv/bin/python bench/bench_emit.py``. Both sides call the same
function bodies: blinker's receivers take ``(sender, user, vault)`` as blinker
passes them, apshooks' handlers take ``(user, vault)`` by name. Rounds alternate
between the two so that both see the same machine state; each figure is the
best of several repeats, printed as a ratio to blinker's time.
"""

from __future__ import annotations

import timeit
from collections.abc import Callable
from typing import Any

import blinker

import hooks.events as events

REPEATS = 7
LOOPS = 20_000
GOAL = 1.25


def _receiver(index: int) -> Callable[..., Any]:
    def receiver(sender: object, user: object = None, vault: object = None) -> int:
        return index

    return receiver


def _handler(index: int) -> Callable[..., Any]:
    def handler(user: object, vault: object) -> int:
        return index

    return handler


def _setup(count: int, phase: str) -> tuple[Callable[[], object], Callable[[], object]]:
    signal = blinker.Signal()
    receivers = [_receiver(i) for i in range(count)]
    for receiver in receivers:
        signal.connect(receiver, weak=False)

    event = events.declare(f"Bench{count}_{phase}")
    for i in range(count):
        events.register(event, _handler(i))

    def send() -> object:
        return signal.send(None, user="jane", vault="Vault")

    def emit() -> object:
        return events.emit(event, user="jane", vault="Vault")

    return send, emit


def _best(function: Callable[[], object]) -> float:
    return min(timeit.repeat(function, number=LOOPS, repeat=1)) / LOOPS


def main() -> None:
    print(f"emit() vs blinker.Signal.send, best of {REPEATS} x {LOOPS:,} calls")
    # A Restrictions event also opens a collector for restrict() on each emit.
    for count, phase in ((1, "Post"), (10, "Post"), (10, "Restrictions")):
        send, emit = _setup(count, phase)
        blinker_times: list[float] = []
        emit_times: list[float] = []
        for _ in range(REPEATS):
            blinker_times.append(_best(send))
            emit_times.append(_best(emit))
        baseline, ours = min(blinker_times), min(emit_times)
        ratio = ours / baseline
        verdict = "within goal" if ratio <= GOAL else f"over the {GOAL}x goal"
        print(
            f"  {count:>2} handler(s), {phase + ':':<13} "
            f"blinker {baseline * 1e6:6.2f} us, "
            f"emit {ours * 1e6:6.2f} us, ratio {ratio:4.2f}x ({verdict})"
        )


if __name__ == "__main__":
    main()
