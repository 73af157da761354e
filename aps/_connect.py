"""``aps.connect()``: the stored session when there is one, a sign-in otherwise."""

from __future__ import annotations

import atexit
import threading
import time
import webbrowser
from collections.abc import Callable
from typing import Any, Literal, NoReturn, overload

import attrs
import httpx
from loguru import logger

from aps import impersonation, logs, retry
from aps.client import Connection
from aps.errors import APSError, AuthenticationError, ConsentRequired
from aps.settings import Settings
from aps.store import CONSENT_LIFETIME, Session, SessionStore
from aps.tokens import TokenClient, client_id_of

Browser = Callable[[str], object]

_lock = threading.Lock()
_stores: dict[str, SessionStore] = {}
# One connection per store, server, app and user in a process: a new sign-in
# renews the one that code may already hold, rather than leaving it stale.
_connections: dict[tuple[str, str, str, str], Connection] = {}

# The workstation's connection is the process's; a job's belongs to its scope,
# so two jobs running side by side never see each other's.
_current: Connection | None = None


@attrs.frozen
class ConnectionFailure:
    """What ``connect(raise_on_error=False)`` returns when it fails: falsy."""

    error: APSError

    def __bool__(self) -> bool:
        return False

    def __getattr__(self, name: str) -> NoReturn:
        # Using the failed connection raises why it failed; introspection
        # (hasattr, copy, pickle) still sees an ordinary missing attribute.
        if name.startswith("_"):
            raise AttributeError(name)
        raise self.error


@overload
def connect(
    *,
    user: str | None = ...,
    client_id: str | None = ...,
    client_secret: str | None = ...,
    callback_url: str | None = ...,
    scopes: str | list[str] | None = ...,
    settings: Settings | None = ...,
    browser: Browser | None = ...,
    sign_in: bool = ...,
    raise_on_error: Literal[True] = ...,
) -> Connection: ...


@overload
def connect(
    *,
    user: str | None = ...,
    client_id: str | None = ...,
    client_secret: str | None = ...,
    callback_url: str | None = ...,
    scopes: str | list[str] | None = ...,
    settings: Settings | None = ...,
    browser: Browser | None = ...,
    sign_in: bool = ...,
    raise_on_error: Literal[False],
) -> Connection | ConnectionFailure: ...


def connect(
    *,
    user: str | None = None,
    client_id: str | None = None,
    client_secret: str | None = None,
    callback_url: str | None = None,
    scopes: str | list[str] | None = None,
    settings: Settings | None = None,
    browser: Browser | None = webbrowser.open,
    sign_in: bool = True,
    raise_on_error: bool = True,
) -> Connection | ConnectionFailure:
    """Connect to APS as the signed-in Autodesk ID, or as ``user`` in a job.

    The first call on a machine opens the browser for sign-in and consent;
    later calls, in any process, reuse the stored session without a request.
    ``user=`` impersonates the submitter of the job being processed and works
    only inside that job. ``sign_in=False`` never opens the browser: without a
    stored session it fails with :class:`aps.ConsentRequired`. Failures raise
    :class:`aps.APSError`, or with ``raise_on_error=False`` return a falsy
    result whose ``error`` says why.
    """
    try:
        settings = settings or Settings.load(
            client_id=client_id,
            client_secret=client_secret,
            callback_url=callback_url,
            scopes=scopes,
        )
        logs.configure("processor" if impersonation.active() else "client", settings)
        if user is not None:
            conn = _impersonate(settings, user)
        else:
            conn = _signed_in(settings, browser if sign_in else None, sign_in)
    except APSError as error:
        if raise_on_error:
            raise
        return ConnectionFailure(error)

    _make_current(conn)
    return conn


def current() -> Connection | None:
    """The connection the last ``connect()`` here returned (``aps.connection``)."""
    scope = impersonation.current()
    if scope is not None:
        conn: Connection | None = scope.connection
        return conn
    return _current


def sign_in(
    settings: Settings,
    browser: Browser | None = webbrowser.open,
    paste: Callable[[str], str] | None = None,
    announce: Callable[[str], object] | None = None,
) -> Connection:
    """Sign in through the browser (or a pasted URL) and store the new session.

    ``announce`` tells the user the sign-in URL (stderr by default).
    """
    from aps.signin import sign_in as run_sign_in

    store = store_for(settings)
    client_id = client_id_of(settings)
    http = _http()
    try:
        result = run_sign_in(
            settings, TokenClient(settings, http), http,
            browser=browser, paste=paste, announce=announce,
        )
        access_token = result.tokens.access_token
        autodesk_id, name = _identity(settings, http, access_token, result.claims)
    except BaseException:
        http.close()
        raise

    session = store.put(autodesk_id, client_id, result.tokens, name)
    store.set_signed_in(client_id, autodesk_id)
    logger.info("{} signed in and granted consent.", autodesk_id)
    return _remember(settings, store, session, http)


def sign_out(settings: Settings) -> str | None:
    """Revoke the signed-in user's refresh token and forget the session."""
    store = store_for(settings)
    client_id = client_id_of(settings)
    autodesk_id = store.signed_in(client_id)
    if autodesk_id is None:
        return None

    session = store.get(autodesk_id, client_id)
    failure: APSError | None = None
    if session and session.refresh_token:
        with _http() as http:
            try:
                TokenClient(settings, http).revoke(session.refresh_token)
            except APSError as error:
                failure = error

    # Forgotten either way: signing out must not depend on reaching APS.
    store.forget(autodesk_id, client_id)
    _drop(_key(settings, client_id, autodesk_id))
    if failure is not None:
        logger.warning("{} signed out here, but revoking failed.", autodesk_id)
        raise AuthenticationError(
            f"Signed out {autodesk_id} on this machine, but APS could not be "
            f"told ({failure}) The session may stay valid for up to 15 days: "
            "remove the app under your Autodesk account's connected apps to "
            "end it now."
        )
    logger.info("{} signed out; the session was revoked and forgotten.", autodesk_id)
    return autodesk_id


def stored_connection(settings: Settings) -> Connection | None:
    """The signed-in user's connection, or None: never opens a browser."""
    store = store_for(settings)
    autodesk_id = store.signed_in(client_id_of(settings))
    return None if autodesk_id is None else _stored(settings, store, autodesk_id)


# Finding the session.


def _signed_in(
    settings: Settings, browser: Browser | None, interactive: bool
) -> Connection:
    scope = impersonation.current()
    if scope is not None and scope.submitter is None:
        impersonation.check("")  # Says the job has no recorded Autodesk ID.
    if scope is not None:
        raise AuthenticationError(
            "A job cannot sign in interactively. Connect as the job's submitter "
            "with aps.connect(user=job.autodesk_id)."
        )
    if impersonation.processor_running():
        raise AuthenticationError(
            "aps.connect() without user= is refused while a job processor runs "
            "in this process: jobs connect as their submitter, with "
            "aps.connect(user=job.autodesk_id). A thread that a job starts keeps "
            "the job's scope only when started through "
            "contextvars.copy_context().run."
        )
    conn = stored_connection(settings)
    if conn is not None:
        return conn
    if not interactive:
        raise ConsentRequired(
            "Nobody is signed in on this machine, or the consent expired. Run "
            "'apshooks login' (or aps.connect()) to sign in first."
        )
    return sign_in(settings, browser)


def _impersonate(settings: Settings, user: str) -> Connection:
    impersonation.check(user)
    store = store_for(settings)
    conn = _stored(settings, store, user)
    if conn is None:
        logger.warning("{} has no valid consent for job processing.", user)
        raise ConsentRequired.for_job(user)
    return conn


def _stored(settings: Settings, store: SessionStore, user: str) -> Connection | None:
    """The user's stored session as a connection, without any request.

    The store is read each time (a local read, no request), so a session that
    another process signed out or lost is noticed here too.
    """
    client_id = client_id_of(settings)
    key = _key(settings, client_id, user)
    session = store.get(user, client_id)
    if session is None or not _consent_alive(session):
        if session is not None and session.refresh_token:
            logger.info("The consent of {} expired after 15 idle days.", user)
        _drop(key)
        return None

    cached = _connections.get(key)
    if cached is not None:
        return cached
    return _remember(settings, store, session, _http())


def _consent_alive(session: Session) -> bool:
    alive = session.consent_expires_at(CONSENT_LIFETIME) > time.time()
    return session.refresh_token is not None and alive


def _remember(
    settings: Settings, store: SessionStore, session: Session, http: httpx.Client
) -> Connection:
    key = _key(settings, session.client_id, session.autodesk_id)
    with _lock:
        held = _connections.get(key)
        if held is None:
            held = _connections[key] = Connection(settings, store, session, http)
            return held
    held.adopt(session)
    http.close()  # The connection held already has a client of its own.
    return held


def _key(settings: Settings, client_id: str, user: str) -> tuple[str, str, str, str]:
    return (settings.store_url, settings.base_url, client_id, user)


def _drop(key: tuple[str, str, str, str]) -> None:
    """Forget a signed-out or expired user's connection; it works no more."""
    with _lock:
        conn = _connections.pop(key, None)
    if conn is not None:
        conn.close()


def _make_current(conn: Connection) -> None:
    global _current
    scope = impersonation.current()
    if scope is not None:
        scope.connection = conn
    else:
        _current = conn


# Pieces.


def store_for(settings: Settings) -> SessionStore:
    """The process's store for ``settings``, opened once."""
    url = settings.store_url
    with _lock:
        store = _stores.get(url)
        if store is None:
            store = _stores[url] = SessionStore.open(settings)
    return store


@atexit.register
def _close_stores() -> None:
    # Closed before the interpreter tears down, so no connection is left for
    # the garbage collector to complain about.
    with _lock:
        stores = list(_stores.values())
    for store in stores:
        store.close()


def _http() -> httpx.Client:
    return httpx.Client(timeout=httpx.Timeout(30.0, connect=10.0))


def _identity(
    settings: Settings, http: httpx.Client, access_token: str, claims: dict[str, Any]
) -> tuple[str, str | None]:
    """The Autodesk ID (the e-mail address) and name of who signed in.

    The verified ID token says it when it carries the e-mail address; else the
    userinfo endpoint does, and must speak of the same subject.
    """
    info: dict[str, Any] = dict(claims)
    if not info.get("email"):
        profile = _userinfo(settings, http, access_token)
        if claims.get("sub") and profile.get("sub") not in (None, claims["sub"]):
            raise AuthenticationError(
                "The userinfo endpoint describes another user than the ID token. "
                "Check that APS_USERINFO_URL belongs to the same server."
            )
        info.update(profile)

    if info.get("email") and info.get("email_verified") is not False:
        return str(info["email"]), info.get("name")
    raise AuthenticationError(
        "Signed in, but the server gave no verified e-mail address for the user, "
        "which apshooks uses as the Autodesk ID. Ask for the openid and "
        "user-profile:read scopes, and check APS_USERINFO_URL."
    )


def _userinfo(settings: Settings, http: httpx.Client, access_token: str) -> Any:
    url = settings.userinfo_endpoint
    response = retry.send(
        lambda: http.get(url, headers={"Authorization": f"Bearer {access_token}"}),
        "Reading who signed in",
    )
    try:
        profile = response.json() if response.is_success else None
    except ValueError:
        profile = None
    if not isinstance(profile, dict):
        raise AuthenticationError(
            f"Signed in, but the userinfo endpoint answered HTTP "
            f"{response.status_code} without a profile. Check APS_USERINFO_URL "
            "and try again."
        )
    return profile
