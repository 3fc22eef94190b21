"""What ``vms_core.testing`` exports, and how it behaves without the ``testing`` extra."""

from __future__ import annotations

import subprocess
import sys

import pytest

import vms_core.testing
from vms_core.testing import harness


def test_kit_failure_is_exported_as_documented() -> None:
    from vms_core.testing import KitFailure

    assert KitFailure is harness.KitFailure
    assert "KitFailure" in vms_core.testing.__all__
    for name in vms_core.testing.__all__:
        assert getattr(vms_core.testing, name) is not None


# Runs a probe with hypothesis made unimportable (as when the extra is not installed).
WITHOUT_HYPOTHESIS = """
import sys
sys.modules["hypothesis"] = None
{body}
"""

STATE_MACHINE_PROBE = """
for statement in (
    "from vms_core.testing import InstanceStateMachine",
    "from vms_core.testing.statemachine import InstanceStateMachine",
    "from vms_core.testing.profiles import load_profile",
):
    try:
        exec(statement)
    except ImportError as err:
        print(type(err).__name__, err)
    else:
        print("imported")
"""

CONFORMANCE_PROBE = """
from vms_core.testing import KitFailure, run_conformance
from tests.kit.memory_backend import memory_harness
outcomes = run_conformance(memory_harness)
print(sorted(set(outcomes.values())))
"""


def run_without_hypothesis(body: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_HYPOTHESIS.format(body=body)],
        capture_output=True,
        text=True,
        timeout=100,
        check=True,
    )
    return done.stdout.splitlines()


@pytest.mark.timeout(120)
def test_without_hypothesis_the_state_machine_names_the_testing_extra() -> None:
    lines = run_without_hypothesis(STATE_MACHINE_PROBE)
    assert len(lines) == 3
    for line in lines:
        assert line.startswith("ModuleNotFoundError ")
        assert "needs hypothesis" in line
        assert "pip install 'vms-lifecycle[testing]'" in line


@pytest.mark.timeout(120)
def test_without_hypothesis_run_conformance_still_works() -> None:
    assert run_without_hypothesis(CONFORMANCE_PROBE) == ["['passed']"]
