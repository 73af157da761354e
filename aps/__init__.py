"""A thin session layer for Autodesk Platform Services.

``aps.connect()`` connects as the Autodesk ID signed in on this machine (browser
consent the first time, silent afterwards); ``aps.connection`` is the current
connection after that, like ``$APSConnection``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from loguru import logger

from aps._connect import ConnectionFailure, connect
from aps.client import Connection
from aps.errors import (
    APSError,
    AuthenticationError,
    ConsentRequired,
    ImpersonationRefused,
    PortBusy,
    RequestError,
    SettingsError,
    SignInRefused,
    SignInTimeout,
    StoreError,
)
from aps.hubs import Hub, HubError, HubKind, HubNotFound, Hubs
from aps.impersonation import impersonation
from aps.settings import Settings

# Silent until aps.logs sets up a log file (connect(), the CLI, a processor):
# a library never writes to its host's console on its own.
logger.disable("aps")
logger.disable("hooks")

__all__ = [
    "APSError",
    "AuthenticationError",
    "Connection",
    "ConnectionFailure",
    "ConsentRequired",
    "Hub",
    "HubError",
    "HubKind",
    "HubNotFound",
    "Hubs",
    "ImpersonationRefused",
    "PortBusy",
    "RequestError",
    "Settings",
    "SettingsError",
    "SignInRefused",
    "SignInTimeout",
    "StoreError",
    "connect",
    "connection",
    "impersonation",
]

if TYPE_CHECKING:
    connection: Connection | None


def __getattr__(name: str) -> object:
    if name == "connection":
        from aps._connect import current

        return current()
    raise AttributeError(f"module 'aps' has no attribute {name!r}")
