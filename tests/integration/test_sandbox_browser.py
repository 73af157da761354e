"""The consent page in a real headless Chromium: choose a user, Allow or Deny."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from browser_support import Callback, chromium
from sandbox_client import attempt, bearer, exchange

from aps.sandbox import Sandbox

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def callback() -> Iterator[Callback]:
    with Callback() as listening:
        yield listening


@pytest.fixture
def sandbox(callback: Callback) -> Iterator[Sandbox]:
    with Sandbox.start(callback_urls=[callback.url]) as running:
        yield running


def open_consent(browser: Any, sandbox: Sandbox, query: dict[str, str]) -> Any:
    page = browser.new_page()
    page.goto(f"{sandbox.url}/authentication/v2/authorize?{urlencode(query)}")
    return page


def test_allow_lands_on_the_callback_with_a_code_for_the_chosen_user(
    browser: Any, sandbox: Sandbox, callback: Callback
) -> None:
    tried = attempt(redirect_uri=callback.url)
    page = open_consent(browser, sandbox, tried.query)

    assert page.text_content("#app-name") == "apshooks sandbox"
    page.select_option("select[name=user]", "john@example.com")
    page.click("#allow")
    page.wait_for_selector("#done")

    assert callback.arrived.wait(10)
    assert callback.query["state"] == tried.state
    with httpx.Client(base_url=sandbox.url) as http:
        tokens = exchange(http, tried, callback.query["code"]).json()
        profile = http.get("/userinfo", headers=bearer(tokens["access_token"])).json()
    assert profile["email"] == "john@example.com"
    page.close()


def test_deny_lands_on_the_callback_with_access_denied(
    browser: Any, sandbox: Sandbox, callback: Callback
) -> None:
    tried = attempt(redirect_uri=callback.url)
    page = open_consent(browser, sandbox, tried.query)

    page.click("#deny")
    page.wait_for_selector("#done")

    assert callback.arrived.wait(10)
    assert callback.query["error"] == "access_denied"
    assert callback.query["state"] == tried.state
    assert "code" not in callback.query
    page.close()
