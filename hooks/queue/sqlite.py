"""The job queue in an SQLite file: the embedded default.

Every write runs under ``BEGIN IMMEDIATE``, so one writer at a time holds the
lock and the others wait for it instead of failing. An idle job processor
learns of another process's commit by reading ``PRAGMA data_version``, which
changes whenever another connection commits, every few milliseconds: the read
touches no table, so waiting costs next to nothing.

Writers that contend for SQLite's lock are woken by its busy handler, which
sleeps in steps of a millisecond and more; with several workers that sleeping,
not the work, would set the pace. Where the OS has ``flock``, the queue's
writers first queue on a lock file beside the database, and the kernel hands
it to the next writer the moment the previous one is done.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: SQLite's own busy handler does the waiting.
    fcntl = None  # type: ignore[assignment]

from hooks.queue import Queue
from hooks.queue.tables import SCHEMA

# How often an idle job processor looks for another process's commit.
POLL_SECONDS = 0.004


class SQLiteQueue(Queue):
    now_sql = "((julianday('now') - 2440587.5) * 86400.0)"
    match_sql = "name GLOB ?"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._watcher: sqlite3.Connection | None = None
        self._seen: int | None = None
        self._writer = threading.local()
        self._descriptors: dict[int, threading.Thread] = {}
        super().__init__(*args, **kwargs)

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        if fcntl is None:
            with super()._transaction() as conn:
                yield conn
            return

        lock = self._lock_file()
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            with super()._transaction() as conn:
                yield conn
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)

    def _lock_file(self) -> int:
        # One descriptor per thread: flock excludes descriptors, not processes.
        descriptor: int | None = getattr(self._writer, "descriptor", None)
        if descriptor is None:
            path = self.db.path.with_name(self.db.path.name + "-writers")
            path.parent.mkdir(parents=True, exist_ok=True)  # A store's first use.
            descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            self._writer.descriptor = descriptor
            with self._lock:
                self._descriptors[descriptor] = threading.current_thread()
        return descriptor

    def _close_orphans(self) -> None:
        super()._close_orphans()
        with self._lock:
            orphans = [d for d, t in self._descriptors.items() if not t.is_alive()]
            for descriptor in orphans:
                del self._descriptors[descriptor]
        for descriptor in orphans:
            os.close(descriptor)

    def disconnect(self) -> None:
        descriptor: int | None = getattr(self._writer, "descriptor", None)
        if descriptor is not None:
            with self._lock:
                known = self._descriptors.pop(descriptor, None) is not None
            if known:
                os.close(descriptor)
        self._writer.descriptor = None
        super().disconnect()

    def create_tables(self) -> None:
        schema = SCHEMA.format(id="INTEGER PRIMARY KEY AUTOINCREMENT", real="REAL")
        try:
            with self._transaction() as conn:
                for statement in filter(str.strip, schema.split(";")):
                    conn.execute(statement)
        except sqlite3.DatabaseError as error:
            raise self.db.damaged(error) from None

    def wait(self, timeout: float, wake: threading.Event) -> None:
        deadline = time.monotonic() + timeout
        while not wake.is_set():
            version = self._data_version()
            if self._seen != version:
                self._seen = version
                return
            if time.monotonic() >= deadline:
                return
            wake.wait(POLL_SECONDS)

    def start_listening(self) -> None:
        self._seen = self._data_version()

    def _data_version(self) -> int:
        # One connection of its own: data_version ignores this connection's
        # own commits, and this one never writes.
        if self._watcher is None:
            self._watcher = self.db.connect()
        return int(self._watcher.execute("PRAGMA data_version").fetchone()[0])

    def close(self) -> None:
        if self._watcher is not None:
            self._watcher.close()
            self._watcher = None
        super().close()
        with self._lock:
            descriptors, self._descriptors = self._descriptors, {}
        for descriptor in descriptors:
            os.close(descriptor)
        self._writer = threading.local()
