"""``apshooks demo``: the whole product end to end, offline."""

from __future__ import annotations

from pathlib import Path

import click

from hooks import demo as walkthrough


@click.command()
@click.option("--store", metavar="URL",
              help="Store URL, e.g. postgresql://user@host/db (default: an SQLite "
              "file of the demo's own). The demo's session and job stay in it.")
@click.option("--interactive", is_flag=True,
              help="Sign in through the real consent page in your browser.")
@click.option("--samples", type=click.Path(file_okay=False, path_type=Path),
              help="The samples folder (default: the one of this checkout).")
def demo(store: str | None, interactive: bool, samples: Path | None) -> None:
    """Run the whole product end to end against the offline sandbox.

    Signs in the demo user, emits LoginVault_Post to the sample customizations
    (which submit a job), runs the job processor until the queue is empty and
    prints what happened.
    """
    report = walkthrough.run(
        store=store, interactive=interactive, samples=samples, say=click.echo
    )
    walkthrough.print_report(report, say=click.echo)
