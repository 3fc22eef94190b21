"""The accelerator decision: KVM only where it can really run a standard guest."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from vms_qemu.accel import (
    HostFacts,
    choose_accelerator,
    cpuinfo_has_virtualization,
    probe_guest_runs,
    read_host_facts,
)

INTEL = "processor\t: 0\nflags\t\t: fpu vme de pse vmx sse2\nvmx flags\t: vnmi ept\n"
AMD = "processor\t: 0\nflags\t\t: fpu svm sse2 hypervisor\n"
NESTED_WITHOUT_VT = "processor\t: 0\nflags\t\t: fpu sse2 hypervisor\nvmx flags\t: vnmi\n"


def fake_host(tmp_path: Path, cpuinfo: str, *, pvm: bool = False, kvm: bool = True) -> Path:
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/cpuinfo").write_text(cpuinfo)
    (tmp_path / "sys/module/kvm").mkdir(parents=True)
    if pvm:
        (tmp_path / "sys/module/kvm_pvm").mkdir()
    (tmp_path / "dev").mkdir()
    if kvm:
        (tmp_path / "dev/kvm").write_text("")
    return tmp_path


@pytest.mark.parametrize(
    ("cpuinfo", "expected"),
    [(INTEL, True), (AMD, True), (NESTED_WITHOUT_VT, False), ("", False)],
)
def test_cpu_virtualization_comes_from_the_flags_line_only(cpuinfo: str, expected: bool) -> None:
    assert cpuinfo_has_virtualization(cpuinfo) is expected


def test_this_machine_kind_a_pvm_host_gets_tcg_without_probing(tmp_path: Path) -> None:
    """/dev/kvm works and probing it succeeds on PVM hosts, yet guests die: never use it."""
    facts = read_host_facts(fake_host(tmp_path, AMD, pvm=True))
    assert facts.pvm_loaded and facts.kvm_device
    probes: list[str] = []

    def probe() -> bool:
        probes.append("probed")
        return True

    assert choose_accelerator("auto", facts, probe) == "tcg"
    assert probes == []
    assert any("kvm_pvm" in reason for reason in facts.kvm_blockers)


def test_no_vmx_or_svm_gets_tcg(tmp_path: Path) -> None:
    facts = read_host_facts(fake_host(tmp_path, NESTED_WITHOUT_VT))
    assert choose_accelerator("auto", facts, lambda: True) == "tcg"


def test_missing_dev_kvm_gets_tcg(tmp_path: Path) -> None:
    facts = read_host_facts(fake_host(tmp_path, INTEL, kvm=False))
    assert choose_accelerator("auto", facts, lambda: True) == "tcg"


def test_kvm_when_the_facts_allow_and_the_probe_guest_runs(tmp_path: Path) -> None:
    facts = read_host_facts(fake_host(tmp_path, INTEL))
    assert facts.kvm_blockers == []
    assert choose_accelerator("auto", facts, lambda: True) == "kvm"


def test_tcg_when_the_probe_guest_fails(tmp_path: Path) -> None:
    facts = read_host_facts(fake_host(tmp_path, INTEL))
    assert choose_accelerator("auto", facts, lambda: False) == "tcg"


def test_an_explicit_choice_is_honoured() -> None:
    blocked = HostFacts(cpu_virtualization=False, pvm_loaded=True, kvm_device=False)
    assert choose_accelerator("kvm", blocked, lambda: False) == "kvm"
    allowed = HostFacts(cpu_virtualization=True, pvm_loaded=False, kvm_device=True)
    assert choose_accelerator("tcg", allowed, lambda: True) == "tcg"


@pytest.mark.qemu
@pytest.mark.timeout(60)
@pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="qemu-system-x86 missing")
def test_the_probe_guest_runs_under_tcg() -> None:
    """The probe itself works: the boot sector reaches its exit port."""
    assert probe_guest_runs("qemu-system-x86_64", "tcg") is True


def test_the_probe_fails_cleanly_without_qemu() -> None:
    assert probe_guest_runs("/nonexistent/qemu-system-x86_64", "tcg") is False
