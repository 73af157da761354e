"""Folders of customization scripts on disk: loading, reloading, watching."""

from __future__ import annotations

import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import hooks
from hooks import customizations, events
from hooks.customizations import LoadReport


@pytest.fixture(autouse=True)
def _isolated() -> Iterator[None]:
    with events.isolated():
        yield
        for loaded in customizations.loaded():
            customizations.unload(loaded.folder)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "Customizations"
    path.mkdir()
    return path


def write(folder: Path, name: str, source: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return path


def greeter(folder: Path, name: str, greeting: str) -> Path:
    """A script whose LoginVault_Post handler returns ``greeting``."""
    return write(
        folder,
        name,
        f"""
        from hooks import on

        @on("LoginVault_Post")
        def greet(user):
            return "{greeting} " + str(user)
        """,
    )


def login(**arguments: object) -> list[object]:
    return hooks.emit("LoginVault_Post", user="jane", **arguments).values


def test_scripts_load_in_name_order(folder: Path) -> None:
    greeter(folder, "20_second.py", "second")
    greeter(folder, "10_first.py", "first")

    report = hooks.load(folder)

    assert report.ok
    assert [p.name for p in report.loaded] == ["10_first.py", "20_second.py"]
    assert login() == ["first jane", "second jane"]


def test_disabled_scripts_and_underscore_files_are_not_loaded(folder: Path) -> None:
    greeter(folder, "Disabled/off.py", "disabled")
    greeter(folder, "_helper.py", "helper")
    greeter(folder, "on.py", "enabled")

    report = hooks.load(folder)

    assert [p.name for p in report.loaded] == ["on.py"]
    assert login() == ["enabled jane"]


def test_a_broken_script_is_reported_and_the_others_still_load(folder: Path) -> None:
    greeter(folder, "a_good.py", "good")
    write(folder, "b_syntax.py", "x = 1\ndef broken(:\n    pass\n")
    write(
        folder,
        "c_raises.py",
        """
        from hooks import on

        on("AddFile_Post")(lambda: None)
        raise RuntimeError("the settings file is missing")
        """,
    )
    greeter(folder, "d_good.py", "also good")

    report = hooks.load(folder)

    assert not report.ok
    assert [p.name for p in report.loaded] == ["a_good.py", "d_good.py"]
    syntax, raised = report.failed
    assert (syntax.script.name, syntax.line) == ("b_syntax.py", 2)
    assert syntax.reason.startswith("SyntaxError")
    assert (raised.script.name, raised.line) == ("c_raises.py", 5)
    assert raised.reason == "RuntimeError: the settings file is missing"
    assert "c_raises.py, line 5: RuntimeError" in str(report)
    # The handler registered before the exception was taken back.
    assert events.handlers("AddFile_Post") == []
    assert login() == ["good jane", "also good jane"]


def test_a_changed_script_replaces_its_handlers(folder: Path) -> None:
    script = greeter(folder, "greet.py", "hello")
    hooks.load(folder)

    greeter(folder, "greet.py", "welcome")
    report = hooks.reload(folder)

    assert report.loaded == (script,)
    assert login() == ["welcome jane"]


def test_an_unchanged_script_is_not_imported_again(folder: Path) -> None:
    greeter(folder, "greet.py", "hello")
    hooks.load(folder)
    [before] = events.handlers("LoginVault_Post")

    report = hooks.reload(folder)

    assert not report.changed
    assert [p.name for p in report.unchanged] == ["greet.py"]
    assert events.handlers("LoginVault_Post") == [before]


def test_a_deleted_script_takes_its_handlers_with_it(folder: Path) -> None:
    greeter(folder, "keep.py", "kept")
    gone = greeter(folder, "gone.py", "gone")
    hooks.load(folder)

    gone.unlink()
    report = hooks.reload(folder)

    assert report.removed == (gone,)
    assert login() == ["kept jane"]


def test_a_new_script_is_loaded_on_reload(folder: Path) -> None:
    hooks.load(folder)
    assert login() == []

    greeter(folder, "new.py", "new")
    report = hooks.reload(folder)

    assert [p.name for p in report.loaded] == ["new.py"]
    assert login() == ["new jane"]


def test_a_script_that_breaks_on_reload_keeps_its_previous_handlers(
    folder: Path,
) -> None:
    # A typo saved mid-edit must not switch a working customization off.
    greeter(folder, "greet.py", "hello")
    hooks.load(folder)

    write(folder, "greet.py", "def greet(:\n")
    report = hooks.reload(folder)
    assert [e.script.name for e in report.failed] == ["greet.py"]
    assert login() == ["hello jane"]
    assert hooks.reload(folder).failed == ()  # reported once, not on every look

    greeter(folder, "greet.py", "hi")
    hooks.reload(folder)
    assert login() == ["hi jane"]


def test_sys_exit_in_a_script_or_handler_stops_neither_load_nor_emit(
    folder: Path,
) -> None:
    write(folder, "10_exits.py", "import sys\nsys.exit(3)\n")
    write(
        folder,
        "20_handler_exits.py",
        "import sys\nfrom hooks import on\n\n"
        "@on('LoginVault_Post')\ndef leave(user):\n    sys.exit('bye')\n",
    )
    greeter(folder, "30_greet.py", "hello")
    report = hooks.load(folder)

    assert [e.script.name for e in report.failed] == ["10_exits.py"]
    result = hooks.emit("LoginVault_Post", user="jane")
    assert [o.handler for o in result.outcomes if not o.ok] == ["leave"]
    assert result.values[-1] == "hello jane"


def test_moving_a_script_to_disabled_turns_it_off(folder: Path) -> None:
    script = greeter(folder, "greet.py", "hello")
    hooks.load(folder)

    (folder / "Disabled").mkdir()
    script.rename(folder / "Disabled" / "greet.py")
    hooks.reload(folder)

    assert login() == []


def test_two_folders_with_the_same_file_names_do_not_collide(tmp_path: Path) -> None:
    greeter(tmp_path / "one", "greet.py", "one")
    greeter(tmp_path / "two", "greet.py", "two")

    hooks.load(tmp_path / "one")
    hooks.load(tmp_path / "two")

    assert sorted(str(value) for value in login()) == ["one jane", "two jane"]
    modules = [n for n in sys.modules if n.startswith("_apshooks_customizations.")]
    assert len(modules) == 2


def test_scripts_can_define_dataclasses_and_read_their_own_module(
    folder: Path,
) -> None:
    write(
        folder,
        "typed.py",
        """
        from dataclasses import dataclass
        from hooks import on

        @dataclass
        class Login:
            user: str

        @on("LoginVault_Post")
        def record(user):
            return Login(user), __name__
        """,
    )
    hooks.load(folder)

    [(record, name)] = login()  # type: ignore[misc]
    assert record.user == "jane"
    assert name.endswith(".typed")


def test_the_default_folder_comes_from_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    greeter(tmp_path / "custom", "greet.py", "from settings")
    monkeypatch.setenv("APSHOOKS_CUSTOMIZATIONS", str(tmp_path / "custom"))

    report = hooks.load()

    assert report.folder == (tmp_path / "custom").resolve()
    assert login() == ["from settings jane"]


def test_a_missing_folder_loads_nothing(tmp_path: Path) -> None:
    report = hooks.load(tmp_path / "not there")

    assert report.ok
    assert not report.changed


def test_unload_removes_every_handler_of_the_folder(folder: Path) -> None:
    greeter(folder, "greet.py", "hello")
    hooks.load(folder)

    hooks.unload(folder)

    assert login() == []
    assert customizations.loaded() == []


# The watcher.


class Reloads:
    """Collects the watcher's reports; a test waits for the next one."""

    def __init__(self) -> None:
        self.reports: list[LoadReport] = []
        self._arrived = threading.Event()

    def __call__(self, report: LoadReport) -> None:
        self.reports.append(report)
        self._arrived.set()

    def next(self) -> LoadReport:
        assert self._arrived.wait(10), "the watcher did not reload within 10 s"
        self._arrived.clear()
        return self.reports[-1]


def test_the_watcher_follows_changes_new_and_deleted_scripts(folder: Path) -> None:
    script = greeter(folder, "greet.py", "hello")
    reloads = Reloads()

    with hooks.watch(folder, interval=0.05, on_reload=reloads):
        assert login() == ["hello jane"]

        greeter(folder, "greet.py", "welcome")
        assert reloads.next().loaded == (script,)
        assert login() == ["welcome jane"]

        added = greeter(folder, "more.py", "more")
        assert reloads.next().loaded == (added,)
        assert login() == ["welcome jane", "more jane"]

        script.unlink()
        assert reloads.next().removed == (script,)
        assert login() == ["more jane"]


def test_the_watcher_reports_a_script_that_breaks(folder: Path) -> None:
    reloads = Reloads()

    with hooks.watch(folder, interval=0.05, on_reload=reloads) as watcher:
        write(folder, "broken.py", "def broken(:\n")
        [failure] = reloads.next().failed

    assert failure.script.name == "broken.py"
    assert not watcher.running


def test_stopping_the_watcher_stops_reloading(folder: Path) -> None:
    greeter(folder, "greet.py", "hello")
    watcher = hooks.watch(folder, interval=0.05)
    watcher.stop()

    greeter(folder, "greet.py", "welcome")

    assert login() == ["hello jane"]
    assert hooks.reload(folder).loaded  # The change is still there to pick up.
