"""Not yet: commands are added here."""

from __future__ import annotations

import click

commands: list[click.Command] = []
