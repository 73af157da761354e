"""Fixtures every test tree shares: an isolated home folder and PostgreSQL."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from aps.settings import ENVIRONMENT

PG_URL = os.environ.get("APSHOOKS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
UNDER_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(autouse=True)
def home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Each test gets its own APSHOOKS_HOME and none of the caller's settings."""
    folder = tmp_path_factory.mktemp("home")
    for variable in ENVIRONMENT.values():
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("APSHOOKS_HOME", str(folder))
    monkeypatch.chdir(folder)
    return folder


@pytest.fixture(autouse=True)
def _forget_connections() -> Iterator[None]:
    """No connection, cached session or open store outlives its test."""
    yield
    from aps import _connect

    _connect._current = None
    for conn in _connect._connections.values():
        conn.close()
    _connect._connections.clear()
    for store in _connect._stores.values():
        store.close()
    _connect._stores.clear()


def _pg_admin() -> object:
    try:
        import psycopg

        return psycopg.connect(PG_URL, autocommit=True, connect_timeout=5)
    except Exception as error:
        if UNDER_CI:
            pytest.fail(f"PostgreSQL is required under CI and not reachable: {error}")
        pytest.skip(f"PostgreSQL is not reachable: {error}")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL whose connections see a fresh, empty schema."""
    admin = _pg_admin()
    schema = f"t_{secrets.token_hex(6)}"
    admin.execute(f"CREATE SCHEMA {schema}")  # type: ignore[attr-defined]
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        admin.execute(f"DROP SCHEMA {schema} CASCADE")  # type: ignore[attr-defined]
        admin.close()  # type: ignore[attr-defined]


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, home: Path) -> str:
    """The store URL of each backend in turn, for conformance tests."""
    if request.param == "sqlite":
        return f"sqlite:///{home / 'store.db'}"
    return str(request.getfixturevalue("pg_url"))
