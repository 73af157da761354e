"""The session store: each user's session, shared by every process that opens it.

A session is what one sign-in leaves behind: the refresh token, the current
access token, the scopes, and when consent was given and last renewed. Refresh
tokens are single use, so rotating one is the delicate step: :meth:`rotate`
does it under a row lock (PostgreSQL) or the write lock (SQLite), re-reads the
row first in case a peer already rotated, and commits the new refresh token
before anyone uses the new access token.
"""

from __future__ import annotations

import getpass
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import attrs
from loguru import logger

from aps.crypto import Cipher
from aps.database import Database, Pool, create_tables, transaction
from aps.errors import ConsentRequired, StoreError
from aps.settings import Settings
from aps.tokens import GrantRefused, Tokens

CONSENT_LIFETIME = 15 * 86400.0
REFRESH_MARGIN = 300.0

_SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS sessions (
        autodesk_id TEXT NOT NULL,
        client_id TEXT NOT NULL,
        name TEXT,
        scopes TEXT NOT NULL,
        refresh_token TEXT,
        access_token TEXT,
        expires_at DOUBLE PRECISION NOT NULL,
        consented_at DOUBLE PRECISION NOT NULL,
        renewed_at DOUBLE PRECISION NOT NULL,
        version INTEGER NOT NULL,
        PRIMARY KEY (autodesk_id, client_id)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS signed_in (
        machine TEXT NOT NULL,
        client_id TEXT NOT NULL,
        autodesk_id TEXT NOT NULL,
        PRIMARY KEY (machine, client_id)
    )
    """,
)
_COLUMNS = (
    "autodesk_id, client_id, name, scopes, refresh_token, access_token, "
    "expires_at, consented_at, renewed_at, version"
)
_THIS = " WHERE autodesk_id = ? AND client_id = ?"
_SELECT = f"SELECT {_COLUMNS} FROM sessions{_THIS}"
_MINE = " WHERE machine = ? AND client_id = ?"
# A sign-in replaces whatever was there; the version moves on so that every
# process holding the old session notices.
_UPSERT = (
    f"INSERT INTO sessions ({_COLUMNS}) VALUES ({', '.join('?' * 10)}) "
    "ON CONFLICT (autodesk_id, client_id) DO UPDATE SET "
    + ", ".join(
        f"{column} = excluded.{column}"
        for column in _COLUMNS.split(", ")[2:-1]
    )
    + ", version = sessions.version + 1 RETURNING version"
)


@attrs.frozen(repr=False)
class Session:
    """One user's session for one app. ``repr`` shows no token."""

    autodesk_id: str
    client_id: str
    name: str | None
    scopes: tuple[str, ...]
    refresh_token: str | None
    access_token: str | None
    expires_at: float
    consented_at: float
    renewed_at: float
    version: int

    def __repr__(self) -> str:
        return (
            f"Session({self.autodesk_id!r}, client_id={self.client_id!r}, "
            f"version={self.version})"
        )

    def fresh(self) -> bool:
        """Whether the access token is good for a while yet.

        It is renewed a little before it expires: five minutes for APS's hour,
        a tenth of its lifetime for the short ones test servers hand out.
        """
        lifetime = self.expires_at - self.renewed_at
        return self.valid(min(REFRESH_MARGIN, lifetime / 10))

    def valid(self, margin: float = 0.0) -> bool:
        """Whether the access token stays valid for ``margin`` more seconds."""
        return self.access_token is not None and self.expires_at - margin > time.time()

    def consent_expires_at(self, lifetime: float = CONSENT_LIFETIME) -> float:
        return self.renewed_at + lifetime


@attrs.frozen
class SessionInfo:
    """What ``apshooks sessions`` shows of a session: no token at all."""

    autodesk_id: str
    client_id: str
    name: str | None
    consented_at: float
    renewed_at: float
    lost: bool

    def days_left(self, lifetime: float = CONSENT_LIFETIME) -> float:
        return max(0.0, (self.renewed_at + lifetime - time.time()) / 86400)


def machine() -> str:
    """Who "the signed-in user on this machine" belongs to: host and OS user."""
    return f"{socket.gethostname()}/{getpass.getuser()}"


class SessionStore:
    """Sessions in an SQLite file or a PostgreSQL database, tokens sealed."""

    def __init__(self, db: Database, cipher: Cipher) -> None:
        self.db = db
        self._cipher = cipher
        self._pool = Pool(db, setup=_durable if db.dialect == "sqlite" else None)
        self._create()

    @classmethod
    def open(cls, settings: Settings) -> SessionStore:
        """The store the settings name, with the key they name."""
        db = Database(settings.store_url)
        if settings.secret_key:
            return cls(db, Cipher.from_secret(settings.secret_key))
        if db.dialect == "postgresql":
            raise StoreError(
                "A PostgreSQL store is shared by several machines, so they must "
                "share its key too: set APSHOOKS_SECRET_KEY to the same value on "
                "each (make one with: python -c \"from aps.crypto import Cipher; "
                "print(Cipher.generate())\")."
            )
        db.connect().close()  # A damaged file is reported before a key is made.
        return cls(db, Cipher.from_key_file(db.path.with_suffix(".key")))

    # Reading and writing single sessions.

    def get(self, autodesk_id: str, client_id: str) -> Session | None:
        row = self._one(_SELECT, (autodesk_id, client_id))
        return self._session(row) if row else None

    def put(
        self, autodesk_id: str, client_id: str, tokens: Tokens, name: str | None
    ) -> Session:
        """Store a new session after a sign-in: consent is given now."""
        now = time.time()
        session = Session(
            autodesk_id, client_id, name, tokens.scopes, tokens.refresh_token,
            tokens.access_token, tokens.expires_at, now, now, 1,
        )
        with self._transaction() as conn:
            (version,) = self._run(conn, _UPSERT, self._row(session)).fetchone()
        return attrs.evolve(session, version=int(version))

    def forget(self, autodesk_id: str, client_id: str) -> None:
        with self._transaction() as conn:
            self._run(conn, "DELETE FROM sessions" + _THIS, (autodesk_id, client_id))
            self._run(conn, "DELETE FROM signed_in" + _THIS, (autodesk_id, client_id))

    def sessions(self) -> list[SessionInfo]:
        rows = self._all(
            "SELECT autodesk_id, client_id, name, consented_at, renewed_at, "
            "refresh_token IS NULL FROM sessions ORDER BY autodesk_id, client_id"
        )
        return [SessionInfo(r[0], r[1], r[2], r[3], r[4], bool(r[5])) for r in rows]

    # Who is signed in on this machine.

    def signed_in(self, client_id: str) -> str | None:
        query = "SELECT autodesk_id FROM signed_in" + _MINE
        row = self._one(query, (machine(), client_id))
        return str(row[0]) if row else None

    def set_signed_in(self, client_id: str, autodesk_id: str) -> None:
        with self._transaction() as conn:
            self._run(conn, "DELETE FROM signed_in" + _MINE, (machine(), client_id))
            self._run(
                conn,
                "INSERT INTO signed_in (machine, client_id, autodesk_id) "
                "VALUES (?, ?, ?)",
                (machine(), client_id, autodesk_id),
            )

    # Rotating the refresh token.

    def rotate(
        self,
        seen: Session,
        refresh: Callable[[str], Tokens],
        *,
        refused: str | None = None,
    ) -> Session:
        """A session with a fresh access token, refreshing only when nobody did.

        ``seen`` is the session the caller holds; ``refused`` the access token
        the server just answered 401 to, if any. Under the lock the row is read
        again: when its access token is fresh and is not the refused one (a peer
        may have rotated meanwhile), that row is adopted and no request is
        made. Otherwise ``refresh`` trades the refresh token and the new pair is
        committed before this method returns.
        """
        try:
            with self._transaction() as conn:
                current = self._read(conn, seen.autodesk_id, seen.client_id, lock=True)
                current = self._signed_in_still(current, seen)
                if current.access_token != refused and current.fresh():
                    return current

                assert current.refresh_token is not None
                tokens = refresh(current.refresh_token)
                rotated = attrs.evolve(
                    current,
                    scopes=tokens.scopes or current.scopes,
                    refresh_token=tokens.refresh_token or current.refresh_token,
                    access_token=tokens.access_token,
                    expires_at=tokens.expires_at,
                    renewed_at=time.time(),
                    version=current.version + 1,
                )
                self._update(conn, rotated)
        except GrantRefused:
            return self._after_refusal(seen)

        logger.info("The access token of {} was refreshed.", seen.autodesk_id)
        return rotated

    def _signed_in_still(self, current: Session | None, seen: Session) -> Session:
        if current is None or current.refresh_token is None:
            raise ConsentRequired(
                f"The session of {seen.autodesk_id} was signed out or lost. "
                "Sign in again with 'apshooks login'."
            )
        return current

    def _after_refusal(self, seen: Session) -> Session:
        # A peer that does not share our lock (another app, an older copy) may
        # have rotated the token just before us: look once more before giving up.
        current = self.get(seen.autodesk_id, seen.client_id)
        if current and current.version != seen.version and current.valid():
            return current

        with self._transaction() as conn:
            self._run(
                conn,
                "UPDATE sessions SET refresh_token = NULL, access_token = NULL"
                + _THIS + " AND version = ?",
                (seen.autodesk_id, seen.client_id, current.version if current else 0),
            )
        logger.warning(
            "The session of {} was refused by the server and is lost.",
            seen.autodesk_id,
        )
        raise ConsentRequired(
            f"The session of {seen.autodesk_id} is no longer accepted by the "
            "server (it expired or was revoked). Sign in again with "
            "'apshooks login' to grant consent."
        )

    # Rows and SQL.

    def _create(self) -> None:
        with self.db.guard(), self._pool.connection() as conn:
            create_tables(self.db, conn, _SCHEMA)

    def _read(
        self, conn: Any, autodesk_id: str, client_id: str, *, lock: bool
    ) -> Session | None:
        query = _SELECT
        if lock and self.db.dialect == "postgresql":
            query += " FOR UPDATE"
        row = self._run(conn, query, (autodesk_id, client_id)).fetchone()
        return self._session(row) if row else None

    def _update(self, conn: Any, session: Session) -> None:
        row = dict(zip(_COLUMNS.split(", "), self._row(session), strict=True))
        changed = ("scopes", "refresh_token", "access_token", "expires_at",
                   "renewed_at", "version")
        self._run(
            conn,
            "UPDATE sessions SET " + ", ".join(f"{c} = ?" for c in changed) + _THIS,
            (*(row[c] for c in changed), session.autodesk_id, session.client_id),
        )

    def _run(self, conn: Any, query: str, params: tuple[Any, ...]) -> Any:
        return conn.execute(self.db.sql(query), params)

    def _row(self, s: Session) -> tuple[Any, ...]:
        return (
            s.autodesk_id, s.client_id, s.name, " ".join(s.scopes),
            self._seal(s.refresh_token, s, "refresh"),
            self._seal(s.access_token, s, "access"),
            s.expires_at, s.consented_at, s.renewed_at, s.version,
        )

    def _session(self, row: Any) -> Session:
        autodesk_id, client_id = row[0], row[1]
        context = f"{autodesk_id}\n{client_id}"
        return Session(
            autodesk_id, client_id, row[2], tuple(row[3].split()),
            self._open(row[4], f"{context}\nrefresh"),
            self._open(row[5], f"{context}\naccess"),
            float(row[6]), float(row[7]), float(row[8]), int(row[9]),
        )

    def _seal(self, token: str | None, s: Session, field: str) -> str | None:
        if token is None:
            return None
        return self._cipher.seal(token, f"{s.autodesk_id}\n{s.client_id}\n{field}")

    def _open(self, sealed: str | None, context: str) -> str | None:
        return None if sealed is None else self._cipher.open(sealed, context)

    def close(self) -> None:
        """Close the store's database connections."""
        self._pool.close()

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        with (
            self.db.guard(),
            self._pool.connection() as conn,
            transaction(self.db, conn),
        ):
            yield conn

    def _one(self, query: str, params: tuple[Any, ...]) -> Any:
        with self.db.guard(), self._pool.connection() as conn:
            return conn.execute(self.db.sql(query), params).fetchone()

    def _all(self, query: str) -> list[Any]:
        with self.db.guard(), self._pool.connection() as conn:
            return list(conn.execute(self.db.sql(query)).fetchall())


def _durable(conn: Any) -> None:
    # A rotation that a power cut undid would leave a spent refresh token behind
    # and lose the session, so the session store pays for a full sync; it
    # writes about once an hour.
    conn.execute("PRAGMA synchronous = FULL")
