"""Running the sandbox: :class:`Sandbox` serves its app from a background thread."""

from __future__ import annotations

import base64
import contextlib
import secrets
import socket
import threading
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from flask import Flask
from loguru import logger
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from aps.client import is_loopback
from aps.errors import AuthenticationError, SettingsError
from aps.sandbox.app import (
    AUTH,
    INTERNAL,
    TOKEN_PATH,
    RateLimitsOption,
    Served,
    create_app,
)
from aps.sandbox.data import World, load
from aps.sandbox.grants import Lifetimes
from aps.settings import DEFAULT_SCOPES, ENVIRONMENT, Settings

_ENDPOINT_SETTINGS = (
    "base_url",
    "authorize_url",
    "token_url",
    "userinfo_url",
    "revoke_url",
    "keys_url",
    "issuer",
)


class _Connections:
    """The open client connections of one server, so stop() can close them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()

    def add(self, connection: socket.socket) -> None:
        with self._lock:
            self._open.add(connection)

    def remove(self, connection: socket.socket) -> None:
        with self._lock:
            self._open.discard(connection)

    def close_all(self) -> None:
        # Without this a client's keep-alive connection would go on being
        # answered by a sandbox that has stopped.
        with self._lock:
            for connection in self._open:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)


def _handler(connections: _Connections) -> type[WSGIRequestHandler]:
    class Handler(WSGIRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            connections.add(self.connection)

        def finish(self) -> None:
            connections.remove(self.connection)
            super().finish()

        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            pass  # Request lines carry query strings; the sandbox logs transitions.

    return Handler


class Sandbox:
    """A running sandbox. Start one with :meth:`start`; stop it with :meth:`stop`."""

    def __init__(
        self,
        world: World,
        app: Flask,
        server: BaseWSGIServer,
        connections: _Connections,
    ) -> None:
        self.world = world
        self._app = app
        self._server = server
        self._connections = connections
        self._served: Served = app.extensions["requests"]
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="apshooks-sandbox",
            daemon=True,
        )

    @classmethod
    def start(
        cls,
        data: str | Path | None = None,
        auto_consent: str | None = None,
        lifetimes: Lifetimes | None = None,
        rate_limits: RateLimitsOption = None,
        callback_urls: Iterable[str] = (),
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        allow_remote: bool = False,
    ) -> Sandbox:
        """Serve a sandbox in a background thread; return once it is listening.

        ``data`` is a TOML data file (the default one when ``None``).
        ``callback_urls`` are registered for every app, for clients that
        listen on a free port.
        """
        _check_host(host, allow_remote)
        world = load(data).with_callbacks(tuple(callback_urls))
        app = create_app(
            world,
            lifetimes=lifetimes or Lifetimes(),
            auto_consent=auto_consent,
            rate_limits=rate_limits,
        )
        connections = _Connections()
        try:
            server = make_server(
                host, port, app, threaded=True, request_handler=_handler(connections)
            )
        except OSError as error:
            raise SettingsError(
                f"The sandbox cannot listen on {host}:{port} ({error.strerror}). "
                "Choose another port, or 0 for any free one."
            ) from None
        sandbox = cls(world, app, server, connections)
        sandbox._thread.start()
        logger.info("The APS sandbox serves {}.", sandbox.url)
        return sandbox

    @property
    def url(self) -> str:
        host = self._server.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self._server.port}"

    @property
    def client_id(self) -> str:
        return self.world.default_client_id

    @property
    def requests(self) -> Counter[tuple[str, str]]:
        """How often each ``(method, path)`` was served, as of now (a copy)."""
        return self._served.snapshot()

    @property
    def token_requests(self) -> int:
        return self.requests[("POST", TOKEN_PATH)]

    def settings(self, **overrides: Any) -> Settings:
        """Settings that point the SDK at this sandbox; ``overrides`` win."""
        values: dict[str, Any] = {
            "base_url": self.url,
            "authorize_url": f"{self.url}{AUTH}/authorize",
            "token_url": f"{self.url}{TOKEN_PATH}",
            "userinfo_url": f"{self.url}/userinfo",
            "revoke_url": f"{self.url}{AUTH}/revoke",
            "keys_url": f"{self.url}{AUTH}/keys",
            "issuer": self.url,
            "client_id": self.client_id,
        }
        values.update(overrides)
        return Settings(**values)

    def environment(self) -> dict[str, str]:
        """The same settings as ``APS_*`` environment variables."""
        chosen = self.settings()
        names = (*_ENDPOINT_SETTINGS, "client_id")
        return {ENVIRONMENT[name]: str(getattr(chosen, name)) for name in names}

    @staticmethod
    def browser(url: str) -> None:
        """Stand in for a person's browser, for unattended runs with auto-consent.

        Pass it as ``aps.connect(browser=Sandbox.browser)``: it follows the
        sign-in address, and the sandbox's redirect to the callback, from a
        thread, as a browser would while the caller waits for the answer.
        """

        def visit() -> None:
            with httpx.Client(follow_redirects=True, timeout=30) as http:
                http.get(url)

        threading.Thread(target=visit, daemon=True).start()

    def consent(
        self,
        user: str,
        client_id: str | None = None,
        scopes: str | Iterable[str] | None = None,
    ) -> dict[str, Any]:
        """Sign ``user`` in to an app without a page; return the token response.

        It goes through the same authorize and token endpoints a browser
        would, so the tokens behave exactly like those of a real sign-in.
        """
        self.world.user(user)  # An unknown user is refused with the known ones.
        app = self.world.apps.get(client_id or self.client_id)
        if app is None or not app.callback_urls:
            raise SettingsError(
                f"The sandbox has no app {client_id!r} with a callback URL. "
                f"Its apps are: {', '.join(self.world.apps)}."
            )
        verifier = secrets.token_urlsafe(48)
        query = {
            "response_type": "code",
            "client_id": app.client_id,
            "redirect_uri": app.callback_urls[0],
            "scope": _scope(scopes),
            "state": secrets.token_urlsafe(8),
            "nonce": secrets.token_urlsafe(8),
            "code_challenge": create_s256_code_challenge(verifier),
            "code_challenge_method": "S256",
        }
        client = self._app.test_client()
        options: dict[str, Any] = {
            "base_url": self.url,
            "environ_base": {INTERNAL: True},
        }
        answer = client.post(
            f"{AUTH}/authorize",
            query_string=query,
            data={"user": user, "decision": "allow"},
            **options,
        )
        code = parse_qs(urlsplit(answer.headers.get("Location", "")).query).get("code")
        if not code:
            raise AuthenticationError(
                f"The sandbox refused to sign {user} in to {app.name}. Check the "
                "user's e-mail address and the scopes."
            )
        form = {
            "grant_type": "authorization_code",
            "code": code[0],
            "redirect_uri": app.callback_urls[0],
            "code_verifier": verifier,
        }
        headers = {}
        if app.public:
            form["client_id"] = app.client_id
        else:
            pair = f"{app.client_id}:{app.client_secret}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        tokens = client.post(TOKEN_PATH, data=form, headers=headers, **options)
        body: dict[str, Any] = tokens.get_json()
        return body

    def stop(self) -> None:
        """Stop serving and release the port. Stopping twice does nothing."""
        if not self._thread.is_alive():
            return
        self._server.shutdown()
        self._connections.close_all()
        self._server.server_close()
        self._thread.join()
        logger.info("The APS sandbox at {} stopped.", self.url)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()


def _scope(scopes: str | Iterable[str] | None) -> str:
    if scopes is None:
        return " ".join(DEFAULT_SCOPES)
    if isinstance(scopes, str):
        return " ".join(scopes.replace(",", " ").split())
    return " ".join(scopes)


def free_callback_url(path: str = "/callback") -> str:
    """A loopback callback URL on a port that is free now, to register for tests."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}{path}"


def _check_host(host: str, allow_remote: bool) -> None:
    if is_loopback(host) or allow_remote:
        return
    raise SettingsError(
        f"The sandbox listens on loopback only, and {host} is not a loopback "
        "address. Anyone who can reach it can sign in as any sandbox user; "
        "pass --allow-remote (allow_remote=True in Python) if you mean it."
    )
