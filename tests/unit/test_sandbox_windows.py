"""Rate limit windows, counted on a clock the test controls."""

from __future__ import annotations

import pytest

from aps.errors import SettingsError
from aps.sandbox.limits import RateLimit, RateLimits, _Counter


def test_sliding_window_frees_a_slot_a_period_after_each_request() -> None:
    counter = _Counter(RateLimit(2, "sliding", period=10))

    assert counter.take(100.0) == 0
    assert counter.take(104.0) == 0
    assert counter.take(105.0) == pytest.approx(5.0)
    assert counter.take(110.0) == 0
    assert counter.take(111.0) == pytest.approx(3.0)


def test_fixed_window_resets_at_its_boundary() -> None:
    counter = _Counter(RateLimit(2, "fixed", period=10))

    assert counter.take(100.0) == 0
    assert counter.take(109.0) == 0
    assert counter.take(109.5) == pytest.approx(0.5)
    assert counter.take(110.0) == 0


def test_endpoint_names_cover_their_paths() -> None:
    limits = RateLimits({"projects": 1})

    assert limits.check("/project/v1/hubs/<hub_id>/projects") is None
    wait = limits.check("/project/v1/hubs/<hub_id>/projects/<project_id>/topFolders")
    assert wait is not None
    assert 1 <= wait <= 60
    assert limits.check("/project/v1/hubs") is None


def test_unknown_endpoint_is_refused_with_the_known_names() -> None:
    with pytest.raises(SettingsError, match="token"):
        RateLimits({"/nowhere": 5})
