"""Connections to the store's database: an SQLite file or a PostgreSQL server.

Both the session store and the job queue open their connections here, so both
behave the same way on locks, transactions and damaged files. Connections are in
autocommit mode; :func:`transaction` opens an explicit one. On SQLite it is
``BEGIN IMMEDIATE``, which takes the write lock up front so that two writers
queue behind each other instead of failing with "database is locked".
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import unquote, urlsplit

import attrs

from aps.errors import StoreError

Dialect = Literal["sqlite", "postgresql"]

# How long an SQLite writer waits for another one before giving up. Long enough
# that a busy job processor never shows a user "database is locked".
SQLITE_BUSY_MS = 60_000
_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_CORRUPT, _SQLITE_NOTADB = 5, 6, 11, 26


class Cursor(Protocol):
    rowcount: int

    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


class Connection(Protocol):
    def execute(self, query: Any, params: Sequence[Any] = ..., /) -> Any: ...
    def close(self) -> None: ...


@attrs.frozen
class Database:
    """Where the store lives. ``url`` is ``sqlite:///path`` or ``postgresql://``."""

    url: str = attrs.field(repr=False)  # It may hold a password.

    def __repr__(self) -> str:
        return f"Database({self.display!r})"

    @property
    def dialect(self) -> Dialect:
        scheme = urlsplit(self.url).scheme.split("+")[0]
        if scheme == "sqlite":
            return "sqlite"
        if scheme in ("postgresql", "postgres"):
            return "postgresql"
        raise StoreError(
            f"The store URL scheme {scheme!r} is not supported. Use a file "
            "path, sqlite:////absolute/path.db (four slashes; three for a path "
            "relative to the current folder) or postgresql://user@host/database.",
            lasting=True,
        )

    @property
    def path(self) -> Path:
        """The SQLite file: ``sqlite:///relative.db`` or ``sqlite:////absolute.db``."""
        return Path(unquote(urlsplit(self.url).path)[1:])

    @property
    def display(self) -> str:
        """The URL without any password, for messages and logs."""
        if self.dialect == "sqlite":
            return str(self.path)
        parts = urlsplit(self.url)
        host = parts.hostname or "localhost"
        user = f"{parts.username}@" if parts.username else ""
        port = f":{parts.port}" if parts.port else ""
        return f"postgresql://{user}{host}{port}{parts.path}"

    def sql(self, query: str) -> str:
        """``query`` with ``?`` placeholders written for this database."""
        return query.replace("?", "%s") if self.dialect == "postgresql" else query

    def connect(self) -> Any:
        """A new connection in autocommit mode. The caller closes it."""
        if self.dialect == "sqlite":
            return self._connect_sqlite()
        return self._connect_postgresql()

    def _connect_sqlite(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            # Only its owner may read a new store; SQLite gives its journal
            # files the same permissions.
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=SQLITE_BUSY_MS / 1000,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_MS}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.Error as error:
            raise self.failure(error) from None
        return conn

    def _connect_postgresql(self) -> Any:
        try:
            import psycopg
        except ImportError:
            raise StoreError(
                "A PostgreSQL store needs psycopg. Install it with "
                "pip install 'apshooks[postgresql]'.",
                lasting=True,
            ) from None
        try:
            return psycopg.connect(self.url, autocommit=True)
        except psycopg.OperationalError as error:
            reason = str(error).strip().splitlines()[0]
            raise StoreError(
                f"Cannot reach the PostgreSQL store {self.display}: {reason}. "
                "Check that the server runs and that APSHOOKS_STORE is right."
            ) from None

    def damaged(self, error: Exception) -> StoreError:
        """The error to raise when the database file cannot be read."""
        return StoreError(
            f"The store {self.display} cannot be read ({error}). The file was "
            "left as it is: move it aside (it keeps what it holds for recovery) "
            "and run the command again to start a new store.",
            lasting=True,
        )

    def failure(self, error: Exception) -> StoreError:
        """The StoreError that says what a database error means for the user."""
        code = getattr(error, "sqlite_errorcode", 0) & 0xFF
        if code in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
            return self.damaged(error)
        if code in (_SQLITE_BUSY, _SQLITE_LOCKED):
            return StoreError(
                f"The store {self.display} stayed busy for "
                f"{SQLITE_BUSY_MS // 1000} s: another program holds it. Nothing "
                "was lost; try again, and check for a hung apshooks process."
            )
        reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
        return StoreError(
            f"The store {self.display} failed: {reason or type(error).__name__}. "
            "Nothing was changed; check the database and try again."
        )

    @contextmanager
    def guard(self) -> Iterator[None]:
        """Turn the database driver's errors into a StoreError."""
        try:
            yield
        except sqlite3.Error as error:
            raise self.failure(error) from None
        except Exception as error:
            if type(error).__module__.startswith("psycopg"):
                raise self.failure(error) from None
            raise


class Pool:
    """Connections to one database, each lent to one caller at a time.

    Connections are not tied to threads, so threads that come and go never
    leave one open behind them: a caller borrows a connection for a statement
    or a transaction and gives it back. A few idle ones are kept for reuse.
    ``setup`` runs once on each new connection.
    """

    def __init__(
        self, db: Database, keep: int = 4, setup: Callable[[Any], None] | None = None
    ) -> None:
        self.db = db
        self._keep = keep
        self._setup = setup
        self._idle: list[Any] = []
        self._lock = threading.Lock()

    @contextmanager
    def connection(self) -> Iterator[Any]:
        conn = self._borrow()
        try:
            yield conn
        except BaseException:
            self._give_back(conn, healthy=not connection_broken(conn))
            raise
        self._give_back(conn, healthy=True)

    def _borrow(self) -> Any:
        while True:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                conn = self.db.connect()
                if self._setup:
                    self._setup(conn)
                return conn
            if not connection_broken(conn):
                return conn
            conn.close()  # The server dropped it while it sat idle.

    def close(self) -> None:
        """Close the idle connections; borrowed ones close when given back."""
        with self._lock:
            idle, self._idle, self._keep = self._idle, [], 0
        for conn in idle:
            conn.close()

    def _give_back(self, conn: Any, *, healthy: bool) -> None:
        with self._lock:
            if healthy and len(self._idle) < self._keep:
                self._idle.append(conn)
                return
        conn.close()


def connection_broken(conn: Any) -> bool:
    # psycopg marks a connection the server dropped; sqlite3 has no such state.
    return bool(getattr(conn, "broken", False) or getattr(conn, "closed", False))


@contextmanager
def transaction(db: Database, conn: Any) -> Iterator[Any]:
    """Run the block in one write transaction on ``conn`` and commit it."""
    if db.dialect == "postgresql":
        with conn.transaction():
            yield conn
        return

    with db.guard():
        conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


# Any constant will do: it only keeps two processes from creating the same
# tables at the same moment, which PostgreSQL reports as a duplicate type.
_SCHEMA_LOCK = 0x41505348


def create_tables(db: Database, conn: Any, statements: Sequence[str]) -> None:
    """Run ``CREATE ... IF NOT EXISTS`` statements safely from many processes."""
    with transaction(db, conn):
        if db.dialect == "postgresql":
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
        for statement in statements:
            conn.execute(statement)
