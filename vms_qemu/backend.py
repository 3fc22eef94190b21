"""The ``qemu`` backend: real virtual machines on Linux, one QEMU process per VM."""

from __future__ import annotations

import datetime
import logging
import shutil
import threading
from typing import Any

from typing_extensions import override

from vms_core.backend import Availability, BackendBase, DeleteReport, VMDetail, VMInfo
from vms_core.instance import Capabilities
from vms_qemu.accel import Accelerator, resolve_accelerator
from vms_qemu.guest import guest_files, missing_build_tools
from vms_qemu.instance import CAPABILITIES, QemuInstance
from vms_qemu.options import BUILTIN_SOURCE, QemuOptions
from vms_qemu.process import kill_foreign, shut_down_foreign
from vms_qemu.vmdir import MetadataError, VMDirectory, VMMetadata, scan, validate_name

logger = logging.getLogger(__name__)


class QemuBackend(BackendBase):
    """Clone = qcow2 overlay; start = a QEMU process; exec = the guest agent.

    ``QemuBackend(state_dir=tmp_path)`` is all a test needs; see :class:`QemuOptions`.
    """

    name = "qemu"
    Options = QemuOptions
    options: QemuOptions

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._accelerator: Accelerator | None = None
        self._accelerator_lock = threading.Lock()

    @property
    def default_source(self) -> str:
        return self.options.source

    @property
    def capabilities(self) -> Capabilities:
        return CAPABILITIES

    def availability(self) -> Availability:
        """Whether qemu and qemu-img are here, and the default guest is built or buildable."""
        for binary, package in (
            (self.options.qemu, "qemu-system-x86"),
            (self.options.qemu_img, "qemu-utils"),
        ):
            if shutil.which(binary) is None:
                return Availability(
                    False,
                    f"{binary} not found; install the Debian package {package} "
                    "(apt-get install --no-install-recommends qemu-system-x86 qemu-utils)",
                )
        if (
            self.options.source == BUILTIN_SOURCE
            and not guest_files(self.options.cache_path).complete
        ):
            missing = missing_build_tools()
            missing.pop("qemu-img", None)
            if missing:
                packages = " ".join(sorted(set(missing.values())))
                return Availability(
                    False,
                    f"the default guest is not built and {', '.join(sorted(missing))} "
                    f"not found; install: apt-get install --no-install-recommends {packages}",
                )
        return Availability(True)

    def accelerator(self) -> Accelerator:
        """``kvm`` or ``tcg`` for this host (decided once per backend)."""
        with self._accelerator_lock:
            if self._accelerator is None:
                self._accelerator = resolve_accelerator(self.options.accelerator, self.options.qemu)
            return self._accelerator

    def create_instance(self, name: str | None = None, source: str | None = None) -> QemuInstance:
        return QemuInstance(
            self, validate_name(name or self.new_name()), source or self.options.source
        )

    @override
    def list_vms(self, prefix: str | None = None) -> list[VMInfo]:
        """Our VMs; a directory whose ``vm.json`` is unreadable is skipped with a warning."""
        found = scan(self.options.state_path, prefix)
        for name, err in found.broken.items():
            logger.warning("skipping %s: %s", name, err)
        return [self._info(vmdir, vmdir.read_metadata()) for vmdir in found.vms]

    def get_vm(self, name: str) -> VMDetail:
        vmdir = VMDirectory(self.options.state_path, name)
        metadata = vmdir.read_metadata()  # NotFoundError, or MetadataError when unreadable
        info = self._info(vmdir, metadata)
        return VMDetail(
            info=info,
            cpus=metadata.cpus,
            memory_mib=metadata.memory,
            extras={
                "directory": str(vmdir.path),
                "disk": metadata.disk,
                "backing": metadata.backing,
                "kernel": metadata.kernel,
                "initrd": metadata.initrd,
                "forwards": list(metadata.forwards),
                "created": metadata.created,
                "pid": vmdir.running_pid(),
            },
        )

    @override
    def delete_all(
        self, prefix: str | None = None, *, stop_timeout: float | None = None
    ) -> DeleteReport:
        """Like BackendBase's; a VM whose ``vm.json`` is unreadable is left in place and
        reported as a failure (it may be a VM, but nothing proves it is ours)."""
        report = super().delete_all(prefix, stop_timeout=stop_timeout)
        prefix = self.name_prefix if prefix is None else prefix
        for name, err in scan(self.options.state_path, prefix).broken.items():
            report.failures.setdefault(
                name,
                MetadataError(
                    f"{name} not deleted: {err}; remove {self.options.state_path / name} "
                    "by hand if it is a VM"
                ),
            )
        return report

    def _info(self, vmdir: VMDirectory, metadata: VMMetadata) -> VMInfo:
        state, word = vmdir.on_disk_state()
        accessed = datetime.datetime.fromtimestamp(vmdir.path.stat().st_mtime, datetime.UTC)
        return VMInfo(
            name=vmdir.name,
            state=state,
            backend_state=word,
            running=word == "running",
            source=metadata.source,
            accessed=accessed,
        )

    @override
    def _stop_for_delete(self, name: str, stop_timeout: float | None) -> None:
        shut_down_foreign(
            VMDirectory(self.options.state_path, name),
            graceful_timeout=self.options.stop_timeout if stop_timeout is None else stop_timeout,
        )

    @override
    def _delete_by_name(self, name: str) -> None:
        vmdir = VMDirectory(self.options.state_path, name)
        vmdir.read_metadata()  # proves it is still a VM of ours before anything is removed
        kill_foreign(vmdir)
        vmdir.remove()
