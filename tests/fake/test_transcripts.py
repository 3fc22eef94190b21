"""Transcripts of spec sections 4-6: exact stdout, stderr and exit code, in both modes."""

from __future__ import annotations

import json
import re
import signal

import pytest

from .driver import MACOS, UBUNTU, VANILLA, Result, Tart, wait_until

pytestmark = pytest.mark.timeout(60)

CLONE_USAGE = (
    "Usage: tart clone <source-name> <new-name> [--insecure] [--concurrency <concurrency>] "
    "[--prune-limit <prune-limit>]\n"
    "  See 'tart clone --help' for more information.\n"
)
ROOT_USAGE = "Usage: tart <subcommand>\n  See 'tart --help' for more information.\n"


def test_version_prints_only_the_version(tart: Tart) -> None:
    assert tart("--version") == Result(0, "2.35.0\n", "")


@pytest.mark.parametrize("command", ["stop", "get", "ip", "exec", "suspend", "set", "delete"])
def test_missing_vm_is_exit_2_without_prefix(tart: Tart, command: str) -> None:
    args = [command, "ghost"] + (["true"] if command == "exec" else [])
    assert tart(*args) == Result(2, "", 'the specified VM "ghost" does not exist\n')


def test_run_of_missing_vm_fails_in_validate_with_prefix_and_exit_1(tart: Tart) -> None:
    assert tart("run", "ghost") == Result(1, "", 'Error: the specified VM "ghost" does not exist\n')


def test_run_of_remote_name_only_looks_at_local_vms(tart: Tart) -> None:
    expected = f'Error: the specified VM "{MACOS}" does not exist\n'
    assert tart("run", MACOS) == Result(1, "", expected)


def test_not_running_messages(tart: Tart, macos: str) -> None:
    assert tart("stop", macos) == Result(2, "", 'VM "vm" is not running\n')
    assert tart("exec", macos, "true") == Result(2, "", 'VM "vm" is not running\n')
    # tart formats VMNotRunning twice for suspend; that is what users see.
    assert tart("suspend", macos) == Result(2, "", 'VM "VM "vm" is not running" is not running\n')


def usage_error(tart: Tart, *args: str) -> str:
    """The stderr of a command that must fail as a usage error (exit 64, no stdout)."""
    result = tart(*args)
    assert (result.exit_code, result.stdout) == (64, ""), result
    return result.stderr


def test_usage_errors_exit_64_with_usage_block(tart: Tart) -> None:
    assert tart("clone", MACOS, "a/b") == Result(
        64, "", "Error: <new-name> should be a local name\n" + CLONE_USAGE
    )
    assert tart("clone", MACOS) == Result(
        64, "", "Error: Missing expected argument '<new-name>'\n" + CLONE_USAGE
    )
    assert tart("stop") == Result(
        64,
        "",
        "Error: Missing expected argument '<name>'\n"
        "Usage: tart stop <name> [--timeout <timeout>]\n"
        "  See 'tart stop --help' for more information.\n",
    )
    assert usage_error(tart, "list", "--foo").startswith(
        "Error: Unknown option '--foo'\nUsage: tart list"
    )
    assert usage_error(tart, "ip", "vm", "--wait").startswith(
        "Error: Missing value for '--wait <wait>'\n"
    )
    assert usage_error(tart, "ip", "vm", "--resolver", "x").startswith(
        "Error: The value 'x' is invalid for '--resolver <resolver>'. "
        "Please provide one of 'dhcp', 'arp' or 'agent'.\n"
    )
    assert usage_error(tart, "list", "--format", "yaml").startswith(
        "Error: The value 'yaml' is invalid for '--format <format>'. "
        "Please provide one of 'text' and 'json'.\n"
    )
    assert usage_error(tart, "list", "--source", "OCI").startswith(
        "Error: 'OCI' is not a valid <source>\nUsage: tart list"
    )
    assert usage_error(tart, "exec", "vm").startswith(
        "Error: Missing expected argument '<command> ...'"
    )
    assert usage_error(tart, "delete").startswith("Error: Missing expected argument '<name> ...'")
    assert tart("frobnicate") == Result(
        64, "", "Error: Unexpected argument 'frobnicate'\n" + ROOT_USAGE
    )


def test_stop_hard_stops_a_running_vm(tart: Tart, macos: str) -> None:
    run = tart.spawn("run", macos, "--no-graphics")
    assert tart.state(macos) == "running"
    assert tart("stop", macos) == Result(0, "", "")
    assert run.wait() == 0
    assert (run.stdout, run.stderr) == ("Stopping VM...\n", "")
    assert tart.state(macos) == "stopped"


def test_sigint_is_a_hard_stop_with_exit_0(tart: Tart, macos: str) -> None:
    run = tart.spawn("run", macos)
    run.signal(signal.SIGINT)
    assert run.wait() == 0
    assert run.stdout == "Stopping VM...\n"


def test_second_run_of_a_running_vm_is_refused_with_exit_2(tart: Tart, macos: str) -> None:
    first = tart.spawn("run", macos)
    assert tart("run", macos) == Result(2, "", 'VM "vm" is already running!\n')
    assert first.poll() is None
    tart("stop", macos)
    assert first.wait() == 0


def test_concurrent_runs_of_one_vm_let_exactly_one_win(tart: Tart, macos: str) -> None:
    runs = [tart.spawn("run", macos, wait_for_lock=False) for _ in range(3)]
    wait_until(lambda: sum(run.poll() is not None for run in runs) == 2)
    losers = [run for run in runs if run.poll() is not None]
    for loser in losers:
        assert loser.wait() == 2
        assert (loser.stdout, loser.stderr) == ("", 'VM "vm" is already running!\n')
    assert tart.state(macos) == "running"
    assert tart("stop", macos) == Result(0, "", "")
    assert [run.wait() for run in runs].count(0) == 1


def test_delete_refuses_a_running_vm(tart: Tart, macos: str) -> None:
    run = tart.spawn("run", macos)
    assert tart("delete", macos) == Result(1, "", 'VM "vm" is running\n')
    tart("stop", macos)
    run.wait()
    assert tart("delete", macos) == Result(0, "", "")
    assert tart("get", macos).exit_code == 2


def test_delete_processes_names_in_order_and_stops_at_first_failure(tart: Tart) -> None:
    tart.clone(MACOS, "a")
    tart.clone(MACOS, "b")
    assert tart("delete", "a", "ghost", "b") == Result(
        2, "", 'the specified VM "ghost" does not exist\n'
    )
    assert tart("list", "-q", "--source", "local").stdout == "b\n"


def test_suspend_with_suspendable_snapshots_and_resume_restores(tart: Tart, macos: str) -> None:
    run = tart.spawn("run", macos, "--suspendable")
    assert tart("suspend", macos) == Result(0, "", "")
    assert run.wait() == 0
    assert run.stdout == (
        "pausing VM to take a snapshot...\n"
        "creating a snapshot...\n"
        "snapshot created successfully! shutting down the VM...\n"
    )
    assert tart.state(macos) == "suspended"
    assert (tart.home / "vms" / macos / "state.vzvmsave").exists()
    # Resume: a plain run of a suspended VM (--suspendable is implied).
    resumed = tart.spawn("run", macos)
    assert tart.state(macos) == "running"
    assert not (tart.home / "vms" / macos / "state.vzvmsave").exists()
    assert tart("suspend", macos).exit_code == 0
    assert resumed.wait() == 0
    assert resumed.stdout.startswith("restoring VM state from a snapshot...\nresuming VM...\n")


def test_suspend_without_suspendable_kills_the_vm(tart: Tart, macos: str) -> None:
    run = tart.spawn("run", macos)
    assert tart("suspend", macos) == Result(0, "", "")
    assert run.wait() == 1
    assert run.stdout == (
        "Failed to suspend the VM: Invalid virtual machine configuration. "
        "Unsupported console device in configuration.\n"
    )
    assert tart.state(macos) == "stopped"


def test_stop_of_a_suspended_vm_discards_the_snapshot(tart: Tart, macos: str) -> None:
    run = tart.spawn("run", macos, "--suspendable")
    tart("suspend", macos)
    run.wait()
    assert tart("stop", macos) == Result(0, "", "")
    assert tart.state(macos) == "stopped"
    assert tart("stop", macos).exit_code == 2


def test_linux_vms_cannot_be_suspendable(tart: Tart) -> None:
    tart.clone(UBUNTU, "linux")
    result = tart("run", "linux", "--suspendable")
    assert result.exit_code == 64
    assert result.stderr.startswith("Error: You can only suspend macOS VMs\nUsage: tart run <name>")
    assert result.stderr.endswith("  See 'tart run --help' for more information.\n")


def test_sigusr2_asks_the_guest_to_stop(tart: Tart, macos: str) -> None:
    run = tart.spawn("run", macos)
    run.signal(signal.SIGUSR2)
    assert run.wait() == 0
    assert run.stdout == "Requesting guest OS to stop...\nguest has stopped the virtual machine\n"


def test_sigterm_kills_run_and_releases_the_lock_leaving_control_socket(
    tart: Tart, macos: str
) -> None:
    run = tart.spawn("run", macos)
    socket = tart.home / "vms" / macos / "control.sock"
    wait_until(socket.exists)  # tart creates it after taking the lock
    run.signal(signal.SIGTERM)
    assert run.wait() == -signal.SIGTERM
    assert (run.stdout, run.stderr) == ("", "")
    assert tart.state(macos) == "stopped"
    assert socket.exists()


def test_clone_silently_overwrites_an_existing_vm(tart: Tart, macos: str) -> None:
    assert tart("set", macos, "--cpu", "8") == Result(0, "", "")
    assert tart("clone", MACOS, macos) == Result(0, "", "")
    assert json.loads(tart("get", macos, "--format", "json").stdout)["CPU"] == 4


def test_clone_of_a_local_vm_gets_a_new_mac(tart: Tart, macos: str) -> None:
    assert tart("clone", macos, "copy") == Result(0, "", "")
    config = json.loads((tart.home / "vms" / macos / "config.json").read_text())
    copy = json.loads((tart.home / "vms" / "copy" / "config.json").read_text())
    assert config["macAddress"] != copy["macAddress"]


def test_pull_transcript_then_already_cached(tart: Tart) -> None:
    first = tart("pull", UBUNTU)
    assert first == Result(
        0,
        f"pulling {UBUNTU}...\npulling manifest...\npulling disk (1.5 GB compressed)...\n"
        "0%\n\x1b[1A\r\x1b[J100%\npulling NVRAM...\n",
        "",
    )
    digest = tart("fqn", UBUNTU).stdout.strip()
    assert tart("pull", UBUNTU) == Result(
        0,
        f"pulling {UBUNTU}...\npulling manifest...\n{digest} image is already cached and linked!\n",
        "",
    )
    # clone of a cached image does no network at all: no output.
    assert tart("clone", UBUNTU, "u") == Result(0, "", "")


def test_pull_of_a_local_name_and_of_an_unknown_image(tart: Tart, macos: str) -> None:
    assert tart("pull", macos) == Result(0, '"vm" is a local image, nothing to pull here!\n', "")
    unknown = tart("pull", "ghcr.io/nobody/nothing:1")
    assert unknown.exit_code == 1
    assert unknown.stdout == "pulling ghcr.io/nobody/nothing:1...\npulling manifest...\n"
    assert unknown.stderr.startswith("Error: UnexpectedHTTPStatusCode(")


def test_list_text_json_quiet_and_source(tart: Tart) -> None:
    tart.clone(UBUNTU, "u")
    tart.clone(MACOS, "m")
    digest = tart("fqn", MACOS).stdout.strip()
    quiet = tart("list", "-q").stdout.splitlines()
    assert quiet[:2] == ["m", "u"]
    assert sorted(quiet[2:]) == quiet[2:] and MACOS in quiet and digest in quiet
    assert tart("list", "--source", "local", "--quiet") == Result(0, "m\nu\n", "")
    text = tart("list", "--source", "local").stdout
    # Padded columns; only the last row is trimmed. The access time is relative to now,
    # which a subprocess cannot pin down to the second.
    when = r"(in 0 seconds|\d+ seconds? ago)"
    assert re.fullmatch(
        rf"Source Name Disk Size Accessed {{5,}}State  \n"
        rf"local  m    50   0    {when} +stopped\n"
        rf"local  u    20   0    {when} +stopped\n",
        text,
    ), text
    if not tart.executable:  # virtual time stands still: exact
        assert text == (
            "Source Name Disk Size Accessed     State  \n"
            "local  m    50   0    in 0 seconds stopped\n"
            "local  u    20   0    in 0 seconds stopped\n"
        )
    records = json.loads(tart("list", "--format", "json", "--source", "local").stdout)
    assert [r["Name"] for r in records] == ["m", "u"]
    assert records[0]["Source"] == "local" and records[0]["Disk"] == 50
    assert records[0]["Running"] is False and records[0]["State"] == "stopped"
    assert records[0]["Accessed"].endswith("Z") and "T" in records[0]["Accessed"]
    oci = json.loads(tart("list", "--format", "json", "--source", "oci").stdout)
    assert {r["Source"] for r in oci} == {"OCI"}
    assert '"Name" : "ghcr.io\\/cirruslabs' in tart("list", "--format", "json").stdout


def test_list_of_nothing(tart: Tart) -> None:
    assert tart("list") == Result(0, "\n", "")
    assert tart("list", "-q") == Result(0, "", "")


def test_get_text_and_json(tart: Tart, macos: str) -> None:
    assert tart("get", macos) == Result(
        0,
        "OS     CPU Memory Disk DiskFormat Size  Display  State  \n"
        "darwin 4   8192   50   raw        0.000 1024x768 stopped\n",
        "",
    )
    record = json.loads(tart("get", macos, "--format", "json").stdout)
    assert record == {
        "OS": "darwin",
        "CPU": 4,
        "Memory": 8192,
        "Disk": 50,
        "DiskFormat": "raw",
        "Size": "0.000",
        "Display": "1024x768",
        "Running": False,
        "State": "stopped",
    }


def test_ip_of_a_never_started_vm_fails(tart: Tart, macos: str) -> None:
    assert tart("ip", macos) == Result(1, "", "no IP address found, is your VM running?\n")
    assert tart("ip", macos, "--resolver", "agent") == Result(
        1,
        "",
        "no IP address found, is your VM running? "
        "(also make sure that Guest agent for Tart is running inside of a VM)\n",
    )


def test_ip_answers_when_running_and_stays_stale_after_stop(tart: Tart, macos: str) -> None:
    run = tart.spawn("run", macos)
    ip = tart("ip", macos, "--wait", "5")
    assert ip.exit_code == 0 and ip.stdout.startswith("192.168.64.")
    assert tart("ip", macos, "--resolver", "agent") == ip
    assert tart("ip", macos, "--resolver", "arp") == ip
    tart("stop", macos)
    run.wait()
    assert tart("ip", macos) == ip  # the DHCP lease outlives the VM, as in tart#172
    assert tart("ip", macos, "--resolver", "arp").exit_code == 1


def test_ip_arp_on_linux_names_the_arp_caveat(tart: Tart) -> None:
    tart.clone(UBUNTU, "u")
    assert tart("ip", "u", "--resolver", "arp") == Result(
        1,
        "",
        "no IP address found, is your VM running? "
        "(not all Linux distributions are compatible with the ARP resolver)\n",
    )


def test_ip_is_stable_per_vm(tart: Tart, macos: str) -> None:
    tart.clone(MACOS, "other")
    ips = []
    for name in (macos, macos, "other"):
        run = tart.spawn("run", name)
        ips.append(tart("ip", name).stdout)
        tart("stop", name)
        run.wait()
    assert ips[0] == ips[1] != ips[2]


def test_exec_runs_for_real_in_the_vm_sandbox(tart: Tart, macos: str) -> None:
    run = tart.spawn("run", macos)
    assert tart("exec", macos, "echo", "hello", "world") == Result(0, "hello world\n", "")
    assert tart("exec", macos, "sh", "-c", "echo out; echo err >&2; exit 3") == Result(
        3, "out\n", "err\n"
    )
    sandbox = tart.home / "vms" / macos / "guest-home"
    assert tart("exec", macos, "pwd") == Result(0, f"{sandbox}\n", "")
    assert tart("exec", "-i", macos, "cat", stdin="piped\n") == Result(0, "piped\n", "")
    assert tart("exec", macos, "cat", stdin="ignored without -i") == Result(0, "", "")
    # Words after the name are the command's, even when they look like options.
    assert tart("exec", macos, "echo", "-i", "--help") == Result(0, "-i --help\n", "")
    tart("stop", macos)
    run.wait()


def test_exec_without_guest_agent_cannot_connect(tart: Tart) -> None:
    tart.clone(VANILLA, "vanilla")
    run = tart.spawn("run", "vanilla")
    assert tart("exec", "vanilla", "true") == Result(
        1,
        "",
        "Failed to connect to the VM using its control socket: The operation couldn\u2019t be "
        "completed. (GRPC.GRPCConnectionPoolError error 1.), is the Tart Guest Agent running?\n",
    )
    tart("stop", "vanilla")
    run.wait()


def test_exec_tty_without_terminal_crashes(tart: Tart, macos: str) -> None:
    run = tart.spawn("run", macos)
    result = tart("exec", "-t", macos, "true")
    assert result.exit_code == -signal.SIGTRAP
    assert "Fatal error: 'try!' expression unexpectedly raised an error" in result.stderr
    tart("stop", macos)
    run.wait()


def test_set_changes_config_and_checks_minimums(tart: Tart, macos: str) -> None:
    assert tart(
        "set", macos, "--cpu", "6", "--memory", "16384", "--display", "1920x1080px"
    ) == Result(0, "", "")
    record = json.loads(tart("get", macos, "--format", "json").stdout)
    assert (record["CPU"], record["Memory"], record["Display"]) == (6, 16384, "1920x1080px")
    assert tart("set", macos, "--cpu", "2") == Result(
        1,
        "",
        "Error: LessThanMinimalResourcesError: VM should have 4 CPU cores at minimum "
        "(requested 2)\n",
    )
    assert tart("set", macos, "--memory", "1024").stderr == (
        "Error: LessThanMinimalResourcesError: VM should have 8589934592 bytes of memory at "
        "minimum (requested 1073741824)\n"
    )
    assert tart("set", macos, "--disk-size", "60") == Result(0, "", "")
    assert json.loads(tart("get", macos, "--format", "json").stdout)["Disk"] == 60
    shrink = tart("set", macos, "--disk-size", "10")
    assert shrink.exit_code == 1 and shrink.stderr.startswith("new disk size of ")


def test_create_linux_makes_an_empty_vm(tart: Tart) -> None:
    assert tart("create", "empty", "--linux", "--disk-size", "20") == Result(0, "", "")
    assert tart("get", "empty") == Result(
        0,
        "OS    CPU Memory Disk DiskFormat Size  Display  State  \n"
        "linux 4   4096   20   raw        0.000 1024x768 stopped\n",
        "",
    )
    assert (tart.home / "vms" / "empty" / "disk.img").stat().st_size == 20 * 1000**3
    assert usage_error(tart, "create", "x").startswith(
        "Error: Please specify either a --from-ipsw or --linux option!\nUsage: tart create"
    )


def test_rename(tart: Tart, macos: str) -> None:
    tart.clone(MACOS, "taken")
    assert tart("rename", "ghost", "x") == Result(
        64, "", "Error: failed to rename a non-existent local VM: ghost\n" + ROOT_USAGE
    )
    assert tart("rename", macos, "taken") == Result(
        64,
        "",
        "Error: failed to rename VM vm, target VM taken already exists, delete it first!\n"
        + ROOT_USAGE,
    )
    assert usage_error(tart, "rename", macos, "a/b").startswith(
        "Error: <new-name> should be a local name\nUsage: tart rename <name> <new-name>\n"
    )
    assert tart("rename", macos, "renamed") == Result(0, "", "")
    assert tart("list", "-q", "--source", "local").stdout == "renamed\ntaken\n"


def test_delete_of_a_remote_name_removes_the_cache_entry(tart: Tart) -> None:
    tart("pull", UBUNTU)
    assert tart("delete", UBUNTU) == Result(0, "", "")
    assert tart("list", "-q", "--source", "oci") == Result(0, "", "")


def test_clone_of_suspended_vm_keeps_mac_and_run_resets_a_colliding_mac(
    tart: Tart, macos: str
) -> None:
    run = tart.spawn("run", macos, "--suspendable")
    tart("suspend", macos)
    run.wait()
    assert tart("clone", macos, "twin") == Result(0, "", "")
    assert tart.state("twin") == "suspended"  # the clone carries MAC and snapshot
    first = tart.spawn("run", macos)
    second = tart.spawn("run", "twin")
    assert second.read_line() == "There is already a running VM with the same MAC address!\n"
    assert second.read_line() == "Resetting VM to assign a new MAC address...\n"
    assert tart.state("twin") == "running"
    macs = {
        json.loads((tart.home / "vms" / n / "config.json").read_text())["macAddress"]
        for n in (macos, "twin")
    }
    assert len(macs) == 2
    stop_all = [tart("stop", n).exit_code for n in (macos, "twin")]
    assert stop_all == [0, 0]
    assert second.wait() == 0
    assert "restoring" not in second.stdout  # the reset discarded the snapshot
    first.wait()


def test_incomplete_vm_directory(tart: Tart, macos: str) -> None:
    (tart.home / "vms" / macos / "nvram.bin").unlink()
    missing_files = "VM is missing some of its files (config.json, disk.img or nvram.bin)\n"
    assert tart("get", macos) == Result(1, "", missing_files)
    assert tart("run", macos) == Result(1, "", "Error: " + missing_files)
    assert tart("list", "-q", "--source", "local") == Result(0, "", "")


def test_clone_concurrency_must_be_positive(tart: Tart) -> None:
    assert tart("clone", MACOS, "x", "--concurrency", "0") == Result(
        64, "", "Error: network concurrency cannot be less than 1\n" + CLONE_USAGE
    )


def test_no_arguments_prints_help(tart: Tart) -> None:
    result = tart()
    assert result.exit_code == 0 and result.stderr == ""
    assert "USAGE: tart <subcommand>" in result.stdout and "  suspend " in result.stdout


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--vnc", "--vnc-experimental"], "--vnc and --vnc-experimental are mutually exclusive"),
        (
            ["--net-softnet", "--net-host"],
            "--net-bridged, --net-softnet and --net-host are mutually exclusive",
        ),
        (["--graphics", "--no-graphics"], "--graphics and --no-graphics are mutually exclusive"),
        (
            ["--capture-system-keys", "--no-graphics"],
            "--captures-system-keys can only be used with the default VM view",
        ),
        (["--suspendable", "--no-keyboard"], "--no-keyboard cannot be used with --suspendable"),
    ],
)
def test_run_option_validation(tart: Tart, macos: str, flags: list[str], message: str) -> None:
    result = tart("run", macos, *flags)
    assert result.exit_code == 64
    assert result.stderr.startswith(f"Error: {message}\nUsage: tart run <name>")
    assert tart.state(macos) == "stopped"


def test_no_trackpad_is_for_macos_only(tart: Tart) -> None:
    tart.clone(UBUNTU, "linux")
    assert usage_error(tart, "run", "linux", "--no-trackpad").startswith(
        "Error: --no-trackpad can only be used with macOS VMs\n"
    )
