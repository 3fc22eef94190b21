"""The kit through the pytest plugin: whatever ``--vm-backend``/``--vm-config`` select.

By default that is the ``fake`` backend; ``pytest --vm-backend qemu
tests/kit/test_selected_backend.py`` holds another backend to the same checks.
"""

from __future__ import annotations

import pytest

from vms_core import Backend, Instance, State
from vms_core.testing import ConformanceTests

pytestmark = [pytest.mark.vm_backend_available, pytest.mark.timeout(600)]


def test_vm_instance_is_running_and_answers(vm_instance: Instance) -> None:
    assert vm_instance.state() is State.RUNNING
    result = vm_instance.exec("echo", "hello")
    assert (result.exit_code, result.stdout) == (0, "hello\n")


class TestSelectedBackendConformance(ConformanceTests):
    @pytest.fixture(autouse=True)
    def _selected(self, vm_backend: Backend) -> None:
        self.backend = vm_backend

    def make_harness(self) -> Backend:
        return self.backend
