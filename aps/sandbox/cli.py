"""The ``apshooks sandbox`` command: serve the offline APS sandbox until stopped."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Literal

import click

from aps.sandbox.grants import Lifetimes
from aps.sandbox.limits import APS_PRESET, ENDPOINTS, RateLimit

DEFAULT_PORT = 8765


@click.command()
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=DEFAULT_PORT,
    show_default=True,
    help="Port to listen on; 0 picks a free one.",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on. Only loopback unless --allow-remote.",
)
@click.option(
    "--allow-remote",
    is_flag=True,
    help="Allow a non-loopback --host: anyone who reaches it can sign in.",
)
@click.option(
    "--data",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="TOML file with your own users, apps and hubs.",
)
@click.option(
    "--auto-consent",
    metavar="EMAIL",
    help="Sign this user in without showing the consent page.",
)
@click.option("--code-lifetime", type=float, default=300.0, show_default=True)
@click.option("--access-lifetime", type=float, default=3600.0, show_default=True)
@click.option(
    "--refresh-lifetime",
    type=float,
    default=15 * 86400.0,
    show_default=True,
    help="Seconds a refresh token (and so a consent) lives after each refresh.",
)
@click.option(
    "--rate-limits",
    "preset",
    type=click.Choice(["none", "aps"]),
    default="none",
    show_default=True,
    help="'aps' applies APS's per-minute limits.",
)
@click.option(
    "--rate-limit",
    "limits",
    multiple=True,
    metavar="ENDPOINT=N",
    help=f"Requests per minute for one endpoint ({', '.join(ENDPOINTS)}); "
    "repeatable, wins over the preset.",
)
@click.option(
    "--window",
    type=click.Choice(["sliding", "fixed"]),
    default="sliding",
    show_default=True,
    help="How --rate-limit counts a minute.",
)
def sandbox(
    port: int,
    host: str,
    allow_remote: bool,
    data: Path | None,
    auto_consent: str | None,
    code_lifetime: float,
    access_lifetime: float,
    refresh_lifetime: float,
    preset: str,
    limits: tuple[str, ...],
    window: Literal["sliding", "fixed"],
) -> None:
    """Serve the offline APS sandbox: sign-in, consent, tokens, hubs, projects.

    It prints the settings that point apshooks at it, then serves until
    Ctrl+C.
    """
    try:
        from aps.client import is_loopback
        from aps.sandbox.server import Sandbox
    except ImportError as error:
        raise click.ClickException(
            f"The sandbox cannot start: {error}. Install it with "
            "pip install 'apshooks[sandbox]'."
        ) from None

    rate_limits: dict[str, int | RateLimit] = {}
    if preset == "aps":
        rate_limits.update(APS_PRESET)
    rate_limits.update(_parse_limits(limits, window))

    running = Sandbox.start(
        data=data,
        auto_consent=auto_consent,
        lifetimes=Lifetimes(code_lifetime, access_lifetime, refresh_lifetime),
        rate_limits=rate_limits,
        host=host,
        port=port,
        allow_remote=allow_remote,
    )
    with running:
        where = "loopback only" if is_loopback(host) else f"reachable on {host}"
        click.echo(f"# The APS sandbox serves {running.url} ({where}).")
        click.echo("# Point apshooks at it with these environment variables:")
        for name, value in running.environment().items():
            click.echo(f"{name}={value}")
        click.echo("# Press Ctrl+C to stop.")
        _wait_for_stop()


def _parse_limits(
    values: tuple[str, ...], window: Literal["sliding", "fixed"]
) -> dict[str, int | RateLimit]:
    parsed: dict[str, int | RateLimit] = {}
    for value in values:
        name, _, count = value.partition("=")
        if not count.isdigit():
            raise click.BadParameter(
                f"{value!r} is not ENDPOINT=N, e.g. token=500.",
                param_hint="--rate-limit",
            )
        parsed[name] = RateLimit(int(count), window)
    return parsed


def _wait_for_stop() -> None:
    stopped = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopped.set()

    signal.signal(signal.SIGTERM, stop)
    try:
        # A timed wait, because an untimed one does not let Ctrl+C through on
        # Windows.
        while not stopped.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
