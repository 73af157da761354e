"""The job model without a store: parameters, the registry, backoff, globs."""

from __future__ import annotations

import math
from datetime import date

import pytest

from hooks.jobs import (
    JobError,
    JobType,
    check_name,
    check_parameters,
    job,
    registered,
)
from hooks.queue.postgresql import PostgreSQLQueue


def test_json_parameters_are_kept_as_given() -> None:
    parameters = {"EntityId": 42, "EntityClassId": "FILE", "Tags": ["a", None], "X": {}}

    assert check_parameters(parameters) == parameters


def test_tuples_become_lists() -> None:
    assert check_parameters({"Ids": (1, 2)}) == {"Ids": [1, 2]}


@pytest.mark.parametrize(
    ("value", "named"),
    [
        (date(2026, 1, 1), "a date"),
        ({1, 2}, "a set"),
        ([1, object()], "a object"),
        ({"nested": b"bytes"}, "a bytes"),
        ({3: "x"}, "a dict with keys that are not strings"),
        (math.nan, "the number nan"),
    ],
)
def test_a_non_json_parameter_is_refused_naming_key_and_type(
    value: object, named: str
) -> None:
    with pytest.raises(JobError) as raised:
        check_parameters({"Bad": value})

    assert "'Bad'" in str(raised.value)
    assert named in str(raised.value)


def test_parameter_names_must_be_strings() -> None:
    with pytest.raises(JobError, match="names must be strings"):
        check_parameters({1: "x"})  # type: ignore[dict-item]


def test_the_decorator_registers_the_function_and_returns_it() -> None:
    def run(job: object) -> str:
        return "ran"

    decorated = job("Unit.Registered", attempts=3, backoff=2.5, lost=5)(run)

    found = registered("Unit.Registered")
    assert decorated is run
    assert found is not None
    assert (found.function, found.attempts, found.lost) == (run, 3, 5)
    assert found.delay(1) == 2.5


def test_attempts_below_one_are_refused() -> None:
    with pytest.raises(JobError, match="at least 1"):
        job("Unit.Never", attempts=0)


def test_default_backoff_doubles_and_is_capped() -> None:
    job_type = JobType("Unit.Backoff", lambda job: None)

    delays = [job_type.delay(attempt) for attempt in (1, 2, 3, 20)]

    assert delays == [10.0, 20.0, 40.0, 600.0]


def test_backoff_may_be_a_function_of_the_attempt() -> None:
    job_type = JobType("Unit.Backoff", lambda job: None, backoff=lambda n: n * 0.5)

    assert job_type.delay(4) == 2.0


@pytest.mark.parametrize(
    ("pattern", "like"),
    [
        ("Sample.*", "Sample.%"),
        ("Sample.?DF", "Sample._DF"),
        ("Has_Under%", "Has\\_Under\\%"),
    ],
)
def test_glob_patterns_become_like_patterns_on_postgresql(
    pattern: str, like: str
) -> None:
    assert PostgreSQLQueue.glob(pattern) == like


@pytest.mark.parametrize("name", ["Sample.CreatePDF", "a", "My_Job-2.v1"])
def test_job_type_names_that_name_a_script(name: str) -> None:
    check_name(name)


@pytest.mark.parametrize("name", ["", "../evil", "a/b", ".hidden", "a b", "C:\\x"])
def test_job_type_names_that_could_leave_the_jobs_folder_are_refused(
    name: str,
) -> None:
    with pytest.raises(JobError, match="cannot be a job type"):
        check_name(name)
