"""``apshooks login``, ``whoami``, ``hubs``, ``logout`` and ``sessions``."""

from __future__ import annotations

import time
import webbrowser
from collections.abc import Sequence

import click

from aps import _connect, logs
from aps.client import Connection
from aps.settings import Settings


def _settings() -> Settings:
    settings = Settings.load()
    logs.configure("client", settings)
    return settings


def _paste(url: str) -> str:
    click.echo("Open this URL in a browser on any machine, sign in and allow access:")
    click.echo(f"\n  {url}\n")
    click.echo("The browser then fails to load a localhost page; that is expected.")
    return str(click.prompt("Paste the full URL from its address bar"))


@click.command()
@click.option("--no-browser", is_flag=True,
              help="Do not open a browser: paste the redirected URL instead.")
def login(no_browser: bool) -> None:
    """Sign in with an Autodesk ID and grant consent to the app."""
    settings = _settings()
    if no_browser:
        conn = _connect.sign_in(settings, browser=None, paste=_paste)
    else:
        conn = _connect.sign_in(settings, browser=webbrowser.open)
    click.echo(f"Signed in as {conn.user}. The session is kept in "
               f"{_connect.store_for(settings).db.display}.")


@click.command()
def whoami() -> None:
    """Show the Autodesk ID signed in on this machine."""
    conn = _signed_in(_settings())
    name = f" ({conn.name})" if conn.name else ""
    click.echo(f"{conn.user}{name}")


@click.command()
def hubs() -> None:
    """List the signed-in user's hubs, and the regions that failed."""
    conn = _signed_in(_settings())
    rows = [(hub.name, hub.kind.value, hub.region, hub.id) for hub in conn.hubs]
    table(("Hub", "Kind", "Region", "Id"), rows)
    for error in conn.hubs.errors:
        click.echo(f"Error: {error}")


@click.command()
def logout() -> None:
    """Revoke the signed-in user's session at APS and forget it here."""
    who = _connect.sign_out(_settings())
    click.echo(f"Signed out {who}." if who else "Nobody was signed in on this machine.")


@click.command()
def sessions() -> None:
    """List the stored sessions and the days of consent they have left."""
    store = _connect.store_for(_settings())
    rows = []
    for info in store.sessions():
        state = "lost" if info.lost else f"{info.days_left():.1f} days left"
        renewed = time.strftime("%Y-%m-%d %H:%M", time.localtime(info.renewed_at))
        rows.append((info.autodesk_id, info.client_id, renewed, state))
    if not rows:
        click.echo("No stored sessions. Sign in with 'apshooks login'.")
        return
    table(("Autodesk ID", "App", "Last renewed", "Consent"), rows)


def _signed_in(settings: Settings) -> Connection:
    conn = _connect.stored_connection(settings)
    if conn is None:
        raise click.ClickException(
            "Nobody is signed in on this machine, or the consent expired. "
            "Run 'apshooks login'."
        )
    return conn


def table(
    header: Sequence[str] | None,
    rows: Sequence[Sequence[object]],
    indent: str = "",
) -> None:
    """Print rows in aligned columns, under a header when one is given."""
    lines = [header, *rows] if header else list(rows)
    if not lines:
        return
    columns = zip(*lines, strict=True)
    widths = [max(len(str(cell)) for cell in column) for column in columns]
    for row in lines:
        cells = zip(row, widths, strict=True)
        text = "  ".join(str(cell).ljust(width) for cell, width in cells)
        click.echo((indent + text).rstrip())


commands: list[click.Command] = [login, whoami, hubs, logout, sessions]
