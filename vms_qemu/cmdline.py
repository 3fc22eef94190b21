"""The QEMU command line of one VM (an argv list; nothing goes through a shell)."""

from __future__ import annotations

from collections.abc import Sequence

from vms_qemu.accel import Accelerator
from vms_qemu.options import PortForward
from vms_qemu.vmdir import VMDirectory, VMMetadata

#: The guest agent's well-known virtio-serial port name.
AGENT_PORT_NAME = "org.qemu.guest_agent.0"
#: The address the guest has on QEMU's user-mode network.
GUEST_ADDRESS = "10.0.2.15"


def qemu_argv(
    *,
    qemu: str,
    accelerator: Accelerator,
    metadata: VMMetadata,
    vmdir: VMDirectory,
    forwards: Sequence[PortForward] = (),
    incoming_fd: int | None = None,
) -> list[str]:
    """The argv that boots ``metadata``'s VM, or restores it from ``incoming_fd``.

    ``-no-reboot`` makes a guest reboot end QEMU; ``-nodefaults`` keeps only the
    devices listed here; ``-pidfile`` is what other processes find the VM by.
    """
    argv = [
        qemu,
        "-name",
        metadata.name,
        "-accel",
        accelerator,
        "-machine",
        "pc",
        "-m",
        str(metadata.memory),
        "-smp",
        str(metadata.cpus),
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
        "-pidfile",
        str(vmdir.pidfile),
        "-chardev",
        f"file,id=serial0,path={_escape(vmdir.serial_log)}",
        "-serial",
        "chardev:serial0",
        "-qmp",
        f"unix:{_escape(vmdir.qmp_socket)},server=on,wait=off",
        "-device",
        "virtio-serial-pci,id=virtio-serial0",
        "-chardev",
        f"socket,id=agent0,path={_escape(vmdir.agent_socket)},server=on,wait=off",
        "-device",
        f"virtserialport,bus=virtio-serial0.0,chardev=agent0,name={AGENT_PORT_NAME}",
        "-drive",
        f"file={_escape(metadata.disk)},if=none,id=disk0,format=qcow2",
        "-device",
        "virtio-blk-pci,drive=disk0",
        "-netdev",
        ",".join(["user", "id=net0", *(f"hostfwd={f.hostfwd}" for f in forwards)]),
        # romfile= skips the iPXE option ROM: the guest never boots from the network.
        "-device",
        "virtio-net-pci,netdev=net0,romfile=",
    ]
    if metadata.kernel:
        argv += ["-kernel", metadata.kernel]
        if metadata.initrd:
            argv += ["-initrd", metadata.initrd]
        if metadata.kernel_args:
            argv += ["-append", metadata.kernel_args]
    if incoming_fd is not None:
        # -S: stay paused after the state is loaded, so the caller decides when to continue.
        argv += ["-S", "-incoming", f"fd:{incoming_fd}"]
    return argv


def _escape(path: object) -> str:
    # In QEMU's option syntax a comma inside a value is escaped by doubling it.
    return str(path).replace(",", ",,")
