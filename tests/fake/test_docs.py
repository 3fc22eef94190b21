"""The Python examples in docs/fake-tart.md run as written (in order, one namespace)."""

from __future__ import annotations

from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "fake-tart.md"

pytestmark = pytest.mark.timeout(60)


def _python_blocks(text: str) -> list[str]:
    blocks: list[str] = []
    body: list[str] = []
    inside = False
    for line in text.splitlines(keepends=True):
        if line.startswith("```"):
            if inside:
                blocks.append("".join(body))
            inside, body = (not inside and line.strip() == "```python"), []
        elif inside:
            body.append(line)
    return blocks


def test_doc_examples_run(tmp_path: Path) -> None:
    blocks = _python_blocks(DOC.read_text())
    assert len(blocks) >= 4
    namespace: dict[str, object] = {"home": tmp_path / "home"}
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), namespace)
