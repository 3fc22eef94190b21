"""Listing, error mapping, options and the backend's provider operations."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest

from vms_core import (
    BackendCommandError,
    ConfigError,
    NotFoundError,
    NotRunningError,
    State,
    VMDiedError,
    load_backend,
    load_backend_from_config,
)
from vms_core.errors import AlreadyRunningError, InvalidNameError
from vms_tart.backend import TartBackend
from vms_tart.config import TartOptions
from vms_tart.errors import (
    AgentUnreachableError,
    NoIPAddressError,
    VMLimitError,
    VMRunningError,
    command_error,
    run_exit_error,
)
from vms_tart.listing import ListEntries, ListEntry, parse_list_output, to_state
from vms_tart.runner import seconds_text
from vms_tart.subprocess_runner import SubprocessRunner

from .doubles import ScriptedRunner

LIST_JSON = """[
  {"Source" : "local", "Name" : "macos", "Disk" : 50, "Size" : 22,
   "Accessed" : "2026-08-18T09:12:44Z", "Running" : false, "State" : "suspended"},
  {"Source" : "OCI", "Name" : "ghcr.io\\/cirruslabs\\/ubuntu:latest", "Disk" : 20, "Size" : 1,
   "Accessed" : "2026-08-18T09:12:44Z", "Running" : false, "State" : "stopped"},
  {"Source" : "local", "Name" : "ghcr.io\\/cirruslabs\\/ubuntu:latest", "Disk" : 20, "Size" : 1,
   "Accessed" : "2026-08-18T09:12:44Z", "Running" : true, "State" : "running"}
]"""


def test_list_output_parses_to_typed_entries_with_lookups() -> None:
    entries = parse_list_output(("tart", "list"), LIST_JSON)
    assert len(entries) == 3
    macos = entries.lookup("macos")
    assert macos == ListEntry(
        name="macos",
        source="local",
        tart_state="suspended",
        running=False,
        disk_gb=50,
        size_gb=22,
        accessed=datetime.datetime(2026, 8, 18, 9, 12, 44, tzinfo=datetime.UTC),
    )
    assert macos.state is State.SUSPENDED
    image = "ghcr.io/cirruslabs/ubuntu:latest"
    assert entries.lookup(image) is not None and entries.lookup(image).source == "OCI"  # type: ignore[union-attr]
    local = entries.lookup_source_name("local", image)
    assert local is not None and local.state is State.RUNNING
    assert entries.lookup_source_name("oci", image) is entries[1]
    assert [e.name for e in entries.local()] == ["macos", image]
    assert entries.lookup("nope") is None


@pytest.mark.parametrize(
    ("word", "state"),
    [
        ("running", State.RUNNING),
        ("suspended", State.SUSPENDED),
        ("stopped", State.STOPPED),
        ("deleted", State.DELETED),
        ("weird", State.INITIAL),
    ],
)
def test_tart_state_words(word: str, state: State) -> None:
    assert to_state(word) is state


@pytest.mark.parametrize("text", ["{not json", '{"Name": "x"}', '[{"State": "running"}]'])
def test_malformed_list_output_is_a_command_error(text: str) -> None:
    with pytest.raises(BackendCommandError, match="malformed JSON"):
        parse_list_output(("tart", "list", "--format", "json"), text)


def test_empty_list_output() -> None:
    assert len(parse_list_output(("tart", "list"), "[\n\n]")) == 0
    assert isinstance(parse_list_output(("tart", "list"), ""), ListEntries)


@pytest.mark.parametrize(
    ("stderr", "code", "error_type"),
    [
        ('the specified VM "x" does not exist', 2, NotFoundError),
        ('VM "x" is not running', 2, NotRunningError),
        ('VM "VM "x" is not running" is not running', 2, NotRunningError),
        ('VM "x" is already running!', 2, AlreadyRunningError),
        ('VM "x" is running', 1, VMRunningError),
        ("no IP address found, is your VM running?", 1, NoIPAddressError),
        (
            "Failed to connect to the VM using its control socket: The operation couldn't be "
            "completed. (GRPC.GRPCConnectionPoolError error 1.), is the Tart Guest Agent running?",
            1,
            AgentUnreachableError,
        ),
        ("something else", 1, BackendCommandError),
    ],
)
def test_tart_errors_map_to_typed_errors_keeping_the_facts(
    stderr: str, code: int, error_type: type[Exception]
) -> None:
    error = command_error(("tart", "stop", "x"), code, stderr + "\n")
    assert type(error) is error_type or isinstance(error, error_type)
    assert error.argv == ("tart", "stop", "x") and error.exit_code == code
    assert error.stderr_tail == stderr
    assert "tart stop x exited with" in str(error)


def test_run_exit_errors() -> None:
    argv = ("tart", "run", "x")
    limit = run_exit_error(argv, 1, "The number of VMs exceeds the system limit", "start")
    assert isinstance(limit, VMLimitError) and isinstance(limit, VMDiedError)
    missing = run_exit_error(argv, 1, 'Error: the specified VM "x" does not exist', "start")
    assert isinstance(missing, NotFoundError)
    crash = run_exit_error(argv, -9, "", "start")
    assert type(crash) is VMDiedError and crash.exit_status == -9


def test_default_run_options_follow_the_os() -> None:
    assert TartOptions().effective_run_options == ("--no-graphics", "--no-audio", "--suspendable")
    assert TartOptions(os="linux").effective_run_options == ("--no-graphics", "--no-audio")
    assert not TartOptions(os="linux").suspendable
    assert TartOptions(run_options=("--suspendable",)).suspendable
    assert TartOptions(cpu=2, memory=4096).set_args() == ("--cpu", "2", "--memory", "4096")
    assert TartOptions().set_args() == ()


@pytest.mark.parametrize(
    "options",
    [
        {"os": "windows"},
        {"cpu": 0},
        {"run_timeout": 0},
        {"stop_timeout": -1},
        {"no_such_option": 1},
        {"run_options": "--no-graphics"},
    ],
)
def test_bad_options_are_config_errors(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        TartBackend(**options)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"run_timeout": float("nan")}, r"^tart\.run_timeout must be a positive number, got nan"),
        ({"stop_timeout": float("nan")}, r"^tart\.stop_timeout"),
        ({"state_timeout": float("inf")}, r"^tart\.state_timeout"),
    ],
)
def test_durations_that_are_not_finite_numbers_are_refused(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        TartOptions(**options)


def test_durations_in_messages_are_rounded() -> None:
    assert seconds_text(1.7490880489349365) == "1.75s"
    assert seconds_text(102.3) == "102.3s"
    assert seconds_text(1234.5) == "1234.5s"
    assert seconds_text(5.0) == "5s"
    assert seconds_text(0.0493) == "0.0493s"
    assert seconds_text(0.98563648) == "0.986s"


def test_unknown_option_error_lists_the_accepted_ones() -> None:
    with pytest.raises(ConfigError, match="accepted: binary, home, os"):
        load_backend("tart", bogus=True)


def test_backend_loads_by_name_and_from_toml(tmp_path: Path) -> None:
    backend = load_backend("tart", binary="/nowhere/tart", os="linux")
    assert isinstance(backend, TartBackend)
    assert not backend.availability()
    assert "/nowhere/tart" in backend.availability().reason
    config = tmp_path / "vms.toml"
    config.write_text(
        'backend = "tart"\n[tart]\nbinary = "fake-tart"\nrun_options = ["--no-graphics"]\n'
        "cpu = 2\nstop_timeout = 5\n"
    )
    loaded = load_backend_from_config(config)
    assert isinstance(loaded, TartBackend)
    assert isinstance(loaded.runner, SubprocessRunner) and loaded.runner.binary == "fake-tart"
    assert loaded.options.run_options == ("--no-graphics",) and loaded.options.stop_timeout == 5.0
    assert not loaded.capabilities.suspend


def test_create_instance_generates_prefixed_names_and_validates() -> None:
    backend = TartBackend(runner=ScriptedRunner(), name_prefix="ci-", source="base")
    instance = backend.create_instance()
    assert instance.id.startswith("ci-") and instance.source == "base"
    assert backend.create_instance("mine", "other").properties().clone_info.source == "other"
    with pytest.raises(ValueError, match="invalid VM name"):
        backend.create_instance("a/b")


@pytest.mark.parametrize("name", [".", "..", "x" * 256, "a\0b", "é" * 128, "vm-\udcff"])
def test_names_no_vm_directory_can_have_are_refused_before_any_command(name: str) -> None:
    runner = ScriptedRunner()
    backend = TartBackend(runner=runner, source="base")
    with pytest.raises(InvalidNameError, match="invalid VM name"):
        backend.create_instance(name)
    with pytest.raises(InvalidNameError):
        backend.get_vm(name)
    with pytest.raises(InvalidNameError, match="invalid image source"):
        backend.create_instance("fine", name)
    assert runner.calls == []
    backend.create_instance("x" * 255)  # the longest file name is still a name


def test_list_vms_is_local_and_filtered_by_prefix() -> None:
    runner = ScriptedRunner()
    for name in ("ci-1", "ci-2", "other"):
        runner.add_vm(name)
    runner.script["list"] = [
        lambda args: None,
        lambda args: runner.result(args, out=LIST_JSON),
    ]
    backend = TartBackend(runner=runner)
    infos = backend.list_vms("ci-")
    assert [info.name for info in infos] == ["ci-1", "ci-2"]
    assert infos[0].state is State.STOPPED and infos[0].backend_state == "stopped"
    assert [info.name for info in backend.list_vms()] == [
        "macos",
        "ghcr.io/cirruslabs/ubuntu:latest",
    ]


def test_get_vm_details_and_missing() -> None:
    runner = ScriptedRunner()
    runner.add_vm("vm1")
    backend = TartBackend(runner=runner)
    detail = backend.get_vm("vm1")
    assert (detail.cpus, detail.memory_mib, detail.disk_gb) == (4, 8192, 50)
    assert detail.info.state is State.STOPPED and detail.extras["OS"] == "darwin"
    assert runner.calls[-1] == ("get", "vm1", "--format", "json")
    with pytest.raises(NotFoundError):
        backend.get_vm("nope")
    runner.script["get"] = [runner.result(("get",), out="[]")]
    with pytest.raises(BackendCommandError, match="malformed"):
        backend.get_vm("vm1")


def test_delete_all_stops_running_ones_and_carries_on_past_failures() -> None:
    runner = ScriptedRunner()
    backend = TartBackend(runner=runner)
    for name in ("ci-a", "ci-b", "ci-c", "keep"):
        runner.add_vm(name)
    runner.spawn(("run", "ci-a"))
    runner.script["delete"] = [
        lambda args: None,
        lambda args: runner.result(args, 1, err="disk busy"),
    ]
    report = backend.delete_all("ci-", stop_timeout=3)
    assert report.deleted == ["ci-a", "ci-c"]
    assert list(report.failures) == ["ci-b"]
    assert ("stop", "ci-a", "--timeout", "3") in runner.calls
    assert sorted(runner.vms) == ["ci-b", "keep"]
