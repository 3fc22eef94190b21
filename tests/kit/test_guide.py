"""docs/backend-authors.md lists every guest command the conformance suite runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from vms_core.testing import Harness, run_conformance

from .memory_backend import memory_harness

GUIDE = Path(__file__).parents[2] / "docs" / "backend-authors.md"


def rules_section() -> str:
    text = GUIDE.read_text(encoding="utf-8")
    start = text.index("Rules the kit checks")
    return text[start : text.index("\n## ", start)]


@pytest.mark.timeout(120)
def test_the_guide_lists_every_guest_command_the_kit_runs() -> None:
    harnesses: list[Harness] = []

    def factory() -> Harness:
        harnesses.append(memory_harness())
        return harnesses[-1]

    run_conformance(factory)
    guest_commands = {
        argv[2:]
        for harness in harnesses
        for argv in harness.backend.tool.commands  # type: ignore[attr-defined]
        if argv[0] == "exec"
    }
    assert guest_commands, "the conformance suite ran no guest command"
    section = rules_section()
    for argv in guest_commands:
        shown = f"`sh -c '{argv[2]}'`" if argv[:2] == ("sh", "-c") else f"`{argv[0]}"
        assert shown in section, f"the guide does not list the guest command {argv}"
