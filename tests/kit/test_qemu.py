"""The kit against real QEMU guests: a handful, since each boot takes seconds under TCG.

The full conformance suite and longer programs run with ``VMS_HYPOTHESIS_PROFILE=thorough``.
"""

from __future__ import annotations

import pytest

from vms_core import State
from vms_core.testing import InstanceStateMachine
from vms_core.testing.conformance import conformance_tests
from vms_core.testing.profiles import examples, loaded_profile
from vms_qemu.backend import QemuBackend
from vms_qemu.testing import qemu_harness

AVAILABILITY = QemuBackend().availability()
THOROUGH = loaded_profile() == "thorough"
qemu_only = [
    pytest.mark.qemu,
    pytest.mark.slow,
    pytest.mark.timeout(600),
    pytest.mark.skipif(not AVAILABILITY, reason=f"qemu cannot run here: {AVAILABILITY.reason}"),
]


def _marked(test_class: type) -> type:
    for mark in qemu_only:
        test_class = mark(test_class)
    return test_class


TestQemuConformance = _marked(
    conformance_tests(
        qemu_harness,
        "TestQemuConformance",
        # The walk covers clone, start, stop twice, suspend twice, resume and delete.
        only=None if THOROUGH else ("lifecycle_walk", "fresh_instance_refuses"),
    )
)

TestQemuMachine = _marked(
    InstanceStateMachine.configure(
        qemu_harness,
        name="QemuMachine",
        start_from=State.RUNNING,  # so that even two programs drive a booted guest
        max_examples=examples(0.007),
        stateful_step_count=6,
    ).TestCase
)
