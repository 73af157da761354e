"""The HTTP layer of a connection, against pytest-httpx: tokens, hosts, pages, hubs."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pytest_httpx import HTTPXMock

from aps.client import Connection
from aps.crypto import Cipher
from aps.database import Database
from aps.errors import RequestError
from aps.hubs import HubKind
from aps.settings import Settings
from aps.store import SessionStore
from aps.tokens import Tokens

API = "https://developer.api.autodesk.com"
TOKEN_URL = f"{API}/authentication/v2/token"


@pytest.fixture
def store(home: Path) -> Iterator[SessionStore]:
    store = SessionStore(
        Database(f"sqlite:///{home / 's.db'}"), Cipher.from_secret("k")
    )
    yield store
    store.close()


def _connect(store: SessionStore, lifetime: float = 3600) -> Connection:
    tokens = Tokens("at-1", "rt-1", time.time() + lifetime, ("data:read",))
    session = store.put("jane@example.com", "desk", tokens, "Jane")
    return Connection(Settings(client_id="desk"), store, session, httpx.Client())


def _refreshed(httpx_mock: HTTPXMock, n: int) -> None:
    httpx_mock.add_response(
        url=TOKEN_URL,
        method="POST",
        json={
            "access_token": f"at-{n}",
            "refresh_token": f"rt-{n}",
            "expires_in": 3599,
        },
    )


def test_headers_carry_the_stored_token_without_any_request(
    store: SessionStore, httpx_mock: HTTPXMock
) -> None:
    conn = _connect(store)
    assert conn.headers == {"Authorization": "Bearer at-1"}
    assert httpx_mock.get_requests() == []


def test_a_token_is_refreshed_five_minutes_before_it_expires_and_stored_first(
    store: SessionStore, httpx_mock: HTTPXMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = _connect(store, lifetime=3600)
    now = time.time()
    monkeypatch.setattr("aps.store.time.time", lambda: now + 3290)
    assert conn.headers == {"Authorization": "Bearer at-1"}
    assert httpx_mock.get_requests() == []

    monkeypatch.setattr("aps.store.time.time", lambda: now + 3310)
    _refreshed(httpx_mock, 2)

    assert conn.headers == {"Authorization": "Bearer at-2"}
    stored = store.get("jane@example.com", "desk")
    assert stored is not None
    assert stored.refresh_token == "rt-2"


def test_a_401_refreshes_once_and_sends_again(
    store: SessionStore, httpx_mock: HTTPXMock
) -> None:
    conn = _connect(store)
    hubs_url = f"{API}/project/v1/hubs"
    httpx_mock.add_response(
        url=hubs_url, status_code=401, match_headers={"Authorization": "Bearer at-1"}
    )
    _refreshed(httpx_mock, 2)
    httpx_mock.add_response(
        url=hubs_url, json={"data": []}, match_headers={"Authorization": "Bearer at-2"}
    )

    assert conn.get("/project/v1/hubs").status_code == 200
    assert len(httpx_mock.get_requests(url=TOKEN_URL)) == 1


def test_the_bearer_token_goes_only_to_aps_hosts(
    store: SessionStore, httpx_mock: HTTPXMock
) -> None:
    conn = _connect(store)
    with pytest.raises(RequestError, match="Refusing to send"):
        conn.get("https://evil.example/steal")
    assert httpx_mock.get_requests() == []


def test_paginate_follows_links_next_to_the_end(
    store: SessionStore, httpx_mock: HTTPXMock
) -> None:
    conn = _connect(store)
    first = f"{API}/project/v1/hubs/b.1/projects?page%5Blimit%5D=2"
    second = f"{API}/project/v1/hubs/b.1/projects?page%5Bnumber%5D=1&page%5Blimit%5D=2"
    httpx_mock.add_response(
        url=first,
        json={
            "data": [{"id": "p1"}, {"id": "p2"}],
            "links": {"next": {"href": second}},
        },
    )
    httpx_mock.add_response(url=second, json={"data": [{"id": "p3"}], "links": {}})

    items = conn.paginate("/project/v1/hubs/b.1/projects", params={"page[limit]": 2})
    assert [item["id"] for item in items] == ["p1", "p2", "p3"]


def test_a_failed_page_says_what_apis_said(
    store: SessionStore, httpx_mock: HTTPXMock
) -> None:
    conn = _connect(store)
    httpx_mock.add_response(status_code=403, json={"developerMessage": "No access."})
    with pytest.raises(RequestError, match="HTTP 403: No access") as caught:
        list(conn.paginate("/project/v1/hubs/b.1/projects"))
    assert caught.value.status == 403


def test_hubs_are_read_once_with_their_region_errors(
    store: SessionStore, httpx_mock: HTTPXMock
) -> None:
    conn = _connect(store)
    httpx_mock.add_response(
        url=f"{API}/project/v1/hubs",
        json={
            "data": [
                {
                    "type": "hubs",
                    "id": "a.p1",
                    "attributes": {
                        "name": "Jane's Hub",
                        "region": "US",
                        "extension": {"type": "hubs:autodesk.a360:PersonalHub"},
                    },
                },
                {
                    "type": "hubs",
                    "id": "b.acc",
                    "attributes": {
                        "name": "build_JohnsCompany",
                        "region": "US",
                        "extension": {"type": "hubs:autodesk.bim360:Account"},
                    },
                },
            ],
            "meta": {
                "warnings": [
                    {
                        "Id": None,
                        "HttpStatusCode": "403",
                        "ErrorCode": "BIM360DM_ERROR",
                        "Title": "Unable to get hubs from BIM360DM EMEA.",
                        "Detail": "You don't have permission to access this API",
                        "AboutLink": None,
                        "Source": [],
                        "meta": [],
                    }
                ]
            },
        },
    )

    assert [hub.name for hub in conn.hubs] == ["Jane's Hub", "build_JohnsCompany"]
    assert conn.hubs["b.acc"].kind is HubKind.ACC
    assert conn.hubs["Jane's Hub"].kind is HubKind.PERSONAL
    (error,) = conn.hubs.errors
    assert (error.status, error.code) == (403, "BIM360DM_ERROR")
    assert "EMEA" in str(error.title)
    with pytest.raises(KeyError, match="Did you mean 'build_JohnsCompany'"):
        conn.hubs["build_JohnCompany"]
    assert len(httpx_mock.get_requests()) == 1


def test_many_requests_refused_together_refresh_once(
    store: SessionStore, httpx_mock: HTTPXMock
) -> None:
    conn = _connect(store)
    barrier = threading.Barrier(8)

    def hubs(request: httpx.Request) -> httpx.Response:
        if request.headers["Authorization"] == "Bearer at-1":
            barrier.wait(5)  # every thread holds a refused token at once
            return httpx.Response(401)
        return httpx.Response(200, json={"data": []})

    httpx_mock.add_callback(hubs, url=f"{API}/project/v1/hubs", is_reusable=True)
    _refreshed(httpx_mock, 2)
    statuses: list[int] = []
    threads = [
        threading.Thread(
            target=lambda: statuses.append(conn.get("/project/v1/hubs").status_code)
        )
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert statuses == [200] * 8
    assert len(httpx_mock.get_requests(url=TOKEN_URL)) == 1


def test_the_token_never_travels_over_plain_http(store: SessionStore) -> None:
    tokens = Tokens("at-1", "rt-1", time.time() + 3600, ())
    session = store.put("jane@example.com", "desk", tokens, None)
    settings = Settings(client_id="desk", base_url="http://aps.example.com")
    conn = Connection(settings, store, session, httpx.Client())
    with pytest.raises(RequestError, match="plain HTTP"):
        conn.get("/project/v1/hubs")
