"""VM directories as other processes see them: metadata, pidfile checks, derived state."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from vms_core.errors import InvalidNameError, NotFoundError, VMError
from vms_core.states import State
from vms_core.waiting import poll_until
from vms_qemu.backend import QemuBackend
from vms_qemu.cmdline import qemu_argv
from vms_qemu.options import PortForward
from vms_qemu.process import kill_foreign
from vms_qemu.vmdir import MetadataError, VMDirectory, VMMetadata, list_directories


def metadata(vmdir: VMDirectory) -> VMMetadata:
    return VMMetadata(
        name=vmdir.name,
        source="builtin",
        disk=str(vmdir.disk),
        backing="/cache/base.qcow2",
        kernel="/cache/vmlinuz",
        initrd="/cache/initrd.gz",
        kernel_args="console=ttyS0",
        memory=256,
        cpus=1,
        forwards=("tcp:127.0.0.1:2222-:22",),
        created="now",
    )


def make_vm(root: Path, name: str) -> VMDirectory:
    """A complete cloned VM as clone leaves it: vm.json and the disk."""
    directory = VMDirectory(root, name)
    directory.create()
    directory.write_metadata(metadata(directory))
    directory.disk.write_bytes(b"")
    return directory


@pytest.fixture
def vmdir(tmp_path: Path) -> VMDirectory:
    return make_vm(tmp_path, "vm-1")


@pytest.fixture
def impostor(vmdir: VMDirectory) -> Iterator[subprocess.Popen[bytes]]:
    """A process whose command line names the VM's pidfile, as QEMU's does."""
    process = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()", "-pidfile", str(vmdir.pidfile)],
        stdin=subprocess.PIPE,
    )
    # Popen returns once exec has begun; the new command line shows up a moment later.
    poll_until(
        lambda: b"-pidfile" in Path(f"/proc/{process.pid}/cmdline").read_bytes() or None,
        timeout=10,
        what="the impostor's command line",
    )
    yield process
    process.kill()
    process.wait()


@pytest.mark.parametrize("name", ["", "../x", "a/b", "-rf", "x" * 65, "a b"])
def test_names_that_would_escape_or_confuse_are_rejected(tmp_path: Path, name: str) -> None:
    with pytest.raises(InvalidNameError):
        VMDirectory(tmp_path, name)


def test_metadata_round_trips(vmdir: VMDirectory) -> None:
    assert vmdir.read_metadata() == metadata(vmdir)


def test_a_second_clone_of_the_same_name_is_refused(vmdir: VMDirectory) -> None:
    with pytest.raises(InvalidNameError, match="already exists"):
        VMDirectory(vmdir.root, vmdir.name).create()


def test_missing_and_incomplete_vms(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        VMDirectory(tmp_path, "absent").read_metadata()
    # Clone writes vm.json first and the disk last: a clone cut short has no disk.
    partial = VMDirectory(tmp_path, "partial")
    partial.create()
    partial.write_metadata(metadata(partial))
    assert partial.on_disk_state() == (State.ERROR_UNKNOWN, "incomplete")
    backend = QemuBackend(state_dir=tmp_path)
    assert [(i.name, i.state) for i in backend.list_vms()] == [("partial", State.ERROR_UNKNOWN)]
    assert backend.delete_all("partial").deleted == ["partial"] and not partial.exists()


def test_directories_without_vm_json_are_not_ours_and_never_touched(tmp_path: Path) -> None:
    (tmp_path / "mydata").mkdir()
    (tmp_path / "mydata" / "file").write_text("precious")
    (tmp_path / "vms-empty").mkdir()
    backend = QemuBackend(state_dir=tmp_path)
    assert backend.list_vms() == []
    report = backend.delete_all("my")
    assert (report.deleted, report.failures) == ([], {})
    assert backend.delete_all().deleted == []
    assert (tmp_path / "mydata" / "file").read_text() == "precious"
    assert (tmp_path / "vms-empty").is_dir()
    with pytest.raises(NotFoundError, match="mydata"):
        backend.get_vm("mydata")


@pytest.mark.parametrize("content", ["[]", "{", '{"name": 5}', "{}", '"x"', "\xff\xfe"])
def test_a_bad_vm_json_is_skipped_with_a_warning_and_reported_by_delete_all(
    tmp_path: Path, content: str, caplog: pytest.LogCaptureFixture
) -> None:
    good = make_vm(tmp_path, "vms-good")
    broken = tmp_path / "vms-broken"
    broken.mkdir()
    (broken / "vm.json").write_bytes(content.encode("latin-1"))
    backend = QemuBackend(state_dir=tmp_path)
    with caplog.at_level("WARNING", logger="vms_qemu"):
        assert [info.name for info in backend.list_vms()] == ["vms-good"]
    assert "vms-broken" in caplog.text and "vm.json" in caplog.text
    with pytest.raises(MetadataError, match=r"vm\.json"):
        backend.get_vm("vms-broken")
    assert backend.get_vm("vms-good").info.state is State.STOPPED
    report = backend.delete_all("vms-")
    assert report.deleted == ["vms-good"]
    assert list(report.failures) == ["vms-broken"]
    assert "vm.json" in str(report.failures["vms-broken"])
    assert (broken / "vm.json").exists() and not good.exists()


def test_state_from_disk_stopped_then_suspended(vmdir: VMDirectory) -> None:
    assert vmdir.on_disk_state() == (State.STOPPED, "stopped")
    vmdir.suspend_state.write_bytes(b"state")
    assert vmdir.on_disk_state() == (State.SUSPENDED, "suspended")


def test_running_needs_a_live_process_with_this_pidfile(
    vmdir: VMDirectory, impostor: subprocess.Popen[bytes]
) -> None:
    vmdir.pidfile.write_text(f"{impostor.pid}\n")
    assert vmdir.running_pid() == impostor.pid
    assert vmdir.on_disk_state() == (State.RUNNING, "running")


def test_a_recycled_pid_is_not_mistaken_for_the_vm(vmdir: VMDirectory) -> None:
    """The pidfile names a live process that is not this VM's QEMU: never signal it."""
    stranger = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        vmdir.pidfile.write_text(str(stranger.pid))
        assert vmdir.running_pid() is None
        kill_foreign(vmdir)
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


def test_kill_foreign_kills_the_verified_process(
    vmdir: VMDirectory, impostor: subprocess.Popen[bytes]
) -> None:
    vmdir.pidfile.write_text(str(impostor.pid))
    kill_foreign(vmdir)
    assert impostor.wait(10) == -9


def test_backend_lists_and_deletes_by_prefix(tmp_path: Path) -> None:
    for name in ("vms-a", "vms-b", "other"):
        make_vm(tmp_path, name)
    (tmp_path / "not a vm").mkdir()
    backend = QemuBackend(state_dir=tmp_path)
    assert [info.name for info in backend.list_vms("vms-")] == ["vms-a", "vms-b"]
    detail = backend.get_vm("vms-a")
    assert (detail.cpus, detail.memory_mib, detail.info.state) == (1, 256, State.STOPPED)
    assert detail.info.source == "builtin"
    report = backend.delete_all("vms-")
    assert report.ok and sorted(report.deleted) == ["vms-a", "vms-b"]
    assert [d.name for d in list_directories(tmp_path)] == ["other"]
    with pytest.raises(NotFoundError):
        backend.get_vm("vms-a")


def test_long_state_dirs_put_sockets_in_a_short_directory(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    vmdir = VMDirectory(deep, "vm")
    assert len(str(vmdir.qmp_socket)) < 108
    assert vmdir.socket_dir != vmdir.path
    assert VMDirectory(deep, "vm").socket_dir == vmdir.socket_dir  # stable across processes


@pytest.fixture
def private_tmp(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A short TMPDIR of the test's own (socket paths must stay under 108 bytes)."""
    with tempfile.TemporaryDirectory(prefix="vq-") as temp:
        monkeypatch.setattr(tempfile, "tempdir", temp)
        yield Path(temp)


def deep_vm(tmp_path: Path) -> VMDirectory:
    vmdir = VMDirectory(tmp_path / ("d" * 60) / ("e" * 60), "vm")
    assert vmdir.socket_dir != vmdir.path
    return vmdir


def test_socket_fallback_directories_are_private_and_removed_with_the_vm(
    tmp_path: Path, private_tmp: Path
) -> None:
    vmdir = deep_vm(tmp_path)
    vmdir.create()
    vmdir.prepare_sockets()
    shared = private_tmp / f"vms-qemu-{os.getuid()}"
    assert vmdir.socket_dir.parent == shared
    for directory in (shared, vmdir.socket_dir):
        assert stat.S_IMODE(directory.lstat().st_mode) == 0o700
    vmdir.remove()
    assert list(private_tmp.iterdir()) == []  # the per-user directory too, once empty


def test_a_planted_symlink_for_the_socket_directory_is_refused(
    tmp_path: Path, private_tmp: Path
) -> None:
    elsewhere = tmp_path / "attacker"
    elsewhere.mkdir()
    (private_tmp / f"vms-qemu-{os.getuid()}").symlink_to(elsewhere)
    vmdir = deep_vm(tmp_path)
    vmdir.create()
    with pytest.raises(VMError, match="symlink"):
        vmdir.prepare_sockets()
    vmdir.remove()
    assert list(elsewhere.iterdir()) == []


def test_a_socket_directory_owned_by_another_user_is_refused(
    tmp_path: Path, private_tmp: Path
) -> None:
    shared = private_tmp / f"vms-qemu-{os.getuid()}"
    shared.mkdir(mode=0o777)
    if os.getuid() != 0:
        pytest.skip("only root can give a directory to another user")
    os.chown(shared, 12345, 12345)
    vmdir = deep_vm(tmp_path)
    vmdir.create()
    with pytest.raises(VMError, match="12345"):
        vmdir.prepare_sockets()


def test_command_line(vmdir: VMDirectory) -> None:
    argv = qemu_argv(
        qemu="qemu-system-x86_64",
        accelerator="tcg",
        metadata=metadata(vmdir),
        vmdir=vmdir,
        forwards=[PortForward.parse("tcp:127.0.0.1:2222-:22")],
        incoming_fd=7,
    )
    assert argv[argv.index("-pidfile") + 1] == str(vmdir.pidfile)
    assert argv[argv.index("-accel") + 1] == "tcg"
    assert "user,id=net0,hostfwd=tcp:127.0.0.1:2222-:22" in argv
    assert argv[-3:] == ["-S", "-incoming", "fd:7"]
    assert argv[argv.index("-kernel") + 1] == "/cache/vmlinuz"


def test_commas_in_paths_are_escaped_for_qemu_options(tmp_path: Path) -> None:
    vmdir = VMDirectory(tmp_path / "a,b", "vm")
    argv = qemu_argv(qemu="q", accelerator="tcg", metadata=metadata(vmdir), vmdir=vmdir)
    drive = argv[argv.index("-drive") + 1]
    assert drive.startswith(f"file={str(vmdir.disk).replace(',', ',,')},if=none")
    assert "-incoming" not in argv


def test_delete_of_a_never_cloned_instance_touches_nothing(vmdir: VMDirectory) -> None:
    """The name may belong to a VM someone else cloned: its files must survive."""
    instance = QemuBackend(state_dir=vmdir.root).create_instance(vmdir.name)
    with pytest.raises(NotFoundError, match="never cloned"):
        instance.delete()
    assert instance.state() is State.INITIAL
    assert vmdir.read_metadata().name == vmdir.name
