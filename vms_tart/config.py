"""Options of the tart backend: keyword arguments or a ``[tart]`` TOML table.

All durations are seconds. The defaults follow the Go library where it is right
(run budget about 127 s, force-stop budget 16 s, per-OS run options) and tart's own
defaults elsewhere (``tart stop --timeout 30``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar, Literal

from vms_core.errors import ConfigError
from vms_core.waiting import Backoff

DEFAULT_RUN_OPTIONS = ("--no-graphics", "--no-audio")
#: Only macOS guests can be suspended; tart refuses ``--suspendable`` for Linux.
DEFAULT_MACOS_RUN_OPTIONS = (*DEFAULT_RUN_OPTIONS, "--suspendable")
DEFAULT_SOURCE = "ghcr.io/cirruslabs/macos-sequoia-base:latest"


def default_run_options(os: str) -> tuple[str, ...]:
    return DEFAULT_MACOS_RUN_OPTIONS if os == "macos" else DEFAULT_RUN_OPTIONS


def whole_seconds(seconds: float) -> int:
    """tart takes whole seconds: round up, so a short timeout never becomes 0."""
    return max(0, math.ceil(seconds))


@dataclasses.dataclass(frozen=True)
class TartOptions:
    """Everything the tart backend can be told. Unknown keys are a ConfigError."""

    #: The tart executable: a name looked up on PATH, or a path (``fake-tart`` works).
    binary: str = "tart"
    #: ``TART_HOME`` for every tart command (None: inherit the environment's).
    home: str | None = None
    #: Guest OS; picks the default run options (``--suspendable`` only for macOS).
    os: Literal["macos", "linux"] = "macos"
    #: Options for ``tart run <name> ...``; None means the defaults for ``os``.
    run_options: tuple[str, ...] | None = None
    #: Wait for the guest's IP during start instead of on the first ``properties()``.
    obtain_ip_at_start: bool = False
    #: ``tart ip --resolver``: dhcp, arp or agent (None: tart's default, dhcp).
    ip_resolver: Literal["dhcp", "arp", "agent"] | None = None
    #: ``tart ip --wait`` when the IP is looked up lazily.
    ip_wait: float = 120.0
    #: Budget of start: reach ``running``, optional IP, readiness exec.
    run_timeout: float = 127.0
    run_backoff_initial: float = 0.25
    run_backoff_max: float = 2.0
    #: Budget for state changes that tart does asynchronously (the suspend snapshot)
    #: and for verifying a state with ``tart list``.
    state_timeout: float = 102.3
    state_backoff_initial: float = 0.1
    state_backoff_max: float = 2.0
    #: Default graceful period of ``stop()`` (``tart stop --timeout``).
    stop_timeout: float = 30.0
    #: How long a VM gets to exit after a stop request before we SIGKILL our ``tart run``.
    force_stop_timeout: float = 16.0
    #: ``tart set`` after clone, only when given: CPUs, memory in MiB, disk in GB.
    cpu: int | None = None
    memory: int | None = None
    disk: int | None = None
    #: Generated names start with it; list_vms/delete_all filter by it.
    name_prefix: str = "vms-"
    #: The image cloned when an instance is created without a source.
    source: str = DEFAULT_SOURCE
    #: tart clone silently replaces a VM of the same name. False refuses instead (it
    #: costs one ``tart list`` before each clone).
    overwrite: bool = True
    #: Stop this process's ``tart run`` children when Python exits.
    kill_on_exit: bool = True

    #: The TOML table these options come from, for messages (``fake`` reuses them).
    section: ClassVar[str] = "tart"

    def __post_init__(self) -> None:
        at = self.section
        if self.os not in ("macos", "linux"):
            raise ConfigError(f"{at}.os must be 'macos' or 'linux', not {self.os!r}")
        for field in (
            "ip_wait",
            "run_timeout",
            "run_backoff_initial",
            "run_backoff_max",
            "state_timeout",
            "state_backoff_initial",
            "state_backoff_max",
            "force_stop_timeout",
        ):
            value = getattr(self, field)
            if not math.isfinite(value) or value <= 0:  # NaN compares false to everything
                raise ConfigError(f"{at}.{field} must be a positive number, got {value}")
        if not math.isfinite(self.stop_timeout) or self.stop_timeout < 0:
            raise ConfigError(f"{at}.stop_timeout must be a number >= 0, got {self.stop_timeout}")
        for field in ("cpu", "memory", "disk"):
            value = getattr(self, field)
            if value is not None and value <= 0:
                raise ConfigError(f"{at}.{field} must be a positive integer, got {value}")
        if self.run_backoff_max < self.run_backoff_initial:
            raise ConfigError(f"{at}.run_backoff_max must be >= {at}.run_backoff_initial")
        if self.state_backoff_max < self.state_backoff_initial:
            raise ConfigError(f"{at}.state_backoff_max must be >= {at}.state_backoff_initial")

    @property
    def effective_run_options(self) -> tuple[str, ...]:
        if self.run_options is None:
            return default_run_options(self.os)
        return self.run_options

    @property
    def suspendable(self) -> bool:
        """tart can only snapshot a VM run with ``--suspendable``."""
        return "--suspendable" in self.effective_run_options

    @property
    def run_backoff(self) -> Backoff:
        return Backoff(self.run_backoff_initial, 2.0, self.run_backoff_max)

    @property
    def state_backoff(self) -> Backoff:
        return Backoff(self.state_backoff_initial, 2.0, self.state_backoff_max)

    def set_args(self) -> tuple[str, ...]:
        """The ``tart set`` options for the configured resources (empty when none)."""
        args: list[str] = []
        if self.cpu is not None:
            args += ["--cpu", str(self.cpu)]
        if self.memory is not None:
            args += ["--memory", str(self.memory)]
        if self.disk is not None:
            args += ["--disk-size", str(self.disk)]
        return tuple(args)

    @property
    def env(self) -> dict[str, str]:
        return {"TART_HOME": self.home} if self.home else {}
