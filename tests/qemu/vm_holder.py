"""A separate process that drives a VM, for tests of Ctrl-C, exit and cross-process cleanup.

Usage: python vm_holder.py interrupt|hold STATE_DIR
- interrupt: clone and start inside ``running()``; the test sends SIGINT during the boot.
- hold: clone and start, print "READY <name> <pid>", then on a stdin line exit without
  stopping the VM (the interpreter-exit hook must kill QEMU).
"""

from __future__ import annotations

import logging
import signal
import sys

from vms_core.lifecycle import running
from vms_qemu.backend import QemuBackend


def main() -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    # A shell's background job starts with SIGINT ignored, and Python then keeps it
    # ignored; the test needs Ctrl-C to raise KeyboardInterrupt as in a terminal.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    mode, state_dir = sys.argv[1], sys.argv[2]
    backend = QemuBackend(state_dir=state_dir)
    vm = backend.create_instance()
    if mode == "interrupt":
        with running(vm):
            print("BOOTED: the interrupt came too late", flush=True)
        return 0
    vm.clone()
    vm.start()
    print(f"READY {vm.id} {vm.pid}", flush=True)
    sys.stdin.readline()
    return 0


if __name__ == "__main__":
    sys.exit(main())
