"""The browser sign-in: the OAuth 2.0 authorization-code flow with PKCE.

The user signs in on Autodesk's page in a browser; the answer comes back to a
small HTTP listener on the loopback callback URL (RFC 8252), or, on a machine
without a browser, as the redirected address the user pastes. The code is then
traded for tokens and the ID token, when there is one, is verified against the
server's published keys.

Nothing secret is ever logged: not the code, the PKCE verifier, the ``state``,
the ``nonce``, nor the authorize URL that carries some of them.
"""

from __future__ import annotations

import contextlib
import errno
import hmac
import html
import http.server
import ipaddress
import selectors
import socket
import socketserver
import sys
import threading
import time
import webbrowser
from collections.abc import Callable, Sequence
from typing import Any, cast
from urllib.parse import SplitResult, parse_qs, quote, urlencode, urlsplit

import attrs
import httpx
from authlib.common.security import generate_token
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    InvalidKeyIdError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import KeySet
from loguru import logger

from aps import retry
from aps.errors import (
    AuthenticationError,
    PortBusy,
    SettingsError,
    SignInRefused,
    SignInTimeout,
)
from aps.settings import Settings
from aps.tokens import TokenClient, Tokens

# An authorization code lives five minutes; waiting longer for it is pointless.
CODE_LIFETIME = 300.0
DEFAULT_TIMEOUT = 270.0

# How long the listener waits on one connection before dropping it, so that a
# browser holding an idle connection open cannot keep the answer from arriving.
REQUEST_TIMEOUT = 2.0

# Clock skew allowed when checking the ID token's expiry.
LEEWAY = 60

# A server's error_description longer than this is left out of messages.
_SHORT = 160


@attrs.frozen(repr=False)
class SignIn:
    """The outcome of a sign-in: the tokens and the verified ID token claims.

    ``claims`` is empty when ``openid`` was not among the scopes.
    """

    tokens: Tokens
    claims: dict[str, Any]

    def __repr__(self) -> str:
        return f"SignIn(tokens={self.tokens!r}, subject={self.claims.get('sub')!r})"


@attrs.frozen(repr=False)
class Attempt:
    """The one-time values of one sign-in. ``repr`` shows none of them."""

    state: str
    verifier: str
    nonce: str | None

    @classmethod
    def new(cls, scopes: Sequence[str]) -> Attempt:
        return cls(
            state=str(generate_token(32)),
            verifier=str(generate_token(64)),
            nonce=str(generate_token(32)) if "openid" in scopes else None,
        )

    @property
    def challenge(self) -> str:
        return str(create_s256_code_challenge(self.verifier))

    def __repr__(self) -> str:
        return "Attempt(...)"


class StateMismatch(AuthenticationError):
    """An answer that belongs to another sign-in: its ``state`` differs."""


def sign_in(
    settings: Settings,
    tokens: TokenClient,
    http: httpx.Client,
    *,
    browser: Callable[[str], object] | None = webbrowser.open,
    paste: Callable[[str], str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    prompt: str | None = None,
    announce: Callable[[str], object] | None = None,
) -> SignIn:
    """Sign the user in through a browser and return the tokens and ID claims.

    - ``browser`` shows the sign-in page (``webbrowser.open`` honours the
      ``BROWSER`` variable); ``None`` opens nothing and the URL is only
      announced.
    - ``paste``, for a machine without a browser, is given the URL and returns
      the address the browser was sent to afterwards. No listener is started
      and ``browser`` is not used.
    - ``timeout`` is how many seconds the listener waits, below five minutes.
    - ``prompt`` (``"login"`` or ``"create"``) is passed to the server.
    - ``announce`` tells the user the URL in browser mode; by default it is
      printed to stderr. In paste mode ``paste`` shows it.
    """
    if not 0 < timeout < CODE_LIFETIME:
        raise ValueError(
            f"The sign-in timeout must be between 0 and {CODE_LIFETIME:.0f} "
            f"seconds (the lifetime of an authorization code), not {timeout}."
        )
    tell = announce or _print_to_stderr
    attempt = Attempt.new(settings.scopes)
    url = authorize_url(settings, attempt, prompt)

    if paste is not None:
        code = _pasted_code(url, paste, attempt)
    else:
        code = _browser_code(settings, url, browser, attempt, timeout, tell)
    logger.info("The sign-in code came back; trading it for tokens.")

    result = tokens.exchange_code(
        code, attempt.verifier, settings.callback_url, settings.scopes
    )
    claims: dict[str, Any] = {}
    if result.id_token:
        claims = verify_id_token(result.id_token, settings, http, attempt.nonce)
    return SignIn(tokens=result, claims=claims)


def authorize_url(settings: Settings, attempt: Attempt, prompt: str | None) -> str:
    """The address of the server's sign-in page for ``attempt``."""
    query = {
        "response_type": "code",
        "client_id": settings.client_id or "",
        "redirect_uri": settings.callback_url,
        "scope": " ".join(settings.scopes),
        "state": attempt.state,
        "code_challenge": attempt.challenge,
        "code_challenge_method": "S256",
    }
    if attempt.nonce is not None:
        query["nonce"] = attempt.nonce
    if prompt:
        query["prompt"] = prompt

    endpoint = settings.authorization_endpoint
    joiner = "&" if "?" in endpoint else "?"
    return f"{endpoint}{joiner}{urlencode(query, quote_via=quote)}"


def code_from(query: str, state: str) -> str:
    """The authorization code in a callback's query string.

    Raises :class:`StateMismatch` when the answer is not for this sign-in, and
    :class:`SignInRefused` when the server answered with an error.
    """
    params = parse_qs(query, keep_blank_values=True)

    def first(name: str) -> str:
        values = params.get(name)
        return values[0] if values else ""

    if not hmac.compare_digest(first("state").encode(), state.encode()):
        raise StateMismatch(
            "The answer does not belong to this sign-in (its state differs). Run "
            "the command again and use the address shown after that sign-in."
        )
    if first("error"):
        raise _refusal(first("error"), first("error_description"))
    if not first("code"):
        raise AuthenticationError(
            "The answer from the sign-in holds neither a code nor an error. Check "
            "that APS_AUTHORIZE_URL points at an OAuth 2.0 authorize endpoint."
        )
    return first("code")


def _refusal(error: str, description: str) -> SignInRefused:
    if error == "access_denied":
        return SignInRefused(
            "Sign-in was refused: consent was denied in the browser. Run the "
            "command again and choose Allow."
        )
    detail = _printable(error)[:_SHORT]
    description = _printable(description)
    if description and len(description) <= _SHORT:
        detail = f"{detail}: {description}"
    return SignInRefused(
        f"Sign-in was refused by the server ({detail}). Check the app's callback "
        "URL and scopes at https://aps.autodesk.com/myapps, then run the command "
        "again."
    )


def _printable(text: str) -> str:
    return "".join(c for c in text if c.isprintable()).strip()


def _print_to_stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# Paste mode: the browser is on another machine.


def _pasted_code(url: str, paste: Callable[[str], str], attempt: Attempt) -> str:
    # ``paste`` shows the URL itself, with its own instructions, and reads the
    # answer; announcing the URL here as well would show it twice.
    logger.info("Sign-in started without a browser; waiting for the pasted answer.")
    pasted = paste(url).strip()
    query = urlsplit(pasted).query or pasted
    if "code=" not in query and "error=" not in query:
        raise AuthenticationError(
            "That is not the address the browser ended on: it has no code= or "
            "error= in it. Copy the whole address from the browser's address "
            "bar after signing in, then run 'apshooks login --no-browser' again."
        )
    return code_from(query, attempt.state)


# Browser mode: the answer comes to the loopback listener.


def _browser_code(
    settings: Settings,
    url: str,
    browser: Callable[[str], object] | None,
    attempt: Attempt,
    timeout: float,
    tell: Callable[[str], object],
) -> str:
    with _Listener(settings.callback_url, attempt.state) as listener:
        if browser is None:
            tell(
                "Open this address in a browser on this machine to sign in:\n\n"
                f"  {url}\n"
            )
        else:
            tell(
                "Continue the sign-in in your browser. If no browser window opened, "
                f"open this address:\n\n  {url}\n"
            )
            _open(browser, url, settings, listener)
        return listener.wait(timeout)


def _open(
    browser: Callable[[str], object],
    url: str,
    settings: Settings,
    listener: _Listener,
) -> None:
    # From a thread of its own: a browser command may return only when its window
    # closes, and the listener has to answer the browser meanwhile.
    host = urlsplit(settings.authorization_endpoint).netloc
    logger.info("Opening the browser for sign-in at {}.", host)
    thread = threading.Thread(
        target=_show,
        args=(browser, url, listener),
        name="apshooks-browser",
        daemon=True,
    )
    thread.start()


def _show(browser: Callable[[str], object], url: str, listener: _Listener) -> None:
    try:
        opened = browser(url)
    except BaseException as error:
        listener.fail(error)  # raised by wait(), in the caller's thread
        return
    if opened is False:
        logger.warning("No browser could be opened. Open the address shown instead.")


class _Listener:
    """HTTP servers on the loopback callback URL, waiting for one answer."""

    def __init__(self, callback_url: str, state: str) -> None:
        parts = urlsplit(callback_url)
        self._path = parts.path or "/"
        self._state = state
        self._outcome: str | BaseException | None = None
        self._servers = _bind(parts, callback_url, self)
        # fail() writes here to wake wait() from another thread.
        self._wake, self._waker = socket.socketpair()

    def __enter__(self) -> _Listener:
        return self

    def __exit__(self, *exc_info: object) -> None:
        for server in self._servers:
            server.server_close()
        self._wake.close()
        self._waker.close()

    def wait(self, timeout: float) -> str:
        """Serve requests until the answer came, or raise at the deadline."""
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(self._wake, selectors.EVENT_READ)
            for server in self._servers:
                selector.register(server, selectors.EVENT_READ)
            while self._outcome is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise _timed_out(timeout)
                for key, _ in selector.select(remaining):
                    # Once one request brought the answer, the others wait.
                    if isinstance(key.fileobj, _Server) and self._outcome is None:
                        key.fileobj.handle_request()

        if isinstance(self._outcome, BaseException):
            raise self._outcome
        return self._outcome

    def answer(self, target: str) -> tuple[int, str]:
        """The status and page for a request to ``target``; records the answer."""
        parts = urlsplit(target)
        if parts.path != self._path:
            return 404, _page("Not found", "This address is not part of the sign-in.")
        try:
            code = code_from(parts.query, self._state)
        except StateMismatch:
            return 400, _page(
                "Request ignored",
                "This answer does not belong to the sign-in in progress, so it was "
                "ignored. Finish the sign-in from the address apshooks showed.",
            )
        except AuthenticationError as error:
            self._outcome = error
            return 400, _page("Sign-in failed", str(error))
        self._outcome = code
        return 200, _page(
            "Signed in",
            "Sign-in finished. You can close this window and return to apshooks.",
        )

    def fail(self, error: BaseException) -> None:
        """End the wait with ``error``, unless it has ended; from any thread."""
        if self._outcome is None:
            self._outcome = error
        # Once closed, the wait is over anyway.
        with contextlib.suppress(OSError):
            self._waker.send(b"!")


def _timed_out(timeout: float) -> SignInTimeout:
    return SignInTimeout(
        f"No answer came back from the browser within {timeout:g} seconds, so the "
        "sign-in was stopped. Run the command again and finish signing in sooner, "
        "or use 'apshooks login --no-browser' on a machine without a browser."
    )


class _Server(socketserver.TCPServer):
    # On Windows this option would let another program take the port over.
    allow_reuse_address = sys.platform != "win32"
    # wait() calls handle_request() only once the socket is ready to accept.
    timeout = 0.0

    def __init__(
        self, family: socket.AddressFamily, address: str, port: int, listener: _Listener
    ) -> None:
        self.address_family = family
        self.listener = listener
        super().__init__((address, port), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A browser dropping its connection is normal; anything else is a fault
        # that must end the wait rather than be printed and forgotten.
        error = sys.exc_info()[1]
        if error is not None and not isinstance(error, OSError):
            self.listener.fail(error)


class _Handler(http.server.BaseHTTPRequestHandler):
    server_version = "apshooks"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(REQUEST_TIMEOUT)

    def do_GET(self) -> None:
        status, page = cast(_Server, self.server).listener.answer(self.path)
        body = page.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Referrer-Policy", "no-referrer")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Say nothing: the request line holds the authorization code."""


def _page(title: str, text: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>apshooks: {html.escape(title)}</title></head>"
        '<body style="font-family: sans-serif; margin: 3em">'
        f"<h1>{html.escape(title)}</h1><p>{html.escape(text)}</p></body></html>"
    )


def _bind(parts: SplitResult, callback_url: str, listener: _Listener) -> list[_Server]:
    if parts.scheme != "http":
        raise SettingsError(
            f"The callback URL {callback_url} must start with http:// to be "
            "answered on this machine. Set APS_CALLBACK_URL to a loopback address "
            "such as http://localhost:8080/, or sign in with --no-browser."
        )
    try:
        port = parts.port or 80
    except ValueError:
        raise SettingsError(
            f"The callback URL {callback_url} has no valid port. Fix APS_CALLBACK_URL."
        ) from None

    servers: list[_Server] = []
    try:
        for family, address, required in _addresses(parts.hostname or "", callback_url):
            server = _serve(family, address, port, listener, required, callback_url)
            if server is not None:
                servers.append(server)
    except BaseException:
        for server in servers:
            server.server_close()
        raise
    return servers


def _addresses(
    host: str, callback_url: str
) -> list[tuple[socket.AddressFamily, str, bool]]:
    """The loopback addresses to listen on, and whether each one is required."""
    if host.lower() == "localhost":
        # Browsers may try either; IPv6 is optional since not every machine has it.
        return [(socket.AF_INET, "127.0.0.1", True), (socket.AF_INET6, "::1", False)]
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if ip is None or not ip.is_loopback:
        raise SettingsError(
            f"The callback URL {callback_url} is not a loopback address, so the "
            "answer could not be received here. Set APS_CALLBACK_URL to "
            "http://localhost:<port>/ (registered for the app), or sign in with "
            "--no-browser."
        )
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    return [(family, str(ip), True)]


def _serve(
    family: socket.AddressFamily,
    address: str,
    port: int,
    listener: _Listener,
    required: bool,
    callback_url: str,
) -> _Server | None:
    try:
        return _Server(family, address, port, listener)
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise PortBusy(
                f"Port {port} (of the callback URL {callback_url}) is in use by "
                "another program. Close it, or set APS_CALLBACK_URL to a free port "
                "registered as a callback URL of the app."
            ) from None
        if not required:
            return None
        raise PortBusy(
            f"Port {port} (of the callback URL {callback_url}) cannot be opened "
            f"({error.strerror}). Set APS_CALLBACK_URL to a port above 1024 "
            "registered as a callback URL of the app."
        ) from None


# The ID token.


def verify_id_token(
    id_token: str, settings: Settings, http: httpx.Client, nonce: str | None
) -> dict[str, Any]:
    """The claims of ``id_token`` once its signature and claims check out."""
    keys = _fetch_keys(settings, http)
    expected: dict[str, Any] = {
        "aud": {"essential": True, "value": settings.client_id},
        "exp": {"essential": True},
    }
    if nonce is not None:
        expected["nonce"] = {"essential": True, "value": nonce}
    if settings.id_token_issuer:
        expected["iss"] = {"essential": True, "value": settings.id_token_issuer}
    try:
        token = jwt.decode(id_token, keys, algorithms=["RS256"])
        jwt.JWTClaimsRegistry(leeway=LEEWAY, **expected).validate(token.claims)
    except (JoseError, ValueError) as error:
        raise _unverified(settings, _reason(error)) from None
    return dict(token.claims)


def _fetch_keys(settings: Settings, http: httpx.Client) -> KeySet:
    url = settings.keys_endpoint
    response = retry.send(lambda: http.get(url), "Fetching the ID token keys")
    if response.status_code >= 400:
        status = response.status_code
        raise _unverified(settings, f"fetching the keys answered HTTP {status}")
    try:
        return KeySet.import_key_set(response.json())
    except (JoseError, ValueError, TypeError, KeyError):
        raise _unverified(settings, "the keys are not a valid JWKS") from None


def _reason(error: Exception) -> str:
    if isinstance(error, BadSignatureError):
        return "its signature does not match the published keys"
    if isinstance(error, InvalidKeyIdError):
        return "it was signed with a key the published keys do not hold"
    if isinstance(error, ExpiredTokenError):
        return "it has expired"
    if isinstance(error, MissingClaimError | InvalidClaimError):
        return f"its {error.claim!r} claim is missing or wrong"
    return "it is not a valid RS256 JSON Web Token"


def _unverified(settings: Settings, reason: str) -> AuthenticationError:
    return AuthenticationError(
        f"The ID token could not be verified: {reason}. Check that APS_KEYS_URL "
        f"({settings.keys_endpoint}) is the key set of the server you signed in "
        "to, and that this machine's clock is right."
    )
