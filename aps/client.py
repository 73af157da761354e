"""A connection to APS as one user: fresh headers, hubs and request helpers."""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
from loguru import logger

from aps import retry
from aps.errors import ConsentRequired, RequestError
from aps.hubs import Hubs
from aps.settings import Settings
from aps.store import Session, SessionStore
from aps.tokens import TokenClient, Tokens


class Connection:
    """The user's session at work. Get one from :func:`aps.connect`.

    Reading :attr:`headers` always gives a valid bearer token: it is refreshed
    shortly before it expires, once per expiry for every thread and process
    that shares the store.
    """

    def __init__(
        self,
        settings: Settings,
        store: SessionStore,
        session: Session,
        http: httpx.Client,
    ) -> None:
        self.settings = settings
        self._store = store
        self._session = session
        self._http = http
        self._tokens = TokenClient(settings, http)
        self._lock = threading.Lock()
        self._hubs: Hubs | None = None
        self._base = settings.base_url.rstrip("/") + "/"
        self._hosts = frozenset(
            urlsplit(url).netloc
            for url in (settings.base_url, settings.userinfo_endpoint)
        )

    error: None = None  # Mirrors ConnectionFailure, for connect(raise_on_error=False).

    def __bool__(self) -> bool:
        return True

    def __repr__(self) -> str:
        return f"<Connection {self.user!r} to {self.settings.base_url}>"

    @property
    def user(self) -> str:
        """The Autodesk ID this connection acts as."""
        return self._session.autodesk_id

    @property
    def name(self) -> str | None:
        return self._session.name

    @property
    def session(self) -> Session:
        return self._session

    @property
    def headers(self) -> dict[str, str]:
        """``{"Authorization": "Bearer ..."}``, valid whenever it is read."""
        return {"Authorization": f"Bearer {self._access_token()}"}

    @property
    def hubs(self) -> Hubs:
        """The user's hubs, read on first use; failed regions in ``hubs.errors``."""
        if self._hubs is None:
            response = self.get("/project/v1/hubs")
            self._hubs = Hubs.from_json(_body(response, "Reading the hubs"))
        return self._hubs

    # Requests.

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """Send an authenticated request to APS and return its answer.

        ``url`` is a path under the API base URL or an absolute URL on an APS
        host; the bearer token is never sent anywhere else. Throttled and failed
        answers are retried; after a 401 the token is refreshed once and the
        request sent again. Other keyword arguments go to ``httpx``.
        """
        if self._http.is_closed:
            raise ConsentRequired(
                f"The connection of {self.user} was closed: the user signed out "
                "or the consent expired. Call aps.connect() for a new one."
            )
        target = self._resolve(url)
        extra = kwargs.pop("headers", None) or {}
        what = f"{method.upper()} {urlsplit(target).path}"
        sent = ""

        def send_once() -> httpx.Response:
            nonlocal sent
            sent = self._access_token()
            headers = {**extra, "Authorization": f"Bearer {sent}"}
            return self._http.request(method, target, headers=headers, **kwargs)

        started = time.perf_counter()
        response = retry.send(send_once, what)
        if response.status_code == 401:
            self._access_token(refused=sent)
            response = retry.send(send_once, what)
        logger.debug(
            "{} answered {} in {:.0f} ms.",
            what, response.status_code, (time.perf_counter() - started) * 1000,
        )
        return response

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("PUT", url, **kwargs)

    def patch(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("PATCH", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", url, **kwargs)

    def paginate(
        self, url: str, params: Mapping[str, Any] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every item of a JSON:API list, following ``links.next`` to the end."""
        next_url: str | None = url
        query: Mapping[str, Any] | None = params
        while next_url:
            response = self.get(next_url, params=query)
            body = _body(response, f"Reading {urlsplit(next_url).path}")
            yield from body.get("data") or []
            next_url = _next_link(body)
            query = None  # The next link carries its own query.

    def close(self) -> None:
        """End the connection: later requests say the session is gone."""
        self._http.close()

    def adopt(self, session: Session) -> None:
        """Carry on with ``session``, the same user's newer sign-in."""
        with self._lock:
            self._session = session
            self._hubs = None

    # Tokens.

    def _access_token(self, *, refused: str | None = None) -> str:
        """A valid access token; a new one if the server ``refused`` this one."""
        session = self._session
        if session.access_token != refused and session.fresh():
            return _token(session)

        with self._lock:
            # Another thread may have refreshed while this one waited.
            current = self._session
            if current.access_token != refused and current.fresh():
                return _token(current)
            self._session = self._store.rotate(current, self._refresh, refused=refused)
            return _token(self._session)

    def _refresh(self, refresh_token: str) -> Tokens:
        return self._tokens.refresh(refresh_token, self._session.scopes)

    def _resolve(self, url: str) -> str:
        target = urljoin(self._base, url.lstrip("/")) if "://" not in url else url
        parts = urlsplit(target)
        if parts.netloc not in self._hosts:
            raise RequestError(
                f"Refusing to send the APS bearer token to {parts.netloc!r}: it "
                f"goes only to {', '.join(sorted(self._hosts))}. Use httpx "
                "directly for other hosts."
            )
        if parts.scheme != "https" and not is_loopback(parts.hostname or ""):
            raise RequestError(
                f"Refusing to send the APS bearer token over plain HTTP to "
                f"{parts.netloc!r}. Use an https:// base URL."
            )
        return target


def _token(session: Session) -> str:
    assert session.access_token is not None  # A rotated session always has one.
    return session.access_token


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine: ``localhost`` or a loopback address."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _body(response: httpx.Response, what: str) -> dict[str, Any]:
    if response.is_success:
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            return body
        raise RequestError(f"{what} answered something that is not JSON:API.")
    raise RequestError(
        f"{what} failed with HTTP {response.status_code}: {_reason(response)}",
        status=response.status_code,
    )


def _reason(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase
    if isinstance(body, dict):
        for key in ("developerMessage", "detail", "title", "error_description"):
            if body.get(key):
                return str(body[key])
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return str(errors[0].get("detail") or errors[0].get("title"))
    return response.reason_phrase


def _next_link(body: Mapping[str, Any]) -> str | None:
    link = (body.get("links") or {}).get("next")
    if isinstance(link, Mapping):
        link = link.get("href")
    return str(link) if link else None
