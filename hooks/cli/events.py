"""``apshooks fire`` and ``apshooks events``: try customizations without Vault."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from aps import logs
from aps.cli import table
from aps.settings import Settings
from hooks import customizations as custom
from hooks import events
from hooks.events import EventError, Restricted, Result

# Exit statuses of `apshooks fire` (2 is click's own, for usage errors).
FAILED = 1
RESTRICTED = 3

_folder_option = click.option(
    "--customizations",
    "folder",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder of customization scripts (default: the customizations setting).",
)


@click.command()
@click.argument("event")
@click.option(
    "--arg",
    "arguments",
    metavar="NAME=VALUE",
    multiple=True,
    help="An argument for the handlers; VALUE is read as JSON when it parses.",
)
@_folder_option
def fire(event: str, arguments: Sequence[str], folder: Path | None) -> None:
    """Load the customizations and fire EVENT, showing what each handler did.

    EVENT is an event such as LoginVault_Post, or an operation such as
    UpdateFileStates to run its Restrictions, Pre and Post phases in turn.
    Exits with 1 when a handler or a script failed, 3 when a restriction
    blocked the operation.
    """
    values = dict(_argument(text) for text in arguments)
    loaded_ok = _load(folder)
    try:
        if event in events.operations():
            results, blocked = _operation(event, values)
        else:
            results, blocked = [events.emit(event, **values)], False
    except EventError as error:
        raise click.BadParameter(str(error), param_hint="EVENT") from None

    for result in results:
        _show(result)
    if blocked:
        raise click.exceptions.Exit(RESTRICTED)
    if not loaded_ok or not all(result.ok for result in results):
        raise click.exceptions.Exit(FAILED)


@click.command("events")
@click.option(
    "--all", "show_all", is_flag=True, help="Also list events without handlers."
)
@_folder_option
def list_events(show_all: bool, folder: Path | None) -> None:
    """Load the customizations and list their handlers by event.

    Exits with 1 when a script failed to load.
    """
    loaded_ok = _load(folder)
    for event in events.catalogue():
        registered = events.handlers(event)
        if not registered and not show_all:
            continue
        click.echo(event)
        rows = [
            (_where(h.script, h.line), h.name, _priority(h.priority))
            for h in registered
        ]
        table(None, rows, indent="  ")
    if not loaded_ok:
        raise click.exceptions.Exit(FAILED)


commands: list[click.Command] = [fire, list_events]


def _load(folder: Path | None) -> bool:
    settings = Settings.load()
    logs.configure("client", settings)
    folder = folder or settings.customizations_folder
    if not folder.is_dir():
        click.echo(
            f"There is no customizations folder {folder}: no script was loaded. "
            "Pass --customizations DIR or set APSHOOKS_CUSTOMIZATIONS.",
            err=True,
        )
    report = custom.load(folder)
    for error in report.failed:
        click.echo(f"Could not load {error}", err=True)
    return report.ok


def _operation(name: str, values: dict[str, Any]) -> tuple[list[Result], bool]:
    try:
        with events.operation(name, **values) as op:
            pass
    except Restricted as restricted:
        return ([restricted.result] if restricted.result else []), True
    return list(op.results.values()), False


def _argument(text: str) -> tuple[str, Any]:
    name, equals, value = text.partition("=")
    if not equals or not name.isidentifier():
        raise click.BadParameter(
            f"{text!r} is not NAME=VALUE; write for example --arg user=jane.",
            param_hint="--arg",
        )
    try:
        return name, json.loads(value)
    except ValueError:
        return name, value


def _show(result: Result) -> None:
    click.echo(result.event)
    rows = [
        (
            "ok" if outcome.ok else "failed",
            outcome.handler,
            _where(outcome.script, outcome.line),
            outcome.reason if not outcome.ok else _returned(outcome.value),
        )
        for outcome in result.outcomes
    ]
    rows += [("restricted", r.entity, r.message, "") for r in result.restrictions]
    if not rows:
        click.echo("  (no handlers)")
    table(None, rows, indent="  ")


def _returned(value: Any) -> str:
    if value is None:
        return ""
    text = repr(value)
    return f"returned {text if len(text) <= 60 else text[:57] + '...'}"


def _where(script: Path | None, line: int) -> str:
    return f"{script.name}:{line}" if script else "?"


def _priority(priority: int) -> str:
    return f"priority {priority}" if priority else ""
