"""Not yet: the ``apshooks demo`` command."""

from __future__ import annotations

import click


@click.command()
def demo() -> None:
    """Run the whole product end to end against the offline sandbox."""
