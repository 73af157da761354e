"""What a browser test needs: headless Chromium and a loopback callback listener.

Chromium is Debian's /usr/bin/chromium, never a downloaded one. Under CI=true a
missing browser fails the test; elsewhere it skips it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
]
UNDER_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium browser (playwright's Browser)."""
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing; install Debian's chromium package."
        if UNDER_CI:
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


class Callback:
    """A loopback HTTP server that records the first callback it receives."""

    def __init__(self) -> None:
        self.arrived = threading.Event()
        self.query: dict[str, str] = {}
        received = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                if parts.path != "/callback" or received.arrived.is_set():
                    self.send_error(404)  # The browser also asks for a favicon.
                    return
                query = parse_qs(parts.query)
                received.query = {key: values[0] for key, values in query.items()}
                received.arrived.set()
                body = b"<!doctype html><p id='done'>You can close this window.</p>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # The query holds the code; keep it out of test output.

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}/callback"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Callback:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
