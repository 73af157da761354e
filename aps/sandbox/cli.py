"""Not yet: the ``apshooks sandbox`` command."""

from __future__ import annotations

import click


@click.command()
def sandbox() -> None:
    """Serve the offline APS sandbox."""
