"""The ``apshooks`` command: one group, its commands defined beside what they drive."""

from __future__ import annotations

from typing import Any

import click

from aps import logs
from aps.cli import commands as session_commands
from aps.errors import APSError
from aps.sandbox.cli import sandbox
from hooks.cli.demo import demo
from hooks.cli.events import commands as event_commands
from hooks.cli.jobs import commands as job_commands


class _Group(click.Group):
    """Shows apshooks' own errors as one clear line, without a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except APSError as error:
            raise click.ClickException(str(error)) from None
        except OSError as error:  # A folder or file the settings name.
            where = f" ({error.filename})" if error.filename else ""
            raise click.ClickException(f"{error.strerror or error}{where}.") from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="apshooks")
def main() -> None:
    """Automate Autodesk Vault workflows against Autodesk Platform Services."""
    logs.quiet_console()


for command in (
    *session_commands,
    sandbox,
    *event_commands,
    *job_commands,
    demo,
):
    main.add_command(command)
