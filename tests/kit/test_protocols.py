"""The kit refuses, clearly, a backend or instance that does not satisfy vms_core's protocols."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis.stateful import run_state_machine_as_test

from vms_core.testing import InstanceStateMachine, KitFailure, run_conformance
from vms_core.testing.harness import Harness

from .memory_backend import MemoryBackend, MemoryInstance, memory_harness


class InstanceWithoutSuspendable(MemoryInstance):
    """Works, but lacks ``suspendable``: ``isinstance(i, vms_core.Instance)`` is False."""

    @property
    def suspendable(self) -> bool:
        raise AttributeError("suspendable")


class BackendMakingIncompleteInstances(MemoryBackend):
    instance_type = InstanceWithoutSuspendable


class NotABackend:
    """Makes instances, but is not a ``vms_core.Backend`` (no list_vms, no name...)."""

    def create_instance(self) -> MemoryInstance:
        return MemoryBackend().create_instance()


def test_conformance_fails_every_check_on_an_instance_missing_a_protocol_member() -> None:
    with pytest.raises(KitFailure) as failure:
        run_conformance(lambda: memory_harness(BackendMakingIncompleteInstances))
    message = str(failure.value)
    assert "- lifecycle_walk: KitFailure: " in message
    assert "does not satisfy vms_core.Instance: missing suspendable" in message


def test_the_state_machine_fails_on_an_instance_missing_a_protocol_member() -> None:
    machine = InstanceStateMachine.configure(
        lambda: memory_harness(BackendMakingIncompleteInstances), name="Incomplete"
    )
    with pytest.raises(KitFailure, match="missing suspendable"):
        run_state_machine_as_test(machine, settings=settings(max_examples=1, database=None))


def test_a_backend_that_is_not_a_backend_is_refused_by_name() -> None:
    with pytest.raises(KitFailure) as failure:
        run_conformance(NotABackend)  # type: ignore[arg-type]
    assert "does not satisfy vms_core.Backend: missing " in str(failure.value)
    assert "list_vms" in str(failure.value)
    with pytest.raises(KitFailure, match=r"does not satisfy vms_core\.Backend"):
        Harness(NotABackend())  # type: ignore[arg-type]
