"""The lifecycle shown in the README and the user guide is the table's own rendering."""

from __future__ import annotations

from pathlib import Path

from vms_core.render import render_mermaid, render_text

ROOT = Path(__file__).resolve().parents[2]


def _fenced(path: Path, language: str) -> list[str]:
    """The bodies of the fenced blocks opened with exactly ```<language>."""
    blocks, body, opened_with = [], [], None
    for line in path.read_text().splitlines(keepends=True):
        if line.startswith("```"):
            if opened_with is None:
                opened_with, body = line[3:].strip(), []
            else:
                if opened_with == language:
                    blocks.append("".join(body))
                opened_with = None
        elif opened_with is not None:
            body.append(line)
    return blocks


def test_readme_table_is_the_rendered_table() -> None:
    assert render_text() in _fenced(ROOT / "README.md", "")


def test_user_guide_diagram_is_the_rendered_diagram() -> None:
    assert render_mermaid() in _fenced(ROOT / "docs" / "user-guide.md", "mermaid")


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    commands = [block.strip() for block in _fenced(ROOT / "README.md", "sh") if "pytest" in block]
    assert len(commands) == 1
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert commands[0] in ci_lines
