"""What exec accepts: arguments a process can receive, text or bytes on stdin; typed errors else."""

from __future__ import annotations

import pytest

from vms_core import InvalidNameError, VMError

from .conftest import World

pytestmark = pytest.mark.timeout(120)

UBUNTU = "ghcr.io/cirruslabs/ubuntu:latest"


def test_exec_arguments_bytes_and_output_policy(world: World) -> None:
    backend, runner = world.backend(os="linux", source=UBUNTU)
    vm = backend.create_instance("vm")
    vm.clone()
    vm.start()
    try:
        before = len(runner.calls)
        with pytest.raises(InvalidNameError, match="argument 2 contains NUL"):
            vm.exec("echo", "a", "b\0c")
        assert len(runner.calls) == before  # refused before any command
        # Bytes in, the same bytes out (non-UTF-8 output keeps its bytes as surrogates).
        raw = b"\xff\xfe\x00abc\n"
        result = vm.exec("cat", stdin=raw)
        assert result.stdout.encode("utf-8", "surrogateescape") == raw
        result = vm.exec("sh", "-c", r"printf '\377x' >&2")
        assert result.stderr.encode("utf-8", "surrogateescape") == b"\xffx"
        if world.mode == "executable":
            with pytest.raises(VMError, match="Argument list too long"):
                vm.exec("echo", "x" * 200_000)
        else:  # the guest cannot start it: the guest's answer, exit 1
            assert vm.exec("echo", "-e", "x" * 200_000).exit_code == 1
    finally:
        vm.stop()
        vm.delete()
