"""Steps per second of the testing kit's ``InstanceStateMachine`` on the in-process fake.

The time is the whole hypothesis run (generation, shrinking-free execution, each
program's harness setup and teardown), which is what a test suite pays; the steps
are counted by an extra invariant, which hypothesis checks once after the machine
is made and once after every step.
"""

from __future__ import annotations

import time
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis.stateful import invariant, run_state_machine_as_test
from report import Metric

from vms_core.testing import InstanceStateMachine
from vms_fake.testing import in_process_harness


class _Counts:
    programs = 0
    checks = 0


def counting_machine() -> type[InstanceStateMachine]:
    base = InstanceStateMachine.configure(in_process_harness, name="BenchFakeMachine")

    class CountingMachine(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            super().__init__()
            _Counts.programs += 1

        @invariant()
        def count_step(self) -> None:
            _Counts.checks += 1

    return CountingMachine


def measure(programs: int) -> list[Metric]:
    """``hypothesis_steps_per_second`` over ``programs`` random programs."""
    machine = counting_machine()
    _Counts.programs = _Counts.checks = 0
    run_settings: Any = settings(
        max_examples=programs,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    started, cpu_started = time.perf_counter(), time.process_time()
    run_state_machine_as_test(machine, settings=run_settings)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    steps = _Counts.checks - _Counts.programs
    return [
        Metric(
            "hypothesis_steps_per_second",
            round(steps / elapsed, 1),
            1000.0,
            unit="steps/s",
            direction="min",
            details={
                "programs": _Counts.programs,
                "steps": steps,
                "seconds": round(elapsed, 3),
                # Steps per CPU second of this process: steadier when the cores are shared.
                "steps_per_cpu_second": round(steps / cpu, 1),
            },
        )
    ]
