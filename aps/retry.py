"""Retrying APS requests that were throttled (429) or failed on the server (5xx)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime

import attrs
import httpx
from loguru import logger

from aps.errors import RequestError

RETRIED = frozenset({429, 500, 502, 503, 504})


@attrs.frozen
class RetryPolicy:
    """How often and how long to wait before giving up on a request."""

    attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    timeout: float = 30.0  # Seconds for each attempt.

    def delay(self, attempt: int, response: httpx.Response | None) -> float:
        """Seconds to wait before attempt ``attempt + 1``."""
        if response is not None:
            advised = _retry_after(response)
            if advised is not None:
                return float(min(advised, self.max_delay))
        backoff = self.base_delay * 2 ** (attempt - 1)
        return float(min(backoff, self.max_delay) * random.uniform(0.5, 1.0))


DEFAULT_POLICY = RetryPolicy()


def send(
    send_once: Callable[[], httpx.Response],
    what: str,
    policy: RetryPolicy = DEFAULT_POLICY,
    sleep: Callable[[float], None] | None = None,
) -> httpx.Response:
    """Call ``send_once`` until it answers with a status that is not retried.

    ``what`` names the request in messages ("GET /project/v1/hubs"); it never
    holds a query string or body. The last answer is returned as it is, so the
    caller decides what a 4xx means; running out of retries raises.
    """
    for attempt in range(1, policy.attempts + 1):
        response: httpx.Response | None = None
        try:
            response = send_once()
        except httpx.TransportError as error:
            reason = f"{type(error).__name__}"
        else:
            if response.status_code not in RETRIED:
                return response
            reason = f"HTTP {response.status_code}"

        if attempt == policy.attempts:
            break
        wait = policy.delay(attempt, response)
        logger.info(
            "{} answered {}; retrying in {:.1f} s (attempt {} of {}).",
            what, reason, wait, attempt + 1, policy.attempts,
        )
        (sleep or time.sleep)(wait)

    if response is None:
        raise RequestError(
            f"{what} failed after {policy.attempts} attempts: the server could "
            f"not be reached ({reason}). Check the network and that the "
            "APS_* URL settings point at a server that runs."
        )
    raise RequestError(
        f"{what} failed after {policy.attempts} attempts ({reason}). APS may be "
        "throttling or unavailable: wait a minute and try again.",
        status=response.status_code,
    )


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None
