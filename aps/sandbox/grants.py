"""What the sandbox remembers between requests: codes, consents and tokens.

All of it lives in memory behind one lock, so a restart forgets every consent,
as if every user had revoked it. A *consent* is one sign-in of a user to an
app; every token it yields belongs to it, and revoking it kills them all.
"""

from __future__ import annotations

import math
import secrets
import threading
import time
from typing import Any

import attrs
from loguru import logger

from aps.sandbox.data import App, User


@attrs.frozen
class Lifetimes:
    """How long things live, in seconds (floats allowed, for fast tests).

    The defaults are APS's: a code lives 5 minutes, an access token an hour
    and a refresh token 15 days from the refresh that issued it.
    """

    code: float = 300.0
    access: float = 3600.0
    refresh: float = 15 * 86400.0

    @property
    def expires_in(self) -> int:
        # APS answers 3599 for a one-hour token: the whole seconds left once
        # the response reaches the client.
        return max(1, math.ceil(self.access) - 1)


@attrs.define
class Consent:
    id: str
    user: User
    app: App
    scope: str
    revoked: bool = False


@attrs.define
class Code:
    """An authorization code, shaped as authlib's grant expects it."""

    code: str
    consent: Consent
    redirect_uri: str
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    expires_at: float
    auth_time: int

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.consent.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> None:
        return None

    def get_amr(self) -> None:
        return None


@attrs.define
class Token:
    """One token response: an access token and its refresh token."""

    access_token: str
    refresh_token: str | None
    consent: Consent
    scope: str
    issued_at: float
    access_expires_at: float
    refresh_expires_at: float
    access_revoked: bool = False
    refresh_spent: bool = False

    # authlib's token interface, for the resource protector and introspection.

    def check_client(self, client: Any) -> bool:
        return bool(client.get_client_id() == self.consent.app.client_id)

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return int(self.access_expires_at - self.issued_at)

    def is_expired(self) -> bool:
        return time.time() >= self.access_expires_at

    def is_revoked(self) -> bool:
        return self.access_revoked or self.consent.revoked

    def get_user(self) -> User:
        return self.consent.user

    def get_client(self) -> App:
        return self.consent.app

    def refresh_usable(self) -> bool:
        return (
            not self.refresh_spent
            and not self.consent.revoked
            and time.time() < self.refresh_expires_at
        )


class Grants:
    """The thread-safe record of every code, consent and token issued."""

    def __init__(self, lifetimes: Lifetimes) -> None:
        self.lifetimes = lifetimes
        self._lock = threading.Lock()
        self._codes: dict[str, Code] = {}
        self._access: dict[str, Token] = {}
        self._refresh: dict[str, Token] = {}

    def add_code(
        self,
        value: str,
        *,
        user: User,
        app: App,
        scope: str,
        redirect_uri: str,
        payload: Any,
    ) -> None:
        now = time.time()
        code = Code(
            code=value,
            consent=Consent(secrets.token_hex(8), user, app, scope),
            redirect_uri=redirect_uri,
            nonce=payload.get("nonce"),
            code_challenge=payload.get("code_challenge"),
            code_challenge_method=payload.get("code_challenge_method"),
            expires_at=now + self.lifetimes.code,
            auth_time=int(now),
        )
        with self._lock:
            self._codes[code.code] = code

    def take_code(self, value: str, client_id: str) -> Code | None:
        """The code, unless unknown, expired or issued to another app."""
        with self._lock:
            code = self._codes.get(value)
        if code is None or code.consent.app.client_id != client_id:
            return None
        if time.time() >= code.expires_at:
            return None
        return code

    def spend_code(self, code: Code) -> None:
        with self._lock:
            self._codes.pop(code.code, None)

    def add_token(self, response: dict[str, Any], consent: Consent) -> None:
        now = time.time()
        token = Token(
            access_token=response["access_token"],
            refresh_token=response.get("refresh_token"),
            consent=consent,
            scope=response.get("scope") or consent.scope,
            issued_at=now,
            access_expires_at=now + self.lifetimes.access,
            refresh_expires_at=now + self.lifetimes.refresh,
        )
        with self._lock:
            self._access[token.access_token] = token
            if token.refresh_token:
                self._refresh[token.refresh_token] = token

    def access(self, value: str) -> Token | None:
        with self._lock:
            return self._access.get(value)

    def refresh(self, value: str) -> Token | None:
        with self._lock:
            return self._refresh.get(value)

    def spend_refresh(self, value: str) -> Token | None:
        """Use a refresh token once; a second use revokes its whole consent.

        Checking and spending under one lock means that of two clients racing
        with the same refresh token exactly one wins, and the loser's reuse
        ends the session for both, as APS does.
        """
        with self._lock:
            token = self._refresh.get(value)
            if token is None:
                return None
            if token.refresh_spent:
                token.consent.revoked = True
                reused = token
            elif not token.refresh_usable():
                return None
            else:
                token.refresh_spent = True
                return token
        logger.warning(
            "A spent refresh token of {} for {} was used again; the sandbox "
            "revoked that consent and every token it issued.",
            reused.consent.user.email,
            reused.consent.app.name,
        )
        return None

    def revoke_access(self, token: Token) -> None:
        with self._lock:
            token.access_revoked = True

    def revoke_consent(self, consent: Consent) -> None:
        with self._lock:
            consent.revoked = True
