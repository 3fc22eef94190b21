"""``vms backends``, ``vms list`` and ``vms delete``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kit.memory_backend import MemoryBackend
from throwaway_plugins import PROBE_BACKEND_SOURCE, install_backends

from vms_core.cli.exit_status import ExitStatus

from .conftest import Vms

PLUGIN_MODULE = (
    PROBE_BACKEND_SOURCE
    + """
class CrashingBackend(BackendBase):
    name = "crashing"
    Options = Options

    def __init__(self, **options):
        raise RuntimeError("plugin bug")
"""
)


@pytest.fixture
def plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Installed entry points: one unavailable, one failing to import, one crashing."""
    install_backends(
        tmp_path,
        monkeypatch,
        module_name="vms_cli_probe_plugin",
        module_source=PLUGIN_MODULE,
        entry_points={
            "probe": "vms_cli_probe_plugin:ProbeBackend",
            "crashing": "vms_cli_probe_plugin:CrashingBackend",
            "broken": "vms_no_such_module_xyz:Backend",
        },
    )


def test_backends_reports_each_plugin_and_survives_broken_ones(vms: Vms, plugins: None) -> None:
    outcome = vms("backends", "--json")
    assert outcome.status == 0
    rows = {row["name"]: row for row in json.loads(outcome.out)}
    assert rows["probe"] == {
        "name": "probe",
        "available": False,
        "reason": "probe tool not found",
        "default_source": "probe-image",
    }
    assert rows["broken"]["available"] is False
    assert "failed to import" in rows["broken"]["reason"]
    assert rows["crashing"]["reason"] == "failed: RuntimeError: plugin bug"
    assert {"fake", "tart", "qemu"} <= set(rows)


def test_backends_by_name_loads_only_those(vms: Vms, plugins: None) -> None:
    outcome = vms("backends", "probe")
    assert outcome.status == 0
    lines = outcome.out.splitlines()
    assert lines[0] == "probe  unavailable: probe tool not found"
    assert len(lines) == 2  # no other backend was loaded or reported
    # The last line says what `vms run` would pick here (no VMS_* set, no tart on PATH).
    assert lines[-1].startswith("default: backend ")


def test_list_shows_the_backends_vms_by_its_prefix(vms: Vms, memory: MemoryBackend) -> None:
    memory.tool.clone("memory-image", "mem-a")
    memory.tool.clone("memory-image", "mine")
    outcome = vms("list", "--backend", "memory")
    assert outcome.status == 0
    assert outcome.out == "NAME   STATE    SOURCE\nmem-a  Stopped  memory-image\n"
    # An empty prefix lists everything.
    assert "mine" in vms("list", "--backend", "memory", "--prefix", "").out


def test_list_json(vms: Vms, memory: MemoryBackend) -> None:
    memory.tool.clone("memory-image", "mem-a")
    memory.tool.run("mem-a")
    outcome = vms("list", "--backend", "memory", "--json")
    assert json.loads(outcome.out) == [
        {
            "name": "mem-a",
            "state": "Running",
            "backend_state": "running",
            "running": True,
            "source": "memory-image",
            "accessed": None,
        }
    ]


def test_list_of_nothing_prints_nothing(vms: Vms, memory: MemoryBackend) -> None:
    outcome = vms("list", "--backend", "memory")
    assert (outcome.status, outcome.out) == (0, "")
    assert json.loads(vms("list", "--backend", "memory", "--json").out) == []


def test_delete_sweeps_running_and_stopped_vms_by_prefix(vms: Vms, memory: MemoryBackend) -> None:
    for name in ("ci-1", "ci-2", "keep-me"):
        memory.tool.clone("memory-image", name)
    memory.tool.run("ci-1")
    outcome = vms("delete", "--backend", "memory", "--prefix", "ci-")
    assert outcome.status == 0
    assert outcome.out == "deleted ci-1\ndeleted ci-2\n"
    assert list(memory.tool.vms) == ["keep-me"]


def test_delete_carries_on_past_a_failure_and_exits_5(vms: Vms, memory: MemoryBackend) -> None:
    for name in ("ci-1", "ci-2"):
        memory.tool.clone("memory-image", name)
    memory.tool.fail_next("delete", "ci-1")
    outcome = vms("delete", "--backend", "memory", "--prefix", "ci-")
    assert outcome.status == ExitStatus.VM_OPERATION_FAILED
    assert outcome.out == "deleted ci-2\n"
    assert "vms: failed to delete ci-1:" in outcome.err
    assert list(memory.tool.vms) == ["ci-1"]


def test_delete_refuses_an_empty_prefix(vms: Vms, memory: MemoryBackend) -> None:
    memory.tool.clone("memory-image", "mine")
    outcome = vms("delete", "--backend", "memory", "--prefix", "")
    assert outcome.status == ExitStatus.USAGE
    assert "non-empty --prefix" in outcome.err
    assert list(memory.tool.vms) == ["mine"]


def test_delete_by_name_deletes_exactly_the_vms_named(vms: Vms, memory: MemoryBackend) -> None:
    for name in ("web", "web-prod", "db"):
        memory.tool.clone("memory-image", name)
    memory.tool.run("web")
    outcome = vms("delete", "--backend", "memory", "web", "db")
    assert (outcome.status, outcome.out) == (0, "deleted web\ndeleted db\n"), outcome.err
    assert list(memory.tool.vms) == ["web-prod"]


def test_delete_of_a_name_that_does_not_exist_says_so_and_exits_5(
    vms: Vms, memory: MemoryBackend
) -> None:
    memory.tool.clone("memory-image", "web-prod")
    outcome = vms("delete", "--backend", "memory", "web")
    assert outcome.status == ExitStatus.VM_OPERATION_FAILED
    assert "vms: failed to delete web: no VM named 'web' on backend memory" in outcome.err
    assert list(memory.tool.vms) == ["web-prod"]


@pytest.mark.parametrize("arguments", [(), ("web", "--prefix", "web")], ids=["neither", "both"])
def test_delete_takes_names_or_a_prefix(
    vms: Vms, memory: MemoryBackend, arguments: tuple[str, ...]
) -> None:
    memory.tool.clone("memory-image", "web")
    outcome = vms("delete", "--backend", "memory", *arguments)
    assert outcome.status == ExitStatus.USAGE
    assert list(memory.tool.vms) == ["web"]


def test_ctrl_c_during_delete_says_what_was_deleted_and_what_is_left(
    vms: Vms, memory: MemoryBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("ci-1", "ci-2", "ci-3"):
        memory.tool.clone("memory-image", name)
    real_delete = memory.tool.delete

    def delete(name: str) -> None:
        if name == "ci-2":
            raise KeyboardInterrupt
        real_delete(name)

    monkeypatch.setattr(memory.tool, "delete", delete)
    outcome = vms("delete", "--backend", "memory", "--prefix", "ci-")
    assert outcome.status == ExitStatus.INTERRUPTED
    assert outcome.out == "deleted ci-1\n"
    assert "vms: interrupted: deleted ci-1; not deleted: ci-2, ci-3" in outcome.err
    assert outcome.error_lines == ["vms: error: interrupted"]
