"""Choosing the QEMU accelerator safely: KVM only where it really runs guests, else TCG.

A naive check is wrong: on PVM hosts (``kvm_pvm`` loaded) ``/dev/kvm`` opens and
KVM_CREATE_VM succeeds, yet standard guest kernels die in the instruction emulator.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import re
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Literal

logger = logging.getLogger(__name__)

Accelerator = Literal["kvm", "tcg"]
AcceleratorChoice = Literal["auto", "kvm", "tcg"]

#: Real-mode boot sector: mov al,1; out 0xf4,al; hlt. With isa-debug-exit at 0xf4
#: QEMU exits with status (1 << 1) | 1 = 3 once the guest has executed it.
_PROBE_CODE = bytes([0xB0, 0x01, 0xE6, 0xF4, 0xF4])
PROBE_BOOT_SECTOR = _PROBE_CODE + bytes(510 - len(_PROBE_CODE)) + b"\x55\xaa"
_PROBE_EXIT_STATUS = 3
PROBE_TIMEOUT = 15.0


@dataclasses.dataclass(frozen=True)
class HostFacts:
    """What the host says about hardware virtualization."""

    #: /proc/cpuinfo advertises vmx (Intel) or svm (AMD).
    cpu_virtualization: bool
    #: /sys/module/kvm_pvm exists: KVM here only runs PVM-patched guest kernels.
    pvm_loaded: bool
    #: /dev/kvm exists and this user may open it read-write.
    kvm_device: bool

    @property
    def kvm_blockers(self) -> list[str]:
        blockers = []
        if not self.cpu_virtualization:
            blockers.append("the CPU flags in /proc/cpuinfo have no vmx or svm")
        if self.pvm_loaded:
            blockers.append("kvm_pvm is loaded (PVM runs only PVM-enabled guest kernels)")
        if not self.kvm_device:
            blockers.append("/dev/kvm is missing or not read-write for this user")
        return blockers


def cpuinfo_has_virtualization(cpuinfo: str) -> bool:
    """True when any ``flags`` line of /proc/cpuinfo lists vmx or svm."""
    for line in cpuinfo.splitlines():
        if re.match(r"flags\s*:", line) and {"vmx", "svm"} & set(line.split(":", 1)[1].split()):
            return True
    return False


def read_host_facts(root: Path = Path("/")) -> HostFacts:
    """Read the facts from ``root`` (a fake tree in tests)."""
    try:
        cpuinfo = (root / "proc/cpuinfo").read_text(errors="replace")
    except OSError:
        cpuinfo = ""
    kvm = root / "dev/kvm"
    return HostFacts(
        cpu_virtualization=cpuinfo_has_virtualization(cpuinfo),
        pvm_loaded=(root / "sys/module/kvm_pvm").exists(),
        kvm_device=kvm.exists() and os.access(kvm, os.R_OK | os.W_OK),
    )


def choose_accelerator(
    requested: AcceleratorChoice, facts: HostFacts, probe: Callable[[], bool]
) -> Accelerator:
    """``kvm`` or ``tcg``. An explicit choice is honoured; ``auto`` picks KVM only when the
    host facts allow it and ``probe`` (a tiny guest under KVM) succeeds."""
    if requested != "auto":
        return requested
    blockers = facts.kvm_blockers
    if blockers:
        logger.debug("using TCG: %s", "; ".join(blockers))
        return "tcg"
    if not probe():
        logger.info("using TCG: a probe guest did not run under KVM")
        return "tcg"
    return "kvm"


def probe_argv(qemu: str, accelerator: Accelerator, boot_image: str) -> list[str]:
    return [
        qemu,
        "-accel",
        accelerator,
        "-machine",
        "pc",
        "-m",
        "16",
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-device",
        "isa-debug-exit,iobase=0xf4,iosize=0x04",
        "-drive",
        f"file={boot_image},format=raw,if=ide",
    ]


@functools.cache
def probe_guest_runs(qemu: str, accelerator: Accelerator = "kvm") -> bool:
    """Boot a one-instruction guest; True when it ran to its exit port (cached per process).

    It proves the accelerator executes guest code at all. PVM's emulator passes it,
    which is why :class:`HostFacts` rules PVM out first.
    """
    with tempfile.TemporaryDirectory(prefix="vms-qemu-probe-") as scratch:
        image = Path(scratch) / "boot.img"
        image.write_bytes(PROBE_BOOT_SECTOR)
        argv = probe_argv(qemu, accelerator, str(image))
        try:
            result = subprocess.run(argv, capture_output=True, timeout=PROBE_TIMEOUT, check=False)
        except (OSError, subprocess.TimeoutExpired) as err:
            logger.debug("accelerator probe %s failed: %s", accelerator, err)
            return False
    if result.returncode != _PROBE_EXIT_STATUS:
        logger.debug(
            "accelerator probe %s exited %s: %s",
            accelerator,
            result.returncode,
            result.stderr.decode(errors="replace").strip(),
        )
    return result.returncode == _PROBE_EXIT_STATUS


def resolve_accelerator(requested: AcceleratorChoice, qemu: str) -> Accelerator:
    """The accelerator for this host, probing with ``qemu`` only when the facts allow KVM."""
    return choose_accelerator(requested, read_host_facts(), lambda: probe_guest_runs(qemu))
