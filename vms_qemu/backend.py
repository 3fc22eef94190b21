"""The ``qemu`` backend: real virtual machines on Linux, one QEMU process per VM."""

from __future__ import annotations

import datetime
import shutil
import threading
from typing import Any

from vms_core.backend import Availability, BackendBase, VMDetail, VMInfo
from vms_core.errors import NotFoundError
from vms_core.instance import Capabilities
from vms_qemu.accel import Accelerator, resolve_accelerator
from vms_qemu.guest import guest_files, missing_build_tools
from vms_qemu.instance import CAPABILITIES, QemuInstance
from vms_qemu.options import BUILTIN_SOURCE, QemuOptions
from vms_qemu.process import kill_foreign, shut_down_foreign
from vms_qemu.vmdir import MetadataError, VMDirectory, list_directories, validate_name


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
        for binary, package in ((self.options.qemu, "qemu-system-x86"),
                                (self.options.qemu_img, "qemu-utils")):
            if shutil.which(binary) is None:
                return Availability(
                    False, f"{binary} not found; install the Debian package {package} "
                    "(apt-get install --no-install-recommends qemu-system-x86 qemu-utils)"
                )
        if self.options.source == BUILTIN_SOURCE and not guest_files(
            self.options.cache_path
        ).complete:
            missing = missing_build_tools()
            missing.pop("qemu-img", None)
            if missing:
                packages = " ".join(sorted(set(missing.values())))
                return Availability(
                    False, f"the default guest is not built and {', '.join(sorted(missing))} "
                    f"not found; install: apt-get install --no-install-recommends {packages}"
                )
        return Availability(True)

    def accelerator(self) -> Accelerator:
        """``kvm`` or ``tcg`` for this host (decided once per backend)."""
        with self._accelerator_lock:
            if self._accelerator is None:
                self._accelerator = resolve_accelerator(self.options.accelerator,
                                                        self.options.qemu)
            return self._accelerator

    def create_instance(self, name: str | None = None, source: str | None = None) -> QemuInstance:
        return QemuInstance(self, validate_name(name or self.new_name()),
                            source or self.options.source)

    def list_vms(self, prefix: str | None = None) -> list[VMInfo]:
        return [self._info(vmdir) for vmdir in list_directories(self.options.state_path, prefix)]

    def get_vm(self, name: str) -> VMDetail:
        vmdir = VMDirectory(self.options.state_path, name)
        info = self._info(vmdir)  # NotFoundError when the directory is missing
        try:
            metadata = vmdir.read_metadata()
        except MetadataError:
            return VMDetail(info=info, extras={"directory": str(vmdir.path)})
        return VMDetail(
            info=info, cpus=metadata.cpus, memory_mib=metadata.memory,
            extras={
                "directory": str(vmdir.path), "disk": metadata.disk,
                "backing": metadata.backing, "kernel": metadata.kernel,
                "initrd": metadata.initrd, "forwards": list(metadata.forwards),
                "created": metadata.created, "pid": vmdir.running_pid(),
            },
        )

    def _info(self, vmdir: VMDirectory) -> VMInfo:
        if not vmdir.exists():
            raise NotFoundError(f"no QEMU VM named {vmdir.name!r} in {vmdir.root}")
        state, word = vmdir.on_disk_state()
        try:
            source: str | None = vmdir.read_metadata().source
        except MetadataError:
            source = None
        accessed = datetime.datetime.fromtimestamp(vmdir.path.stat().st_mtime, datetime.UTC)
        return VMInfo(name=vmdir.name, state=state, backend_state=word,
                      running=word == "running", source=source, accessed=accessed)

    def _stop_for_delete(self, name: str, stop_timeout: float | None) -> None:
        shut_down_foreign(
            VMDirectory(self.options.state_path, name),
            graceful_timeout=self.options.stop_timeout if stop_timeout is None else stop_timeout,
        )

    def _delete_by_name(self, name: str) -> None:
        vmdir = VMDirectory(self.options.state_path, name)
        kill_foreign(vmdir)
        vmdir.remove()
