"""Fixtures of the integration tests: a sandbox and a client that talks to it."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from aps.sandbox import Sandbox


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """A sandbox with the default data; tests that need options start their own."""
    with Sandbox.start() as running:
        yield running


@pytest.fixture
def http(sandbox: Sandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.url) as client:
        yield client
