"""aps.connect() through the sandbox's consent page in a real headless Chromium."""

from __future__ import annotations

import threading

import pytest
from browser_support import chromium

import aps
from aps.errors import SignInRefused
from aps.sandbox import Sandbox, free_callback_url

pytestmark = pytest.mark.browser


class Person:
    """Someone at a browser: opens the URL, picks ``user``, clicks ``button``."""

    def __init__(self, user: str, button: str) -> None:
        self.user, self.button = user, button
        self.landed = self.text = ""
        self._thread: threading.Thread | None = None

    def __call__(self, url: str) -> None:
        self._thread = threading.Thread(target=self._visit, args=(url,), daemon=True)
        self._thread.start()

    def finish(self) -> Person:
        assert self._thread is not None, "the browser was never opened"
        self._thread.join(30)
        return self

    def _visit(self, url: str) -> None:
        with chromium() as browser:
            page = browser.new_page()
            page.goto(url)
            page.select_option("select[name=user]", self.user)
            page.click(f"#{self.button}")
            page.wait_for_load_state()
            self.landed = page.url
            self.text = page.text_content("body") or ""


@pytest.mark.parametrize("user", ["jane@example.com", "john@example.com"])
def test_allow_on_the_page_brings_the_connection_up_as_that_user(user: str) -> None:
    callback, person = free_callback_url(), Person(user, "allow")
    with Sandbox.start(callback_urls=[callback]) as sandbox:
        conn = aps.connect(
            settings=sandbox.settings(callback_url=callback), browser=person
        )
        assert conn.user == user
        assert len(conn.hubs) >= 1
    person.finish()
    assert person.landed.startswith(callback)
    assert "Sign-in finished" in person.text


def test_deny_on_the_page_is_a_clear_error() -> None:
    callback, person = free_callback_url(), Person("jane@example.com", "deny")
    with (
        Sandbox.start(callback_urls=[callback]) as sandbox,
        pytest.raises(SignInRefused, match="consent was denied"),
    ):
        aps.connect(
            settings=sandbox.settings(callback_url=callback),
            browser=person,
        )
    assert "denied" in person.finish().text
