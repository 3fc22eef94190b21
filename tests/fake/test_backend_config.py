"""The ``fake`` backend: unusable settings are ConfigErrors; the fault plan file is live."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from vms_core import ConfigError, InvalidNameError, VMError
from vms_fake.backend import FakeBackend
from vms_fake.faults import FaultPlan

from .driver import FAKE_TART


def test_unusable_home_is_a_config_error_naming_it(tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("")
    for home in ("/proc/nonexistent-home", str(a_file)):
        with pytest.raises(ConfigError, match=r"fake\.home") as caught:
            FakeBackend(home=home)
        assert home in str(caught.value)


@pytest.mark.parametrize("text", ["{", "[]", '{"commands": [{"bogus": 1}]}', "\udcff"])
def test_invalid_fault_plan_is_a_config_error_naming_it(tmp_path: Path, text: str) -> None:
    faults = tmp_path / "faults.json"
    faults.write_bytes(text.encode("utf-8", "surrogateescape"))
    with pytest.raises(ConfigError, match="fault plan") as caught:
        FakeBackend(home=str(tmp_path / "home"), faults_file=str(faults))
    assert str(faults) in str(caught.value)


@pytest.mark.timeout(30)
def test_executable_reports_an_invalid_fault_plan(tmp_path: Path) -> None:
    faults = tmp_path / "faults.json"
    faults.write_text("{")
    completed = subprocess.run(
        [FAKE_TART, "list"],
        env={"TART_HOME": str(tmp_path / "home"), "FAKE_TART_FAULTS": str(faults)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 1
    assert completed.stderr.startswith(f"Error: the fault plan {faults} is not valid")


def test_a_name_too_long_for_a_file_is_an_invalid_name(tmp_path: Path) -> None:
    backend = FakeBackend(home=str(tmp_path / "home"))
    with pytest.raises(InvalidNameError):
        backend.create_instance("n" * 300)


def test_fault_plan_written_after_load_applies_from_the_next_command(tmp_path: Path) -> None:
    faults = tmp_path / "faults.json"
    backend = FakeBackend(home=str(tmp_path / "home"), faults_file=str(faults))
    backend.create_instance("first").clone()
    # Another process (or object) writes the plan after the backend loaded it.
    FaultPlan(faults).fail_command("clone", stderr="injected clone failure", times=None)
    with pytest.raises(VMError, match="injected clone failure"):
        backend.create_instance("second").clone()
    faults.write_text(json.dumps({}))  # and takes it back
    backend.create_instance("third").clone()
    faults.unlink()
    backend.create_instance("fourth").clone()
    assert [vm.name for vm in backend.list_vms(prefix="")] == ["first", "fourth", "third"]
