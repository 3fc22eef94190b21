"""The simulated home: where it lives, what disks cost, adding images."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vms_fake.images import Image
from vms_fake.inprocess import InProcessRunner
from vms_fake.names import UnknownReferenceFormat, parse_remote
from vms_fake.world import default_home

from .driver import MACOS, Result, Tart

pytestmark = pytest.mark.timeout(60)


def test_default_home_is_never_the_real_tart_home(tmp_path: Path) -> None:
    assert default_home({"TART_HOME": str(tmp_path)}) == tmp_path
    assert default_home({"XDG_CACHE_HOME": "/x"}) == Path("/x/vms-fake/tart")
    fallback = default_home({})
    assert ".tart" not in fallback.parts
    assert fallback == Path(os.path.expanduser("~")) / ".cache" / "vms-fake" / "tart"


def test_unusable_tart_home(executable: Tart) -> None:
    executable.env["TART_HOME"] = "/dev/null/home"
    assert executable("list") == Result(
        1,
        "",
        "TART_HOME is invalid: /dev/null/home does not exist, yet we can't create it: "
        "Not a directory\n",
    )


def test_disks_are_sparse(tart: Tart, macos: str) -> None:
    disk = tart.home / "vms" / macos / "disk.img"
    assert disk.stat().st_size == 50 * 1000**3
    assert disk.stat().st_blocks * 512 < 1024 * 1024


def test_added_images_can_be_cloned_and_run(tart: Tart) -> None:
    image = Image("registry.example.com/team/builder:v2", os="linux", disk_gb=10, memory_mib=2048)
    InProcessRunner(tart.home).home.add_image(image)
    assert tart("clone", image.name, "builder").exit_code == 0
    run = tart.spawn("run", "builder")
    assert tart("exec", "builder", "echo", "ok") == Result(0, "ok\n", "")
    assert tart("get", "builder").stdout.splitlines()[1].split()[:4] == ["linux", "4", "2048", "10"]
    tart("stop", "builder")
    run.wait()


def test_image_names_must_be_remote_tags(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="host/namespace:tag"):
        InProcessRunner(tmp_path).home.add_image(Image("local-name"))


def test_remote_name_grammar() -> None:
    remote = parse_remote("ghcr.io/cirruslabs/macos-tahoe-base")
    assert remote is not None and str(remote) == "ghcr.io/cirruslabs/macos-tahoe-base:latest"
    port = parse_remote("localhost:5000/org/vm:1.0")
    assert port is not None and port.host == "localhost:5000"
    assert parse_remote("plain-local-name") is None
    assert parse_remote("has space/x") is None  # not the grammar: a local name
    with pytest.raises(UnknownReferenceFormat):
        parse_remote("ghcr.io/x/y@md5:abc")
    assert str(parse_remote(f"{MACOS.split(':')[0]}@sha256:abc")).endswith("@sha256:abc")


def test_registry_port_is_percent_encoded_on_disk_and_decoded_in_list(tart: Tart) -> None:
    image = Image("localhost:5000/org/vm:1.0", os="linux", disk_gb=1)
    InProcessRunner(tart.home).home.add_image(image)
    assert tart("pull", image.name).exit_code == 0
    assert (tart.home / "cache" / "OCIs" / "localhost%3A5000" / "org" / "vm").is_dir()
    assert tart("list", "-q", "--source", "oci") == Result(
        0, f"localhost:5000/org/vm:1.0\nlocalhost:5000/org/vm@{image.digest}\n", ""
    )
