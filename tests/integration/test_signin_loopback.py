"""The sign-in listener over real loopback connections."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import webbrowser
from collections.abc import Callable, Iterator
from http.client import HTTPConnection
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from browser_support import chromium
from pytest_httpx import HTTPXMock

from aps import signin
from aps.errors import AuthenticationError, PortBusy, SignInRefused, SignInTimeout
from aps.settings import Settings
from aps.signin import SignIn, sign_in
from aps.tokens import TokenClient

BASE = "https://auth.example.test"
TOKEN_URL = f"{BASE}/authentication/v2/token"
CODE = "the-authorization-code"
TOKENS = {"access_token": "the-access-token", "expires_in": 3599}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def assert_port_free(port: int) -> None:
    """Listen on ``port`` the way the next sign-in will; fails while it is held."""
    with socket.socket() as again:
        # Closed connections linger in TIME_WAIT; this option (the listener's
        # own) lets a new server bind past them, never past a live listener.
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", port))
        again.listen()


def get(port: int, target: str) -> tuple[int, str]:
    connection = HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", target)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


class Browser:
    """Visits the listener as a browser would, from a thread of its own."""

    def __init__(self, port: int, visits: Callable[[str], list[str]]) -> None:
        self.port = port
        self.visits = visits
        self.pages: list[tuple[int, str]] = []
        self.failure: Exception | None = None
        self.done = threading.Event()

    def __call__(self, url: str) -> bool:
        state = parse_qs(urlsplit(url).query)["state"][0]
        try:
            for target in self.visits(state):
                self.pages.append(get(self.port, target))
        except Exception as error:
            self.failure = error
        finally:
            self.done.set()
        return True

    def finished(self) -> list[tuple[int, str]]:
        assert self.done.wait(5), "the browser never finished its visits"
        assert self.failure is None
        return self.pages


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


def settings(port: int, path: str = "/") -> Settings:
    return Settings(
        client_id="app-id",
        base_url=BASE,
        scopes=("data:read",),
        callback_url=f"http://localhost:{port}{path}",
    )


def run(port: int, http: httpx.Client, path: str = "/", **options: Any) -> SignIn:
    config = settings(port, path)
    options.setdefault("announce", lambda text: None)
    return sign_in(config, TokenClient(config, http), http, **options)


def answer(state: str, **values: str) -> str:
    return f"/callback?{urlencode({'state': state, **values})}"


def test_sign_in_completes_past_stray_and_foreign_requests(
    port: int, http: httpx.Client, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(url=TOKEN_URL, json=TOKENS)
    browser = Browser(
        port,
        lambda state: [
            "/favicon.ico",
            answer("forged", code="planted-code"),
            answer(state, code=CODE),
        ],
    )

    result = run(port, http, "/callback", browser=browser)

    stray, foreign, final = browser.finished()
    assert stray[0] == 404
    assert foreign[0] == 400
    assert "ignored" in foreign[1]
    assert final[0] == 200
    assert "You can close this window" in final[1]
    assert result.tokens.access_token == "the-access-token"
    form = parse_qs(httpx_mock.get_requests(url=TOKEN_URL)[0].content.decode())
    assert form["code"] == [CODE]
    assert_port_free(port)


def test_an_idle_connection_does_not_hold_up_the_answer(
    port: int,
    http: httpx.Client,
    httpx_mock: HTTPXMock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(signin, "REQUEST_TIMEOUT", 0.2)
    httpx_mock.add_response(url=TOKEN_URL, json=TOKENS)
    idle: list[socket.socket] = []
    browser = Browser(port, lambda state: [answer(state, code=CODE)])

    def preconnect_then_visit(url: str) -> bool:
        # Browsers open spare connections ahead and may never send on them.
        idle.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        return browser(url)

    run(port, http, "/callback", browser=preconnect_then_visit, timeout=10)

    assert browser.finished()[0][0] == 200
    with idle[0]:
        assert idle[0].recv(1) == b""  # the listener gave up on it and closed it


def test_a_blocking_browser_command_still_gets_its_answer(
    port: int, http: httpx.Client, httpx_mock: HTTPXMock, tmp_path: Path
) -> None:
    # A command such as a terminal browser returns only after the page loaded.
    script = tmp_path / "browser.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys, urllib.parse, urllib.request
            query = urllib.parse.urlsplit(sys.argv[1]).query
            state = urllib.parse.parse_qs(query)["state"][0]
            url = "http://127.0.0.1:{port}/?code={CODE}&state=" + state
            urllib.request.urlopen(url, timeout=5).read()
            """
        )
    )
    httpx_mock.add_response(url=TOKEN_URL, json=TOKENS)
    command = webbrowser.get(f"{sys.executable} {script} %s")

    result = run(port, http, browser=command.open, timeout=20)

    assert result.tokens.access_token == "the-access-token"


def test_no_answer_times_out_and_frees_the_port(port: int, http: httpx.Client) -> None:
    with pytest.raises(SignInTimeout, match=r"within 0\.5 seconds"):
        run(port, http, browser=None, timeout=0.5)

    assert_port_free(port)


def test_a_busy_port_is_named(port: int, http: httpx.Client) -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", port))
        other.listen()

        with pytest.raises(PortBusy) as caught:
            run(port, http, browser=None, timeout=1)

    assert f"Port {port} " in str(caught.value)
    assert "in use by another program" in str(caught.value)
    assert "APS_CALLBACK_URL" in str(caught.value)


def test_denied_consent_shows_why_and_frees_the_port(
    port: int, http: httpx.Client
) -> None:
    browser = Browser(port, lambda state: [answer(state, error="access_denied")])

    with pytest.raises(SignInRefused, match="choose Allow"):
        run(port, http, "/callback", browser=browser)

    status, page = browser.finished()[0]
    assert status == 400
    assert "Sign-in failed" in page
    assert "consent was denied" in page
    assert_port_free(port)


def test_a_refused_code_exchange_frees_the_port(
    port: int, http: httpx.Client, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(url=TOKEN_URL, status_code=400, json={"error": "x"})
    browser = Browser(port, lambda state: [answer(state, code=CODE)])

    with pytest.raises(AuthenticationError, match="token endpoint refused"):
        run(port, http, "/callback", browser=browser)

    assert_port_free(port)


def test_ctrl_c_while_waiting_frees_the_port(port: int, http: httpx.Client) -> None:
    main = threading.main_thread().ident
    assert main is not None

    def interrupt(url: str) -> None:
        signal.pthread_kill(main, signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        run(port, http, browser=interrupt, timeout=10)

    assert_port_free(port)


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not ipv6_loopback(), reason="this machine has no IPv6 loopback")
def test_localhost_is_answered_on_ipv6_too(
    port: int, http: httpx.Client, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(url=TOKEN_URL, json=TOKENS)
    pages: list[int] = []
    done = threading.Event()

    def browser(url: str) -> None:
        # Some browsers resolve localhost to ::1 first.
        state = parse_qs(urlsplit(url).query)["state"][0]
        connection = HTTPConnection("::1", port, timeout=5)
        connection.request("GET", answer(state, code=CODE))
        pages.append(connection.getresponse().status)
        connection.close()
        done.set()

    result = run(port, http, "/callback", browser=browser)

    assert result.tokens.access_token == "the-access-token"
    assert done.wait(5)
    assert pages == [200]


class TokenEndpoint(BaseHTTPRequestHandler):
    """A loopback token endpoint that grants every code it is sent."""

    forms: ClassVar[list[dict[str, list[str]]]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        self.forms.append(parse_qs(self.rfile.read(length).decode()))
        body = json.dumps(TOKENS).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def token_url() -> Iterator[str]:
    TokenEndpoint.forms.clear()
    server = HTTPServer(("127.0.0.1", 0), TokenEndpoint)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/token"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


SIGN_IN = """
import httpx
from aps.settings import Settings
from aps.signin import sign_in
from aps.tokens import TokenClient

settings = Settings.load()
with httpx.Client() as http:
    result = sign_in(settings, TokenClient(settings, http), http, timeout=20)
print(result.tokens.access_token)
"""


def test_the_browser_variable_chooses_the_browser(
    port: int, token_url: str, tmp_path: Path
) -> None:
    script = tmp_path / "browser.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys, urllib.parse, urllib.request
            query = urllib.parse.urlsplit(sys.argv[1]).query
            state = urllib.parse.parse_qs(query)["state"][0]
            url = "http://localhost:{port}/?code={CODE}&state=" + state
            urllib.request.urlopen(url, timeout=5).read()
            """
        )
    )
    environment = {
        **os.environ,
        "BROWSER": f"{sys.executable} {script} %s",
        "APS_CLIENT_ID": "app-id",
        "APS_CALLBACK_URL": f"http://localhost:{port}/",
        "APS_SCOPES": "data:read",
        "APS_TOKEN_URL": token_url,
    }

    done = subprocess.run(
        [sys.executable, "-c", SIGN_IN],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "the-access-token"
    assert TokenEndpoint.forms[0]["code"] == [CODE]
    assert "/authentication/v2/authorize?" in done.stderr  # the URL was announced
    assert CODE not in done.stderr
    assert TokenEndpoint.forms[0]["code_verifier"][0] not in done.stderr


def test_the_address_is_announced_on_stderr_by_default(
    port: int, http: httpx.Client, capsys: pytest.CaptureFixture[str]
) -> None:
    config = settings(port)

    with pytest.raises(SignInTimeout):
        sign_in(config, TokenClient(config, http), http, browser=None, timeout=0.2)

    out, err = capsys.readouterr()
    assert out == ""
    assert "Open this address in a browser" in err
    assert f"{BASE}/authentication/v2/authorize?" in err


def test_a_failing_browser_ends_the_sign_in_at_once(
    port: int, http: httpx.Client
) -> None:
    def broken(url: str) -> None:
        raise RuntimeError("no display")

    # Were the wait not woken, this would end in SignInTimeout a minute later.
    with pytest.raises(RuntimeError, match="no display"):
        run(port, http, browser=broken, timeout=60)

    assert_port_free(port)


class AuthorizeEndpoint(BaseHTTPRequestHandler):
    """An authorize endpoint that consents at once and redirects to the callback."""

    def do_GET(self) -> None:
        query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
        answer = urlencode({"code": CODE, "state": query["state"]})
        self.send_response(302)
        self.send_header("Location", f"{query['redirect_uri']}?{answer}")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.mark.browser
def test_a_real_browser_lands_on_the_finished_page(
    port: int, http: httpx.Client, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(url=TOKEN_URL, json=TOKENS)
    server = HTTPServer(("127.0.0.1", 0), AuthorizeEndpoint)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    shown: list[str] = []
    closed = threading.Event()

    def browser(url: str) -> None:
        # Playwright objects belong to the thread that made them: this one.
        try:
            with chromium() as launched:
                page = launched.new_page()
                page.goto(url)
                shown.append(page.text_content("body") or "")
        finally:
            closed.set()

    config = Settings(
        client_id="app-id",
        base_url=BASE,
        scopes=("data:read",),
        callback_url=f"http://localhost:{port}/callback",
        authorize_url=f"http://127.0.0.1:{server.server_address[1]}/authorize",
    )
    try:
        result = sign_in(
            config,
            TokenClient(config, http),
            http,
            announce=lambda text: None,
            browser=browser,
            timeout=60,
        )
    finally:
        server.shutdown()
        server.server_close()
        serving.join()

    assert result.tokens.access_token == "the-access-token"
    assert closed.wait(30)
    assert "Sign-in finished. You can close this window" in shown[0]
