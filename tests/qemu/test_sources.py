"""Cloning your own disk image (qcow2 or raw) with your own kernel; no boot needed."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from vms_core.errors import NotFoundError
from vms_core.states import State
from vms_qemu.backend import QemuBackend
from vms_qemu.guest import GuestFiles
from vms_qemu.instance import SourceImageError

from .conftest import requires_qemu

pytestmark = [pytest.mark.qemu, requires_qemu, pytest.mark.timeout(60)]


def image_info(path: Path) -> dict[str, object]:
    output = subprocess.run(
        ["qemu-img", "info", "--output=json", str(path)], capture_output=True, text=True, check=True
    ).stdout
    return dict(json.loads(output))


@pytest.mark.parametrize("image_format", ["qcow2", "raw"])
def test_a_clone_is_an_overlay_of_your_image_with_your_kernel(
    tmp_path: Path, default_guest: GuestFiles, image_format: str
) -> None:
    image = tmp_path / f"mine.{image_format}"
    subprocess.run(["qemu-img", "create", "-q", "-f", image_format, str(image), "64M"], check=True)
    backend = QemuBackend(
        state_dir=tmp_path / "state",
        kernel=str(default_guest.kernel),
        initrd=str(default_guest.initrd),
    )
    vm = backend.create_instance(source=str(image))
    vm.clone()
    try:
        disk = vm.directory / "disk.qcow2"
        info = image_info(disk)
        assert info["format"] == "qcow2"
        assert info["backing-filename"] == str(image)
        assert info["backing-filename-format"] == image_format
        detail = backend.get_vm(vm.id)
        assert detail.extras["kernel"] == str(default_guest.kernel)
        assert detail.info.source == str(image) and detail.info.state is State.STOPPED
        assert vm.properties().clone_info.source == str(image)
        assert image_info(image)["virtual-size"] == 64 * 1024 * 1024  # the source is untouched
    finally:
        vm.delete()
    assert image.exists()


def test_a_missing_source_image_is_not_found_and_leaves_nothing(tmp_path: Path) -> None:
    backend = QemuBackend(state_dir=tmp_path)
    vm = backend.create_instance(source=str(tmp_path / "absent.qcow2"))
    with pytest.raises(NotFoundError, match=r"absent\.qcow2"):
        vm.clone()
    assert vm.state() is State.INITIAL
    assert list(tmp_path.iterdir()) == []


def test_a_file_that_is_no_bootable_disk_is_refused_at_clone(tmp_path: Path) -> None:
    """Without a kernel QEMU would boot it through the BIOS and wait out the boot timeout."""
    garbage = tmp_path / "notanimage.qcow2"
    garbage.write_text("garbage\n")
    blank = tmp_path / "blank.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(blank), "1M"], check=True)
    backend = QemuBackend(state_dir=tmp_path / "state")
    for source in (garbage, blank):
        vm = backend.create_instance(source=str(source))
        with pytest.raises(SourceImageError, match="boot sector") as caught:
            vm.clone()
        assert str(source) in str(caught.value) and "kernel" in str(caught.value)
        assert vm.state() is State.INITIAL
    assert list((tmp_path / "state").iterdir()) == []


def test_a_directory_as_source_is_a_clear_error(tmp_path: Path) -> None:
    vm = QemuBackend(state_dir=tmp_path / "state").create_instance(source=str(tmp_path))
    with pytest.raises(SourceImageError, match="is a directory"):
        vm.clone()
    assert vm.state() is State.INITIAL
