"""The Python examples of docs/job-processor.md run as written."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

DOC = Path(__file__).parents[2] / "docs" / "job-processor.md"


def examples() -> list[str]:
    """The document's Python blocks, except job scripts shown as files."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    return [block for block in blocks if not block.startswith("# <jobs folder>")]


def test_the_examples_run_and_print_what_the_text_says() -> None:
    namespace: dict[str, object] = {}
    printed = io.StringIO()

    with contextlib.redirect_stdout(printed):
        for block in examples():
            exec(compile(block, str(DOC), "exec"), namespace)

    lines = printed.getvalue().splitlines()
    assert len(examples()) == 3
    assert re.fullmatch(r"\d+ Pending \S+", lines[0])
    assert lines[1] == "Success Hello, Vault"
