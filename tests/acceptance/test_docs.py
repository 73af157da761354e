"""Every Python example in the docs runs as written, against the sandbox.

Each ```python block runs on its own in a fresh interpreter, with the settings
pointing at a sandbox where Jane has signed in. A block that cannot run there
(it needs a real Autodesk account, say) is preceded by an HTML comment
``<!-- not run: why -->``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import aps
from aps.sandbox import Sandbox, free_callback_url

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
BLOCK = re.compile(r"(<!-- not run:[^>]*-->\s*)?```python\n(.*?)```", re.DOTALL)


def _examples() -> Iterator[tuple[str, str]]:
    for page in PAGES:
        text = page.read_text()
        for number, match in enumerate(BLOCK.finditer(text), start=1):
            if match.group(1) is None:
                line = text.count("\n", 0, match.start()) + 1
                yield f"{page.relative_to(ROOT)}:{line}#{number}", match.group(2)


EXAMPLES = dict(_examples())


@pytest.fixture(scope="module")
def signed_in(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    home = tmp_path_factory.mktemp("docs-home")
    callback = free_callback_url()
    with Sandbox.start(
        auto_consent="jane@example.com", callback_urls=[callback]
    ) as sandbox:
        env = {
            **os.environ,
            **sandbox.environment(),
            "APSHOOKS_HOME": str(home),
            "APS_CALLBACK_URL": callback,
        }
        settings = sandbox.settings(callback_url=callback)
        previous = os.environ.get("APSHOOKS_HOME")
        os.environ["APSHOOKS_HOME"] = str(home)
        try:
            aps.connect(settings=settings, browser=Sandbox.browser)
        finally:
            if previous is None:
                del os.environ["APSHOOKS_HOME"]
            else:
                os.environ["APSHOOKS_HOME"] = previous
        yield env


@pytest.mark.parametrize("where", sorted(EXAMPLES))
def test_the_example_runs(
    where: str, signed_in: dict[str, str], tmp_path: Path
) -> None:
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", EXAMPLES[where]],
        env=signed_in,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"{where} failed:\n{done.stderr}"
