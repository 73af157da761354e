"""Client customizations: a folder of scripts whose handlers follow its files.

Every ``*.py`` file directly in the folder is a script, imported in name order;
files starting with ``_`` and subfolders (``Disabled`` among them) are left
alone. The handlers a script registers are remembered per script, so that when
the file changes they are replaced, and when it goes they go too. Scripts are
imported under a private module name per folder, so two folders may hold files
of the same name.
"""

from __future__ import annotations

import hashlib
import re
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import attrs
from loguru import logger

from aps import logs
from aps.settings import Settings
from hooks import events
from hooks.events import Handler

DISABLED = "Disabled"
DEFAULT_INTERVAL = 0.5  # Seconds between two looks at the folder when watching.


@attrs.frozen
class ScriptError:
    """A script that could not be imported, and where and why."""

    script: Path
    line: int | None
    reason: str

    def __str__(self) -> str:
        where = f", line {self.line}" if self.line else ""
        return f"{self.script.name}{where}: {self.reason}"


@attrs.frozen
class LoadReport:
    """What one look at a customizations folder changed."""

    folder: Path
    loaded: tuple[Path, ...] = ()  # New or changed scripts, now imported.
    removed: tuple[Path, ...] = ()  # Deleted scripts, their handlers gone.
    failed: tuple[ScriptError, ...] = ()
    unchanged: tuple[Path, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def changed(self) -> bool:
        return bool(self.loaded or self.removed or self.failed)

    def __str__(self) -> str:
        lines = [f"Customizations in {self.folder}:"]
        lines += [f"  loaded   {path.name}" for path in self.loaded]
        lines += [f"  removed  {path.name}" for path in self.removed]
        lines += [f"  failed   {error}" for error in self.failed]
        if not self.changed:
            lines.append("  nothing changed")
        return "\n".join(lines)


@attrs.define(eq=False)
class _Script:
    digest: str
    module: str
    handlers: list[Handler]


class Customizations:
    """One folder's scripts, loaded; :meth:`refresh` follows changes to its files."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder.expanduser().resolve()
        self._scripts: dict[Path, _Script] = {}
        self._lock = threading.Lock()
        key = hashlib.sha256(str(self.folder).encode()).hexdigest()[:10]
        self._package = f"_apshooks_customizations.f{key}"
        self.watcher: Watcher | None = None

    def refresh(self) -> LoadReport:
        """Load new scripts, reload changed ones, drop the deleted ones."""
        with self._lock:
            return self._refresh()

    def unload(self) -> None:
        """Remove every handler the folder's scripts registered."""
        with self._lock:
            for path in list(self._scripts):
                self._forget(path)

    def handlers(self) -> dict[Path, list[Handler]]:
        """Each loaded script and the handlers it registered."""
        with self._lock:
            return {path: list(s.handlers) for path, s in self._scripts.items()}

    def _refresh(self) -> LoadReport:
        present = {path: _source(path) for path in _scripts_in(self.folder)}
        removed = [path for path in self._scripts if path not in present]
        for path in removed:
            self._forget(path)
            logger.info(f"Removed the handlers of deleted script {path}.")

        loaded: list[Path] = []
        failed: list[ScriptError] = []
        unchanged: list[Path] = []
        for path, source in present.items():
            digest = hashlib.sha256(source).hexdigest()
            known = self._scripts.get(path)
            if known is not None and known.digest == digest:
                unchanged.append(path)
                continue
            error = self._import(path, source, digest, known)
            if error is None:
                loaded.append(path)
            else:
                failed.append(error)

        return LoadReport(
            self.folder, tuple(loaded), tuple(removed), tuple(failed), tuple(unchanged)
        )

    def _import(
        self, path: Path, source: bytes, digest: str, known: _Script | None
    ) -> ScriptError | None:
        """Import ``source``; on success its handlers replace ``known``'s.

        A new version that fails leaves the old one's handlers in place, so a
        typo saved mid-edit never switches a restriction off.
        """
        name = f"{self._package}.{_identifier(path.stem)}"
        module = ModuleType(name)
        module.__file__ = str(path)
        previous = sys.modules.get(name)
        with events.recording() as registered:
            try:
                code = compile(source, str(path), "exec")
                sys.modules[name] = module  # Dataclasses and the like look here.
                exec(code, module.__dict__)
            except (Exception, SystemExit) as error:  # sys.exit() in a script too
                events.unregister(*registered)
                if previous is None:
                    sys.modules.pop(name, None)
                else:
                    sys.modules[name] = previous
                failure = _script_error(path, error)
                where = f", line {failure.line}" if failure.line else ""
                kept = (
                    " The previous version stays in use."
                    if known and known.handlers
                    else ""
                )
                logger.error(
                    f"Could not load script {path}{where}: "
                    f"{failure.reason.rstrip('.')}.{kept}"
                )
                handlers = known.handlers if known else []
                self._scripts[path] = _Script(digest, name, handlers)
                return failure

        if known is not None:
            events.unregister(*known.handlers)
        self._scripts[path] = _Script(digest, name, registered)
        logger.info(f"Loaded script {path} with {len(registered)} handler(s).")
        return None

    def _forget(self, path: Path) -> None:
        script = self._scripts.pop(path)
        events.unregister(*script.handlers)
        sys.modules.pop(script.module, None)


class Watcher:
    """A thread that refreshes a folder's customizations until stopped."""

    def __init__(
        self,
        customizations: Customizations,
        *,
        interval: float = DEFAULT_INTERVAL,
        on_reload: Callable[[LoadReport], object] | None = None,
    ) -> None:
        self.customizations = customizations
        self.interval = interval
        self.on_reload = on_reload
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="apshooks-customizations-watcher", daemon=True
        )

    def start(self) -> Watcher:
        self._thread.start()
        logger.info(f"Watching {self.customizations.folder} for changed scripts.")
        return self

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        """Stop watching; returns once the thread has finished."""
        self._stopping.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def __enter__(self) -> Watcher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stopping.wait(self.interval):
            try:
                report = self.customizations.refresh()
                if report.changed and self.on_reload is not None:
                    self.on_reload(report)
            except Exception as error:
                logger.error(
                    f"Refreshing the customizations in {self.customizations.folder} "
                    f"failed ({error}); trying again in {self.interval} s."
                )


_folders: dict[Path, Customizations] = {}
_folders_lock = threading.Lock()


def load(folder: Path | str | None = None) -> LoadReport:
    """Load the scripts in ``folder`` (default: the customizations setting).

    Loading a folder again refreshes it, as :func:`reload` does. A script that
    fails to import is listed in the report and the others load anyway.
    """
    return _customizations(folder).refresh()


def reload(folder: Path | str | None = None) -> LoadReport:
    """Reload changed scripts, load new ones and drop deleted ones."""
    return _customizations(folder).refresh()


def watch(
    folder: Path | str | None = None,
    *,
    interval: float = DEFAULT_INTERVAL,
    on_reload: Callable[[LoadReport], object] | None = None,
) -> Watcher:
    """Load ``folder`` now, then keep it current from a background thread.

    ``on_reload`` is called with the report of every refresh that changed
    something. Stop the returned watcher (or use it as a context manager).
    """
    customizations = _customizations(folder)
    if customizations.watcher is not None:
        customizations.watcher.stop()
    report = customizations.refresh()
    if not report.ok:
        logger.warning(f"{len(report.failed)} customization script(s) failed to load.")
    customizations.watcher = Watcher(
        customizations, interval=interval, on_reload=on_reload
    )
    return customizations.watcher.start()


def unload(folder: Path | str | None = None) -> None:
    """Stop watching ``folder`` and remove the handlers its scripts registered."""
    customizations = _customizations(folder)
    if customizations.watcher is not None:
        customizations.watcher.stop()
        customizations.watcher = None
    customizations.unload()
    with _folders_lock:
        _folders.pop(customizations.folder, None)


def loaded() -> list[Customizations]:
    """Every folder loaded so far."""
    with _folders_lock:
        return list(_folders.values())


def _customizations(folder: Path | str | None) -> Customizations:
    # A host that loads customizations is a workstation: its script and
    # handler failures belong in Client.log.
    logs.ensure("client")
    if folder is None:
        folder = Settings.load().customizations_folder
    resolved = Path(folder).expanduser().resolve()
    with _folders_lock:
        if resolved not in _folders:
            _folders[resolved] = Customizations(resolved)
        return _folders[resolved]


def _scripts_in(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    found = [
        path
        for path in folder.glob("*.py")
        if path.is_file() and not path.name.startswith("_")
    ]
    return sorted(found, key=lambda path: path.name)


def _source(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        # Deleted or locked between listing and reading: an empty script for
        # now, and the next look sees the file as it is then.
        return b""


def _identifier(stem: str) -> str:
    return re.sub(r"\W", "_", stem) or "_"


def _script_error(path: Path, error: BaseException) -> ScriptError:
    reason = f"{type(error).__name__}: {error}"
    if isinstance(error, SyntaxError) and error.filename == str(path):
        return ScriptError(path, error.lineno, f"SyntaxError: {error.msg}")

    line = None
    for frame, number in traceback.walk_tb(error.__traceback__):
        if frame.f_code.co_filename == str(path):
            line = number
    return ScriptError(path, line, reason)
