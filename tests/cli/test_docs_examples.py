"""The user guide's examples work as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("vms_fake.backend", reason="the fake backend is not installed")

GUIDE = Path(__file__).parents[2] / "docs" / "user-guide.md"


def guide_example(heading: str) -> str:
    """The first python block after ``heading`` in the user guide."""
    text = GUIDE.read_text()
    section = text[text.index(heading) :]
    found = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert found is not None, f"no python example under {heading!r}"
    return found.group(1)


@pytest.mark.timeout(60)
def test_the_always_clean_up_example_runs_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import vms_core

    monkeypatch.setenv("TART_HOME", str(tmp_path))
    exec(guide_example("### Always clean up"), {"vms_core": vms_core})
    left = vms_core.load_backend("fake").list_vms()
    assert [info.name for info in left if info.name.startswith("vms-")] == []
