"""Options as keyword arguments and as a [qemu] TOML table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from vms_core.errors import ConfigError
from vms_core.plugins import load_backend, load_backend_from_config
from vms_qemu.backend import QemuBackend
from vms_qemu.options import PortForward, QemuOptions, default_state_dir


def test_the_entry_point_loads_the_backend_with_a_path_state_dir(tmp_path: Path) -> None:
    backend = load_backend("qemu", state_dir=tmp_path)
    assert isinstance(backend, QemuBackend)
    assert backend.options.state_path == tmp_path
    assert backend.capabilities.suspend and backend.create_instance().suspendable


def test_defaults_follow_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert default_state_dir() == tmp_path / "vms-qemu"
    assert QemuOptions().state_path == tmp_path / "vms-qemu"


def test_a_toml_table_configures_the_backend(tmp_path: Path) -> None:
    config = tmp_path / "vms.toml"
    config.write_text(
        'backend = "qemu"\n[qemu]\nmemory = 512\ncpus = 2\naccelerator = "tcg"\n'
        f'state_dir = "{tmp_path}"\nboot_timeout = 90\n'
        'forwards = ["tcp:127.0.0.1:2222-:22", "udp::0-:53"]\n'
    )
    backend = load_backend_from_config(config)
    assert isinstance(backend, QemuBackend)
    options = backend.options
    assert (options.memory, options.cpus, options.accelerator) == (512, 2, "tcg")
    assert options.boot_timeout == 90.0
    assert [f.hostfwd for f in options.port_forwards] == [
        "tcp:127.0.0.1:2222-:22",
        "udp:127.0.0.1:0-:53",
    ]


def test_unknown_option_lists_the_accepted_ones() -> None:
    with pytest.raises(ConfigError, match="memory_mb") as caught:
        QemuBackend(memory_mb=512)
    assert "accelerator" in str(caught.value) and "forwards" in str(caught.value)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"accelerator": "hvf"}, "accelerator"),
        ({"memory": 8}, "too small"),
        ({"cpus": 0}, "cpus"),
        ({"stop_timeout": 0}, "stop_timeout"),
        ({"forwards": ["2222:22"]}, "tcp:127.0.0.1:2222-:22"),
        ({"forwards": ["tcp::70000-:22"]}, "out of range"),
        ({"state_dir": 5}, "state_dir"),
        ({"memory": "256"}, "integer"),
    ],
)
def test_bad_options_raise_config_errors(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        QemuBackend(**options)


@pytest.mark.parametrize("name", ["boot_timeout", "stop_timeout", "suspend_timeout"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1.0])
def test_the_options_class_itself_rejects_timeouts_that_are_not_finite_and_positive(
    name: str, value: float
) -> None:
    """QemuOptions is public: built directly, it must not accept nan (every comparison
    with nan is false, so 'nan <= 0' let it through)."""
    changes: dict[str, Any] = {name: value}
    with pytest.raises(ConfigError, match=name):
        QemuOptions(**changes)


def test_port_forward_parsing() -> None:
    forward = PortForward.parse("tcp:0.0.0.0:8080-10.0.2.15:80")
    assert (forward.protocol, forward.host_address, forward.host_port) == ("tcp", "0.0.0.0", 8080)
    assert (forward.guest_address, forward.guest_port) == ("10.0.2.15", 80)


def test_availability_names_the_debian_package_of_a_missing_binary(tmp_path: Path) -> None:
    missing_qemu = QemuBackend(state_dir=tmp_path, qemu="/nonexistent/qemu-system-x86_64")
    availability = missing_qemu.availability()
    assert not availability and "qemu-system-x86" in availability.reason
    missing_img = QemuBackend(state_dir=tmp_path, qemu="sh", qemu_img="/nonexistent/qemu-img")
    assert "qemu-utils" in missing_img.availability().reason
