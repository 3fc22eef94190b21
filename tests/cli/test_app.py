"""The command as a whole: version, states, error lines, --debug, exit statuses."""

from __future__ import annotations

from pathlib import Path

import pytest
from kit.memory_backend import MemoryBackend

from vms_core import (
    BackendNotInstalledError,
    BackendUnavailableError,
    CleanupError,
    ConfigError,
    InvalidNameError,
    NotFoundError,
    OperationTimeoutError,
    State,
)
from vms_core.cli.exit_status import ExitStatus, exit_status_for, guest_exit_status
from vms_core.render import render

from .conftest import Vms


def test_version(vms: Vms) -> None:
    from vms_core import __version__

    outcome = vms("--version")
    assert (outcome.status, outcome.out) == (0, f"vms {__version__}\n")


@pytest.mark.parametrize("fmt", ["text", "mermaid", "dot"])
def test_states_prints_the_rendered_table(vms: Vms, fmt: str) -> None:
    assert vms("states", "--format", fmt).out == render(fmt)


def test_an_unknown_backend_is_one_line_and_status_3(vms: Vms) -> None:
    outcome = vms("run", "--backend", "nope", "--", "true")
    assert outcome.status == ExitStatus.BACKEND_UNAVAILABLE == 3
    assert outcome.error_lines == [
        "vms: error: no backend named 'nope'; installed backends: fake, qemu, tart"
    ]
    assert "Traceback" not in outcome.err


def test_a_bad_config_file_is_status_4(vms: Vms, tmp_path: pytest.TempPathFactory) -> None:
    outcome = vms("list", "--config", "/nonexistent/vms.toml")
    assert outcome.status == ExitStatus.CONFIG == 4
    assert outcome.error_lines == ["vms: error: config file '/nonexistent/vms.toml' does not exist"]


def test_debug_adds_the_traceback_and_log_records(vms: Vms) -> None:
    outcome = vms("--debug", "run", "--backend", "nope", "--", "true")
    assert outcome.status == 3
    assert "Traceback (most recent call last)" in outcome.err
    assert outcome.err.rstrip().endswith("installed backends: fake, qemu, tart")


def test_an_internal_error_says_so_and_exits_1(
    vms: Vms, memory: MemoryBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_list(prefix: str | None = None) -> list[object]:
        raise TypeError("a bug")

    monkeypatch.setattr(memory, "list_vms", broken_list)
    outcome = vms("list", "--backend", "memory")
    assert outcome.status == ExitStatus.INTERNAL_ERROR
    assert outcome.error_lines == [
        "vms: error: internal error: TypeError: a bug (run with --debug for the traceback)"
    ]


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (KeyboardInterrupt(), 130),
        (BackendNotInstalledError("x"), 3),
        (BackendUnavailableError("x"), 3),
        (InvalidNameError("x"), 2),
        (ConfigError("x"), 4),
        (CleanupError("x", State.STOPPED), 6),
        (OperationTimeoutError("x"), 124),
        (NotFoundError("x"), 5),
        # The host refused (a name too long for its filesystem, a full disk): not a vms bug.
        (OSError(36, "File name too long"), 5),
        (ValueError("x"), 1),
    ],
)
def test_each_error_has_its_documented_status(error: BaseException, status: int) -> None:
    assert exit_status_for(error) == status


@pytest.mark.parametrize(("code", "status"), [(0, 0), (3, 3), (-9, 137), (-2, 130), (300, 255)])
def test_guest_exit_codes_become_shell_statuses(code: int, status: int) -> None:
    assert guest_exit_status(code) == status


def test_debug_logs_the_lifecycle_and_restores_logging(vms: Vms, memory: MemoryBackend) -> None:
    import logging

    level = logging.getLogger().level
    outcome = vms("--debug", "run", "--backend", "memory", "--name", "mem-d", "--", "true")
    assert outcome.status == 0
    assert "vms: DEBUG vms_core.guard: mem-d: Initial -> Cloning" in outcome.err
    assert logging.getLogger().level == level
    assert "DEBUG" not in vms("run", "--backend", "memory", "--", "true").err


def test_a_reader_that_goes_away_ends_quietly_with_141(
    vms: Vms, memory: MemoryBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io
    import sys

    class ClosedPipe(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    memory.tool.clone("memory-image", "mem-a")
    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    outcome = vms("list", "--backend", "memory")
    assert outcome.status == 141
    assert outcome.error_lines == []


def test_every_exit_status_is_documented() -> None:
    import re
    from pathlib import Path

    from vms_core.cli.app import EPILOG

    reference = Path(__file__).parents[2] / "docs" / "cli.md"
    documented = {int(n) for n in re.findall(r"^\| (\d+) \|", reference.read_text(), re.M)}
    assert documented == {int(status) for status in ExitStatus}
    for status in ExitStatus:
        assert f"{int(status)} " in EPILOG


@pytest.mark.timeout(60)
def test_importing_the_library_does_not_import_the_command() -> None:
    import subprocess
    import sys

    check = (
        "import sys, vms_core; "
        "print(sorted(m for m in sys.modules if m.startswith('vms_core.cli')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, check=True
    )
    assert result.stdout == "[]\n"


@pytest.mark.parametrize(
    ("config_text", "status"),
    [
        # The fake's home cannot be created: a bad option value in the config file.
        ('backend = "fake"\n[fake]\nhome = "/proc/nonexistent/home"\n', ExitStatus.CONFIG),
        # A faults file that is not JSON.
        ('backend = "fake"\n[fake]\nfaults_file = "{bad_json}"\n', ExitStatus.CONFIG),
    ],
    ids=["unusable-home", "faults-file-not-json"],
)
def test_a_backend_that_cannot_be_set_up_from_its_config_is_one_line(
    vms: Vms, tmp_path: Path, config_text: str, status: ExitStatus
) -> None:
    bad_json = tmp_path / "faults.json"
    bad_json.write_text("{")
    config = tmp_path / "vms.toml"
    config.write_text(config_text.replace("{bad_json}", str(bad_json)))
    outcome = vms("run", "--config", str(config), "--", "true")
    assert outcome.status == status, outcome.err
    [line] = outcome.error_lines
    assert "internal error" not in line


def test_a_constructor_failing_on_config_options_names_the_file(
    vms: Vms, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vms_core.cli import selection

    def broken(name: str, **options: object) -> object:
        raise ValueError("Expecting value: line 1 column 1 (char 0)")  # e.g. a JSON file it reads

    monkeypatch.setattr(selection, "load_backend", broken)
    config = tmp_path / "vms.toml"
    config.write_text('backend = "fake"\n[fake]\nfaults_file = "plan.json"\n')
    outcome = vms("list", "--config", str(config))
    assert outcome.status == ExitStatus.CONFIG
    assert outcome.error_lines == [
        f"vms: error: backend fake could not be set up with the options from config file "
        f"{config}: ValueError: Expecting value: line 1 column 1 (char 0)"
    ]


def test_a_backend_whose_constructor_fails_without_options_is_status_3(
    vms: Vms, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vms_core.cli import selection

    def broken(name: str, **options: object) -> object:
        raise OSError(13, "Permission denied", "/var/lib/vms")

    monkeypatch.setattr(selection, "load_backend", broken)
    outcome = vms("list", "--backend", "fake")
    assert outcome.status == ExitStatus.BACKEND_UNAVAILABLE
    assert outcome.error_lines == [
        "vms: error: backend fake could not be set up: PermissionError: "
        "[Errno 13] Permission denied: '/var/lib/vms'"
    ]


@pytest.mark.parametrize("seconds", ["nan", "inf", "-inf", "0", "-1", "soon"])
def test_timeout_must_be_a_finite_positive_number(
    vms: Vms, memory: MemoryBackend, seconds: str
) -> None:
    outcome = vms("run", "--backend", "memory", "--timeout", seconds, "--", "true")
    assert outcome.status == ExitStatus.USAGE, outcome.err
    assert "--timeout" in outcome.err
    assert memory.tool.vms == {} and memory.tool.commands == []


@pytest.mark.parametrize("command", ["list", "delete"])
def test_an_empty_backend_name_is_a_usage_error(vms: Vms, command: str) -> None:
    outcome = vms(command, "--backend", "", "--prefix", "vms-")
    assert outcome.status == ExitStatus.USAGE
    assert "--backend" in outcome.err


def test_an_empty_command_is_a_usage_error_before_any_vm(vms: Vms, memory: MemoryBackend) -> None:
    outcome = vms("run", "--backend", "memory", "--", "", "arg")
    assert outcome.status == ExitStatus.USAGE
    assert "empty" in outcome.err
    assert memory.tool.commands == []


def test_backend_flag_wins_over_a_broken_vms_config(
    vms: Vms, memory: MemoryBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VMS_CONFIG", "/nonexistent/vms.toml")
    outcome = vms("run", "--backend", "memory", "--", "echo", "hi")
    assert (outcome.status, outcome.out) == (0, "hi\n"), outcome.err
    assert "VMS_CONFIG=/nonexistent/vms.toml ignored" in outcome.err


def test_backends_does_not_offer_an_uninstalled_default(
    vms: Vms, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VMS_BACKEND", "nope")
    outcome = vms("backends")
    assert outcome.status == 0
    [default] = [line for line in outcome.out.splitlines() if line.startswith("default:")]
    assert default == "default: none (backend 'nope', chosen by VMS_BACKEND, is not installed)"
