"""The ``qemu`` backend's options (keyword arguments or a ``[qemu]`` TOML table)."""

from __future__ import annotations

import dataclasses
import math
import os
import re
from pathlib import Path

from vms_core.errors import ConfigError
from vms_qemu.accel import AcceleratorChoice

#: The source that means "the default guest built from Debian packages".
BUILTIN_SOURCE = "builtin"

#: QEMU's hostfwd syntax: [tcp|udp]:[hostaddr]:hostport-[guestaddr]:guestport.
_FORWARD = re.compile(
    r"^(?P<proto>tcp|udp):(?P<host_addr>[0-9.]*):(?P<host_port>\d{1,5})"
    r"-(?P<guest_addr>[0-9.]*):(?P<guest_port>\d{1,5})$"
)


@dataclasses.dataclass(frozen=True)
class PortForward:
    """One host-to-guest port forward of user-mode networking."""

    protocol: str
    host_address: str
    host_port: int
    guest_address: str
    guest_port: int

    @classmethod
    def parse(cls, text: str) -> PortForward:
        match = _FORWARD.match(text)
        if not match:
            raise ConfigError(
                f"qemu.forwards: {text!r} is not like 'tcp:127.0.0.1:2222-:22' "
                "(protocol:host address:host port-guest address:guest port; port 0 picks a "
                "free host port)"
            )
        host_port, guest_port = int(match["host_port"]), int(match["guest_port"])
        if host_port > 65535 or not 0 < guest_port <= 65535:
            raise ConfigError(f"qemu.forwards: port out of range in {text!r}")
        return cls(
            match["proto"],
            match["host_addr"] or "127.0.0.1",
            host_port,
            match["guest_addr"],
            guest_port,
        )

    @property
    def hostfwd(self) -> str:
        return (
            f"{self.protocol}:{self.host_address}:{self.host_port}"
            f"-{self.guest_address}:{self.guest_port}"
        )


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "vms-qemu"


@dataclasses.dataclass(frozen=True)
class QemuOptions:
    """Every option has a default that works on a Debian machine after the documented install."""

    qemu: str = "qemu-system-x86_64"
    qemu_img: str = "qemu-img"
    #: ``auto`` uses KVM only where it really runs guests (see vms_qemu.accel).
    accelerator: AcceleratorChoice = "auto"
    memory: int = 256  # MiB
    cpus: int = 1
    #: ``builtin`` (the default guest) or the path of a qcow2/raw disk image to overlay.
    source: str = BUILTIN_SOURCE
    #: Direct-boot kernel and initrd; for ``builtin`` they default to the built guest's.
    kernel: str | os.PathLike[str] | None = None
    initrd: str | os.PathLike[str] | None = None
    kernel_args: str | None = None
    #: Per-VM directories live here (default $XDG_STATE_HOME/vms-qemu).
    state_dir: str | os.PathLike[str] | None = None
    #: Where the default guest is cached (default $XDG_CACHE_HOME/vms-qemu).
    cache_dir: str | os.PathLike[str] | None = None
    boot_timeout: float = 120.0
    stop_timeout: float = 30.0
    suspend_timeout: float = 120.0
    #: Host-to-guest forwards, e.g. ``["tcp:127.0.0.1:2222-:22"]``.
    forwards: tuple[str, ...] = ()
    name_prefix: str = "vms-"

    def __post_init__(self) -> None:
        if self.memory < 64:
            raise ConfigError(f"qemu.memory: {self.memory} MiB is too small (at least 64)")
        if self.cpus < 1:
            raise ConfigError(f"qemu.cpus: must be at least 1, got {self.cpus}")
        for name in ("boot_timeout", "stop_timeout", "suspend_timeout"):
            value = getattr(self, name)
            # "not > 0" rather than "<= 0": every comparison with nan is false.
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"qemu.{name}: must be a positive number of seconds, got {value}")
        for name in ("kernel", "initrd", "state_dir", "cache_dir"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str | os.PathLike):
                raise ConfigError(f"qemu.{name}: expected a path, got {value!r}")
        if not self.source:
            raise ConfigError("qemu.source: must not be empty")
        if self.initrd and not self.kernel and self.source != BUILTIN_SOURCE:
            raise ConfigError("qemu.initrd needs qemu.kernel")
        for forward in self.forwards:
            PortForward.parse(forward)

    @property
    def port_forwards(self) -> list[PortForward]:
        return [PortForward.parse(text) for text in self.forwards]

    @property
    def state_path(self) -> Path:
        return Path(self.state_dir).expanduser() if self.state_dir else default_state_dir()

    @property
    def cache_path(self) -> Path | None:
        return Path(self.cache_dir).expanduser() if self.cache_dir else None
