"""``apshooks fire`` and ``apshooks events`` on real folders of scripts."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from aps import logs
from aps.settings import Settings
from hooks import customizations, events
from hooks.cli import main

SCRIPTS = {
    "10_login.py": """
        from hooks import on

        @on("LoginVault_Post")
        def greet(user, vault):
            return f"{user} on {vault}"
        """,
    "20_states.py": """
        from hooks import on, restrict

        @on("UpdateFileStates_Restrictions", priority=-5)
        def no_release_without_pdf(files):
            for f in files:
                if not f.get("pdf"):
                    restrict(f["name"], "Create the PDF before releasing.")

        @on("UpdateFileStates_Post")
        def count(files, successful):
            return len(files)
        """,
    "30_broken.py": """
        from hooks import on

        @on("LoginVault_Post")
        def broken(user):
            raise ValueError("no mail server")
        """,
}


@pytest.fixture(autouse=True)
def _isolated() -> Iterator[None]:
    # Logging goes to this test's home; its console sink is set up outside
    # CliRunner, whose captured streams close when each command returns.
    logs.configure("client", Settings.load())
    with events.isolated():
        yield
        for loaded in customizations.loaded():
            customizations.unload(loaded.folder)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    for name, source in SCRIPTS.items():
        (tmp_path / name).write_text(textwrap.dedent(source), encoding="utf-8")
    return tmp_path


def apshooks(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(arg) for arg in args])


def test_fire_shows_each_handlers_outcome_and_fails_when_one_failed(
    folder: Path,
) -> None:
    result = apshooks(
        "fire", "LoginVault_Post", "--arg", "user=jane", "--arg", "vault=Vault",
        "--customizations", folder,
    )  # fmt: skip

    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0] == "LoginVault_Post"
    assert lines[1].split()[:3] == ["ok", "greet", "10_login.py:4"]
    assert lines[1].endswith("returned 'jane on Vault'")
    assert lines[2].split()[:3] == ["failed", "broken", "30_broken.py:6"]
    assert lines[2].endswith("ValueError: no mail server")
    # The columns line up.
    assert lines[1].index("greet") == lines[2].index("broken")


def test_fire_succeeds_when_every_handler_did(folder: Path) -> None:
    (folder / "30_broken.py").unlink()

    result = apshooks(
        "fire", "LoginVault_Post", "--arg", "user=jane", "--customizations", folder
    )

    assert result.exit_code == 0
    line = result.output.splitlines()[1]
    assert line.split()[:3] == ["ok", "greet", "10_login.py:4"]
    assert line.endswith("returned 'jane on None'")


def test_fire_an_operation_shows_its_restrictions_and_exits_3(folder: Path) -> None:
    files = '[{"name": "Plate.ipt"}, {"name": "Bracket.ipt", "pdf": "B.pdf"}]'

    result = apshooks(
        "fire", "UpdateFileStates", "--arg", f"files={files}",
        "--customizations", folder,
    )  # fmt: skip

    assert result.exit_code == 3
    lines = result.output.splitlines()
    assert lines[0] == "UpdateFileStates_Restrictions"
    assert lines[2].split(maxsplit=2) == [
        "restricted",
        "Plate.ipt",
        "Create the PDF before releasing.",
    ]
    assert "UpdateFileStates_Post" not in result.output


def test_fire_an_operation_runs_every_phase_when_nothing_restricts(
    folder: Path,
) -> None:
    result = apshooks(
        "fire", "UpdateFileStates", "--arg", 'files=[{"name": "A.ipt", "pdf": 1}]',
        "--customizations", folder,
    )  # fmt: skip

    assert result.exit_code == 0
    events_shown = [line for line in result.output.splitlines() if line[:1] != " "]
    assert events_shown == [
        "UpdateFileStates_Restrictions",
        "UpdateFileStates_Pre",
        "UpdateFileStates_Post",
    ]
    assert "(no handlers)" in result.output


def test_fire_reads_values_as_json_when_they_parse(tmp_path: Path) -> None:
    (tmp_path / "echo.py").write_text(
        "from hooks import on\n"
        "@on('AddFile_Post')\n"
        "def echo(**arguments):\n"
        "    assert arguments == {'count': 2, 'name': 'A.ipt', 'ok': True}\n",
        encoding="utf-8",
    )

    result = apshooks(
        "fire", "AddFile_Post", "--arg", "count=2", "--arg", "name=A.ipt",
        "--arg", "ok=true", "--customizations", tmp_path,
    )  # fmt: skip

    assert result.exit_code == 0, result.output


def test_fire_refuses_an_unknown_event_with_a_suggestion(tmp_path: Path) -> None:
    result = apshooks("fire", "LoginVault_Pst", "--customizations", tmp_path)

    assert result.exit_code == 2
    assert "Did you mean 'LoginVault_Post'?" in result.output


def test_fire_refuses_an_argument_without_a_name(tmp_path: Path) -> None:
    result = apshooks(
        "fire", "AddFile_Post", "--arg", "=x", "--customizations", str(tmp_path)
    )

    assert result.exit_code == 2
    assert "is not NAME=VALUE" in result.output


def test_events_lists_the_handlers_by_event(folder: Path) -> None:
    result = apshooks("events", "--customizations", folder)

    assert result.exit_code == 0
    assert result.output.splitlines() == [
        "LoginVault_Post",
        "  10_login.py:4   greet",
        "  30_broken.py:4  broken",
        "UpdateFileStates_Post",
        "  20_states.py:10  count",
        "UpdateFileStates_Restrictions",
        "  20_states.py:4  no_release_without_pdf  priority -5",
    ]


def test_events_all_lists_the_whole_catalogue(tmp_path: Path) -> None:
    result = apshooks("events", "--all", "--customizations", tmp_path)

    assert result.exit_code == 0
    assert result.output.splitlines() == events.catalogue()


def test_a_script_that_fails_to_load_is_shown_and_fails_fire(
    tmp_path: Path, home: Path
) -> None:
    (tmp_path / "bad.py").write_text("def broken(:\n", encoding="utf-8")
    env = {**os.environ, "APSHOOKS_CUSTOMIZATIONS": str(tmp_path)}

    process = subprocess.run(
        [Path(sys.executable).with_name("apshooks"), "fire", "LoginVault_Post"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )

    assert process.returncode == 1
    assert "Could not load bad.py, line 1: SyntaxError" in process.stderr
    log = (home / "logs" / "Client.log").read_text(encoding="utf-8")
    assert f"Could not load script {tmp_path / 'bad.py'}, line 1" in log
    assert process.stdout.splitlines() == ["LoginVault_Post", "  (no handlers)"]


def test_a_missing_folder_is_said_and_a_broken_script_fails_the_listing(
    folder: Path, tmp_path: Path
) -> None:
    missing = CliRunner().invoke(
        main, ["events", "--customizations", str(tmp_path / "nope")]
    )
    assert missing.exit_code == 2
    assert "does not exist" in missing.output

    (folder / "40_syntax.py").write_text("def broken(:\n")
    listed = CliRunner().invoke(main, ["events", "--customizations", str(folder)])
    assert listed.exit_code == 1
    assert "Could not load 40_syntax.py" in listed.output
