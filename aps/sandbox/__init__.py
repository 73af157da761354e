"""An offline stand-in for APS: sign-in, consent, tokens, hubs and projects.

Start one in-process with :meth:`Sandbox.start`, or from a shell with
``apshooks sandbox``. docs/sandbox.md says what it emulates and what not.
"""

from __future__ import annotations

from aps.sandbox.app import Sandbox, create_app
from aps.sandbox.grants import Lifetimes
from aps.sandbox.limits import RateLimit

__all__ = ["Lifetimes", "RateLimit", "Sandbox", "create_app"]
