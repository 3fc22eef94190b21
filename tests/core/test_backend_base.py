"""BackendBase: the bulk delete never sweeps more than this backend's own VMs by default."""

from __future__ import annotations

import dataclasses

import pytest

from vms_core import BackendBase, ConfigError, State, VMInfo


@dataclasses.dataclass(frozen=True)
class Options:
    name_prefix: str = "vms-"


class ListedBackend(BackendBase):
    name = "listed"
    Options = Options

    def __init__(self, names: list[str], **options: str) -> None:
        super().__init__(**options)
        self.names = list(names)

    def list_vms(self, prefix: str | None = None) -> list[VMInfo]:
        return [
            VMInfo(name, State.STOPPED, "stopped", running=False)
            for name in self.names
            if prefix is None or name.startswith(prefix)
        ]

    def _stop_for_delete(self, name: str, stop_timeout: float | None) -> None:
        raise AssertionError("nothing is running")

    def _delete_by_name(self, name: str) -> None:
        self.names.remove(name)


def test_delete_all_without_a_prefix_sweeps_only_our_prefix() -> None:
    backend = ListedBackend(["vms-1", "vms-2", "precious"])
    report = backend.delete_all()
    assert report.deleted == ["vms-1", "vms-2"]
    assert backend.names == ["precious"]


def test_delete_all_refuses_an_empty_prefix() -> None:
    backend = ListedBackend(["precious"])
    with pytest.raises(ConfigError, match="every VM"):
        backend.delete_all("")
    assert backend.names == ["precious"]


def test_an_empty_name_prefix_option_is_refused() -> None:
    with pytest.raises(ConfigError, match="name_prefix"):
        ListedBackend([], name_prefix="")


def test_delete_vm_deletes_exactly_the_named_vm() -> None:
    backend = ListedBackend(["web", "web-prod"])
    backend.delete_vm("web")
    assert backend.names == ["web-prod"]
