"""The stores a queue benchmark compares: huey's SQLite, ours on SQLite and on
PostgreSQL, each fresh and in a folder of its own."""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

PG_URL = os.environ.get("APSHOOKS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def options(description: str, jobs: int) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--jobs", type=int, default=jobs)
    parser.add_argument("--no-postgresql", action="store_true")
    return parser.parse_args()


def runs(baseline: str, *, postgresql: bool) -> list[tuple[str, str, str]]:
    """(label, system, store) for each run, the huey baseline first."""
    folder = Path(tempfile.mkdtemp(prefix="apshooks-bench-"))
    os.environ["APSHOOKS_HOME"] = str(folder)
    chosen = [
        (baseline, "huey", str(folder / "huey.db")),
        ("apshooks, SQLite", "apshooks", f"sqlite:///{folder / 'apshooks.db'}"),
    ]
    if postgresql:
        chosen.append(("apshooks, PostgreSQL", "apshooks", _fresh_pg_schema()))
    return chosen


def _fresh_pg_schema() -> str:
    import psycopg

    schema = f"bench_{os.getpid()}"
    with psycopg.connect(PG_URL, autocommit=True) as admin:
        admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        admin.execute(f"CREATE SCHEMA {schema}")
    return f"{PG_URL}?options=-csearch_path%3D{schema}"
