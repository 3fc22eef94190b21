"""``FakeBackend``: the ``fake`` entry point, the tart backend over the in-process simulator.

The backend code is exactly :class:`vms_tart.backend.TartBackend`; only the runner
differs (:class:`vms_fake.inprocess.InProcessRunner` instead of a subprocess), so
switching a test suite between ``tart`` and ``fake`` is a configuration change.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

from typing_extensions import override

from vms_core.backend import Availability
from vms_core.errors import ConfigError
from vms_fake.faults import IN_PROCESS_TIMING, FaultPlan, FaultPlanError
from vms_fake.inprocess import InProcessRunner
from vms_fake.world import HomeError
from vms_tart.backend import TartBackend
from vms_tart.config import TartOptions
from vms_tart.runner import TartRunner


@dataclasses.dataclass(frozen=True)
class FakeOptions(TartOptions):
    """The tart options, plus the simulator's.

    ``home`` is the simulated ``TART_HOME`` (default: ``$TART_HOME``, else one
    directory per user, so ``vms list --backend fake`` in another process sees the
    same VMs). ``binary`` only names the simulator in messages.
    """

    section: ClassVar[str] = "fake"
    binary: str = "fake-tart"
    #: Delays and waits cost no wall time (the simulator's virtual clock).
    virtual_time: bool = True
    #: Seconds from ``run`` until the guest agent answers; from boot until the IP appears.
    boot_delay: float = 0.0
    ip_delay: float = 0.0
    #: The fault plan to obey (JSON). None: the one ``fake-tart`` would obey,
    #: ``$FAKE_TART_FAULTS`` or ``<home>/fake-tart/faults.json``, if it exists.
    faults_file: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        for field in ("boot_delay", "ip_delay"):
            value = getattr(self, field)
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"fake.{field} must be a number >= 0, got {value}")


class FakeBackend(TartBackend):
    """The tart backend over the simulator in this process. Always available."""

    name = "fake"
    Options: type[Any] = FakeOptions
    options: FakeOptions
    #: A running VM is an object in this process and dies with it (``vms run --keep``
    #: reads this to keep the VM stopped rather than claim it stays running).
    vms_outlive_process = False

    @override
    def _default_runner(self) -> TartRunner:
        """The simulator; an unusable home or fault plan is a ConfigError naming the path."""
        opts = self.options
        timing = dataclasses.replace(
            IN_PROCESS_TIMING, boot_delay=opts.boot_delay, ip_delay=opts.ip_delay
        )
        try:
            runner = InProcessRunner(
                opts.home, timing=timing, virtual_time=opts.virtual_time, binary=opts.binary
            )
        except HomeError as error:
            where = "fake.home" if opts.home else "the simulated TART_HOME"
            raise ConfigError(f"{where} cannot be used: {error}") from error
        home = runner.home.path
        try:
            runner.plan = (
                FaultPlan(opts.faults_file, home=home)
                if opts.faults_file
                else FaultPlan.from_environment(home)
            )
        except FaultPlanError as error:
            raise ConfigError(f"fake.faults_file: {error}") from error
        return runner

    @override
    def availability(self) -> Availability:
        return Availability(True)
