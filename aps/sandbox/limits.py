"""Rate limits per endpoint, answered with 429 and ``Retry-After`` as APS does.

Limits count every request to an endpoint, whoever sends it: a sandbox serves
one developer, so per-app quotas would only hide the behaviour under test.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Literal

import attrs

from aps.errors import SettingsError

Window = Literal["sliding", "fixed"]

# Endpoint names -> the paths they cover. Hub calls share one quota and
# project calls another, as in APS.
ENDPOINTS = {
    "authorize": ("/authentication/v2/authorize",),
    "token": ("/authentication/v2/token",),
    "revoke": ("/authentication/v2/revoke",),
    "introspect": ("/authentication/v2/introspect",),
    "hubs": ("/project/v1/hubs", "/project/v1/hubs/<hub_id>"),
    "projects": (
        "/project/v1/hubs/<hub_id>/projects",
        "/project/v1/hubs/<hub_id>/projects/<project_id>/topFolders",
    ),
}
APS_PRESET = {
    "token": 500,
    "authorize": 100,
    "revoke": 100,
    "introspect": 100,
    "hubs": 50,
    "projects": 50,
}


@attrs.frozen
class RateLimit:
    """At most ``requests`` per ``period`` seconds (a minute unless told)."""

    requests: int
    window: Window = "sliding"
    period: float = 60.0


class _Counter:
    def __init__(self, limit: RateLimit) -> None:
        self.limit = limit
        self._times: deque[float] = deque()
        self._fixed_start = 0.0
        self._fixed_count = 0

    def take(self, now: float) -> float:
        """Count a request; return 0, or the seconds to wait when over."""
        if self.limit.window == "fixed":
            return self._take_fixed(now)
        period = self.limit.period
        while self._times and self._times[0] <= now - period:
            self._times.popleft()
        if len(self._times) >= self.limit.requests:
            return self._times[0] + period - now
        self._times.append(now)
        return 0.0

    def _take_fixed(self, now: float) -> float:
        period = self.limit.period
        start = math.floor(now / period) * period
        if start != self._fixed_start:
            self._fixed_start, self._fixed_count = start, 0
        if self._fixed_count >= self.limit.requests:
            return start + period - now
        self._fixed_count += 1
        return 0.0


class RateLimits:
    """The limits of one sandbox, keyed by Flask URL rule."""

    def __init__(
        self, limits: Mapping[str, int | RateLimit] | Literal["aps"] | None
    ) -> None:
        chosen: Mapping[str, int | RateLimit] = (
            APS_PRESET if limits == "aps" else limits or {}
        )
        self._lock = threading.Lock()
        self._counters: dict[str, _Counter] = {}
        for name, value in chosen.items():
            limit = value if isinstance(value, RateLimit) else RateLimit(int(value))
            counter = _Counter(limit)  # The paths of one endpoint share a quota.
            for rule in _rules(name):
                self._counters[rule] = counter

    def check(self, rule: str | None) -> int | None:
        """``None`` if the request may go on, else the seconds to Retry-After."""
        counter = self._counters.get(rule or "")
        if counter is None:
            return None
        with self._lock:
            wait = counter.take(time.monotonic())
        return max(1, math.ceil(wait)) if wait > 0 else None


def _rules(name: str) -> tuple[str, ...]:
    if name in ENDPOINTS:
        return ENDPOINTS[name]
    if any(name in rules for rules in ENDPOINTS.values()):
        return (name,)
    raise SettingsError(
        f"The sandbox has no endpoint {name!r} to limit. Use one of "
        f"{', '.join(ENDPOINTS)} or a path such as /authentication/v2/token."
    )
