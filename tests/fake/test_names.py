"""Names no VM directory can have are refused, never resolved to the home or vms/ itself."""

from __future__ import annotations

import pytest

from .driver import MACOS, Tart

UNUSABLE = [".", "..", "x" * 256]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", UNUSABLE)
def test_unusable_names_fail_and_leave_other_vms_alone(tart: Tart, name: str) -> None:
    tart.clone(MACOS, "precious")
    run = tart.spawn("run", "precious", "--no-graphics")
    for argv in (
        ("clone", MACOS, name),
        ("create", "--linux", name),
        ("rename", "precious", name),
        ("rename", name, "other"),
        ("run", name, "--no-graphics"),
        ("delete", name),
        ("stop", name),
    ):
        result = tart(*argv)
        assert result.exit_code != 0, (argv, result)
    assert tart("list", "--quiet", "--source", "local").stdout == "precious\n"
    assert tart.state("precious") == "running"
    run.signal(2)
    assert run.wait() == 0
