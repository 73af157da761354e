"""An offline stand-in for APS: sign-in, consent, tokens, hubs and projects.

Start one in-process with :meth:`Sandbox.start`, or from a shell with
``apshooks sandbox``. docs/sandbox.md says what it emulates and what not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aps.sandbox.grants import Lifetimes
from aps.sandbox.limits import RateLimit

if TYPE_CHECKING:
    from aps.sandbox.app import create_app
    from aps.sandbox.server import Sandbox, free_callback_url

__all__ = ["Lifetimes", "RateLimit", "Sandbox", "create_app", "free_callback_url"]


def __getattr__(name: str) -> Any:
    # The server needs Flask (the `sandbox` extra); importing it only when asked
    # keeps `apshooks` working without it.
    if name in ("Sandbox", "free_callback_url"):
        from aps.sandbox import server

        return getattr(server, name)
    if name == "create_app":
        from aps.sandbox.app import create_app

        return create_app
    raise AttributeError(f"module 'aps.sandbox' has no attribute {name!r}")
