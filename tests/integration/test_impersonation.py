"""connect(user=...): only in a job, only as its submitter, while consent lasts."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import aps
from aps import _connect
from aps.errors import ConsentRequired, ImpersonationRefused
from aps.settings import Settings
from aps.store import CONSENT_LIFETIME
from aps.tokens import Tokens

JOB_TEXT = (
    "Job processing requires Autodesk Platform Services authentication! Please "
    "connect on your workstation using Autodesk ID 'jane@example.com' and grant "
    "consent."
)


@pytest.fixture
def settings(home: Path) -> Settings:
    settings = Settings(client_id="desk", secret_key="test key")
    tokens = Tokens("at", "rt", time.time() + 3600, ("data:read",))
    _connect.store_for(settings).put("jane@example.com", "desk", tokens, "Jane")
    return settings


def test_outside_a_job_impersonation_is_refused(settings: Settings) -> None:
    with pytest.raises(ImpersonationRefused, match="only inside a job"):
        aps.connect(user="jane@example.com", settings=settings)


def test_inside_a_job_only_its_submitter_can_be_impersonated(
    settings: Settings,
) -> None:
    with aps.impersonation("jane@example.com"):
        conn = aps.connect(user="jane@example.com", settings=settings)
        assert conn.user == "jane@example.com"
        assert aps.connection is conn
        with pytest.raises(ImpersonationRefused, match="only the Autodesk ID"):
            aps.connect(user="john@example.com", settings=settings)
    assert aps.connection is not conn


def test_an_allowed_list_widens_the_scope_explicitly(settings: Settings) -> None:
    with (
        aps.impersonation("jane@example.com", also=["john@example.com"]),
        pytest.raises(ConsentRequired) as caught,
    ):
        aps.connect(user="john@example.com", settings=settings)
    assert "john@example.com" in str(caught.value)


def test_a_submitter_without_consent_gets_the_documented_text(home: Path) -> None:
    settings = Settings(client_id="desk", secret_key="test key")
    with (
        aps.impersonation("jane@example.com"),
        pytest.raises(ConsentRequired) as caught,
    ):
        aps.connect(user="jane@example.com", settings=settings)
    assert str(caught.value) == JOB_TEXT


def test_consent_expires_after_fifteen_idle_days(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    later = time.time() + CONSENT_LIFETIME + 60
    monkeypatch.setattr("aps._connect.time.time", lambda: later)
    with (
        aps.impersonation("jane@example.com"),
        pytest.raises(ConsentRequired) as caught,
    ):
        aps.connect(user="jane@example.com", settings=settings)
    assert str(caught.value) == JOB_TEXT


def test_a_job_cannot_open_a_browser(settings: Settings) -> None:
    opened: list[str] = []
    with aps.impersonation("jane@example.com"):
        result = aps.connect(
            settings=settings, browser=opened.append, raise_on_error=False
        )
    assert not result
    assert "connect(user=" in str(result.error)
    assert opened == []


def test_raise_on_error_false_returns_a_falsy_result(home: Path) -> None:
    result = aps.connect(settings=Settings(), raise_on_error=False)
    assert not result
    assert "APS_CLIENT_ID" in str(result.error)


def test_a_store_error_is_returned_too_when_asked_not_to_raise(home: Path) -> None:
    (home / "broken.db").write_bytes(b"not a database" * 100)
    settings = Settings(client_id="desk", store=str(home / "broken.db"))
    result = aps.connect(settings=settings, raise_on_error=False)
    assert not result
    assert "cannot be read" in str(result.error)
    assert not hasattr(result, "_private")
