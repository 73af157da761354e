"""The session store on SQLite and PostgreSQL: sealed tokens, rotation, damage."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from aps.crypto import Cipher
from aps.database import Database
from aps.errors import ConsentRequired, StoreError
from aps.store import SessionStore
from aps.tokens import GrantRefused, Tokens

KEY = Cipher.generate()


def _tokens(n: int, lifetime: float = 3600) -> Tokens:
    return Tokens(f"access-{n}", f"refresh-{n}", time.time() + lifetime, ("data:read",))


_opened: list[SessionStore] = []


def _store(url: str, key: str = KEY) -> SessionStore:
    store = SessionStore(Database(url), Cipher.from_secret(key))
    _opened.append(store)
    return store


@pytest.fixture(autouse=True)
def _close_stores() -> Iterator[None]:
    yield
    while _opened:
        _opened.pop().close()


def test_a_session_round_trips_and_no_token_is_stored_in_plain_text(
    store_url: str,
) -> None:
    store = _store(store_url)
    store.put("jane@example.com", "app", _tokens(1), "Jane Doe")
    store.set_signed_in("app", "jane@example.com")

    again = _store(store_url).get("jane@example.com", "app")
    assert again is not None
    assert (again.access_token, again.refresh_token) == ("access-1", "refresh-1")
    assert again.name == "Jane Doe"
    assert again.scopes == ("data:read",)
    assert _store(store_url).signed_in("app") == "jane@example.com"

    conn = store.db.connect()
    raw = conn.execute("SELECT refresh_token, access_token FROM sessions").fetchone()
    conn.close()
    assert "refresh-1" not in raw[0]
    assert "access-1" not in raw[1]


def test_another_key_cannot_read_the_tokens(store_url: str) -> None:
    _store(store_url).put("jane@example.com", "app", _tokens(1), None)
    with pytest.raises(StoreError, match="APSHOOKS_SECRET_KEY"):
        _store(store_url, key="a different passphrase").get("jane@example.com", "app")


def test_rotation_adopts_what_a_peer_already_rotated(store_url: str) -> None:
    mine, peer = _store(store_url), _store(store_url)
    seen = mine.put("jane@example.com", "app", _tokens(1, lifetime=-1), None)
    peer_view = peer.get("jane@example.com", "app")
    assert peer_view is not None
    peer.rotate(peer_view, lambda rt: _tokens(2))

    calls: list[str] = []
    adopted = mine.rotate(seen, lambda rt: calls.append(rt) or _tokens(3))
    assert calls == []
    assert adopted.access_token == "access-2"
    assert adopted.refresh_token == "refresh-2"


def test_concurrent_rotations_spend_the_refresh_token_once(store_url: str) -> None:
    seen = _store(store_url).put("jane@example.com", "app", _tokens(0, -1), None)
    spent: list[str] = []
    lock = threading.Lock()

    def refresh(rt: str) -> Tokens:
        with lock:
            spent.append(rt)
            return _tokens(len(spent))

    results = []

    def worker() -> None:
        results.append(_store(store_url).rotate(seen, refresh).access_token)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert spent == ["refresh-0"]
    assert results == ["access-1"] * 6


def test_a_refused_grant_marks_the_session_lost(store_url: str) -> None:
    store = _store(store_url)
    seen = store.put("jane@example.com", "app", _tokens(1, -1), None)

    def refuse(rt: str) -> Tokens:
        raise GrantRefused("refused")

    with pytest.raises(ConsentRequired, match="Sign in again"):
        store.rotate(seen, refuse)
    lost = store.get("jane@example.com", "app")
    assert lost is not None
    assert lost.refresh_token is None
    assert [s.lost for s in store.sessions()] == [True]


def test_a_damaged_file_is_reported_and_left_as_it_was(home: Path) -> None:
    path = home / "broken.db"
    path.write_bytes(b"this is not a database" * 100)
    before = path.read_bytes()
    with pytest.raises(StoreError, match="move it aside"):
        _store(f"sqlite:///{path}")
    assert path.read_bytes() == before


def test_key_file_is_created_private_and_reused(home: Path) -> None:
    key_file = home / "k.key"
    first = Cipher.from_key_file(key_file)
    assert key_file.stat().st_mode & 0o777 == 0o600
    sealed = first.seal("token", "ctx")
    assert Cipher.from_key_file(key_file).open(sealed, "ctx") == "token"
    with pytest.raises(StoreError):
        Cipher.from_key_file(key_file).open(sealed, "another row")


def test_a_busy_store_says_busy_and_keeps_its_sessions(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("aps.database.SQLITE_BUSY_MS", 100)
    url = f"sqlite:///{home / 'busy.db'}"
    store = _store(url)
    store.put("jane@example.com", "app", _tokens(1), None)
    holder = Database(url).connect()
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreError, match="busy") as caught:
            _store(url).put("jane@example.com", "app", _tokens(2), None)
        assert "move it aside" not in str(caught.value)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    kept = store.get("jane@example.com", "app")
    assert kept is not None
    assert kept.refresh_token == "refresh-1"


def test_concurrent_first_sign_ins_of_one_user_all_land(store_url: str) -> None:
    errors: list[BaseException] = []

    def sign_in(n: int) -> None:
        try:
            _store(store_url).put("jane@example.com", "app", _tokens(n), None)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=sign_in, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    final = _store(store_url).get("jane@example.com", "app")
    assert final is not None
    assert final.version == 6


def test_a_damaged_store_gets_no_key_file_and_a_new_one_is_private(home: Path) -> None:
    from aps.settings import Settings

    broken = home / "broken.db"
    broken.write_bytes(b"garbage" * 200)
    with pytest.raises(StoreError):
        SessionStore.open(Settings(store=str(broken)))
    assert not broken.with_suffix(".key").exists()

    fresh = SessionStore.open(Settings(store=str(home / "fresh.db")))
    fresh.close()
    assert (home / "fresh.db").stat().st_mode & 0o777 == 0o600
