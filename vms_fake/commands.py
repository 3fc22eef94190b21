"""The semantics of every ``tart`` subcommand, once, for the executable and in-process.

:func:`execute` takes the words after ``tart`` and returns an :class:`Outcome` (exit
code, stdout, stderr). ``run`` is the exception: it lives on, so :func:`prepare_run`
hands back a :class:`VMRun` that the caller drives (a real process or an object).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import logging
import math
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from vms_fake import guest_processes
from vms_fake.faults import CommandFault, FaultPlan, Timing
from vms_fake.grammar import (
    SPECS,
    UNSIMULATED,
    VERSION,
    Outcome,
    PrefixedFailure,
    TartFailure,
    UsageFailure,
    root_help,
)
from vms_fake.guest_exec import run_in_guest
from vms_fake.images import GB, MIB, Image
from vms_fake.locks import PidLock, home_lock
from vms_fake.names import (
    RemoteName,
    UnknownReferenceFormat,
    is_usable_local_name,
    parse_remote,
)
from vms_fake.vmrun import VMRun, read_run_info, send_signal
from vms_fake.world import (
    CONFIG,
    CONTROL_SOCKET,
    DISK,
    NVRAM,
    RUNNING,
    SNAPSHOT,
    SUSPENDED,
    TartHome,
    VMIncomplete,
    VMMissing,
    apple_json,
    copy_sparse,
    ip_for_mac,
    new_config,
    random_mac,
    write_disk,
    write_file,
)

logger = logging.getLogger(__name__)

AGENT_UNREACHABLE = (
    "Failed to connect to the VM using its control socket: The operation couldn\u2019t be "
    "completed. (GRPC.GRPCConnectionPoolError error 1.), is the Tart Guest Agent running?"
)
#: The simulator's text when the VM ends while ``exec`` runs (tart's own text for a
#: broken agent stream is not documented; this one names what happened).
VM_ENDED_DURING_EXEC = 'VM "{name}" stopped while the command was running'
EXEC_TTY_CRASH = (
    "Tart/Commands/Exec.swift:104: Fatal error: 'try!' expression unexpectedly raised an "
    'error: Error Domain=NSPOSIXErrorDomain Code=25 "Inappropriate ioctl for device"\n'
)


class CommandTimedOut(Exception):
    """The command ran past the caller's deadline (in-process ``timeout=``)."""


@dataclasses.dataclass
class Session:
    """Everything one command invocation may consult besides its arguments."""

    home: TartHome
    plan: FaultPlan
    base_timing: Timing
    in_process: bool
    stdin: str | None = None
    stdout_is_tty: bool = False
    environ: Mapping[str, str] = dataclasses.field(default_factory=dict)
    #: Clock time by which the command must have finished (None: no limit).
    deadline: float | None = None
    #: In-process only: answer ``echo`` in exec without a subprocess.
    emulate_echo: bool = False
    #: Receives the run's output as it happens (``run`` only).
    emit: Callable[[str, str], None] | None = None

    def timing(self, vm: str | None = None) -> Timing:
        return self.plan.timing(self.base_timing, vm)

    def now(self) -> float:
        return self.home.clock.now()

    def remaining(self) -> float | None:
        return None if self.deadline is None else max(0.0, self.deadline - self.now())

    def sleep(self, seconds: float) -> None:
        """Sleep on the simulator's clock, or time out at the deadline."""
        remaining = self.remaining()
        if remaining is not None and seconds >= remaining:
            self.home.clock.sleep(remaining)
            raise CommandTimedOut
        if math.isinf(seconds):
            if self.in_process:
                raise CommandTimedOut  # a virtual hang without a deadline never ends
            while True:
                self.home.clock.sleep(3600)
        self.home.clock.sleep(seconds)


# -- dispatch ------------------------------------------------------------------------------


def _vm_words(args: Sequence[str]) -> tuple[str, ...]:
    return tuple(a for a in args if not a.startswith("-"))


def execute(argv: Sequence[str], session: Session) -> Outcome:
    """Run ``tart <argv>`` (not ``run``: see :func:`prepare_run`) to completion."""
    if not argv or (argv[0] in ("-h", "--help", "help") and len(argv) == 1):
        return Outcome(0, root_help())
    command, args = argv[0], list(argv[1:])
    if command == "--version":
        return Outcome(0, VERSION + "\n")
    if command == "help":
        spec = SPECS.get(args[0]) if args else None
        return Outcome(0, spec.help_text() if spec else root_help())
    if command in UNSIMULATED:
        return PrefixedFailure(f'fake-tart does not simulate "tart {command}"').outcome()
    spec = SPECS.get(command)
    if spec is None:
        if command.startswith("-"):
            return UsageFailure(f"Unknown option '{command}'", None).outcome()
        return UsageFailure(f"Unexpected argument '{command}'", None).outcome()
    try:
        faults, failed = apply_command_faults(command, args, session)
        if failed is not None:
            return failed
        values = spec.parse(args)
        if values.get("help"):
            return Outcome(0, spec.help_text())
        if command == "run":
            return _run_to_completion(args, session)
        outcome = _HANDLERS[command](values, session)
        logger.debug("fake tart %s exited with %s", command, outcome.exit_code)
        return _apply_output_faults(outcome, faults, values)
    except TartFailure as failure:
        return failure.outcome()


def apply_command_faults(
    command: str, args: Sequence[str], session: Session
) -> tuple[list[CommandFault], Outcome | None]:
    """Take the plan's rules for this invocation: hang first, then maybe fail.

    Returns the rules (output faults apply later) and the outcome of a ``fail`` rule.
    Raises CommandTimedOut when a hang outlasts the session's deadline.
    """
    faults = session.plan.take_command_faults(command, _vm_words(args))
    for fault in faults:
        if fault.kind == "hang":
            session.sleep(fault.seconds)
    for fault in faults:
        if fault.kind == "fail":
            return faults, Outcome(fault.exit_code, fault.stdout, fault.stderr)
    return faults, None


def _apply_output_faults(
    outcome: Outcome, faults: list[CommandFault], values: dict[str, Any]
) -> Outcome:
    if values.get("format") == "json" and any(f.kind == "malformed_json" for f in faults):
        cut = outcome.stdout[: max(1, len(outcome.stdout) // 2)]
        return dataclasses.replace(outcome, stdout=cut)
    return outcome


def _open(session: Session, name: str, *, touch: bool = True) -> Path:
    """A local VM's directory; tart's 'does not exist' (exit 2) otherwise."""
    try:
        return session.home.open_vm(name, touch=touch)
    except VMMissing as error:
        raise TartFailure(str(error), 2) from None
    except VMIncomplete as error:
        raise TartFailure(str(error), 1) from None


# -- run -------------------------------------------------------------------------------------


def prepare_run(args: Sequence[str], session: Session, emit: Callable[[str, str], None]) -> VMRun:
    """Parse and validate ``run <name> ...``: a VMRun ready to :meth:`VMRun.start`.

    Raises TartFailure (and subclasses) exactly where tart's validate() would fail.
    """
    spec = SPECS["run"]
    values = spec.parse(args)
    if values.get("help"):
        raise _HelpRequested(spec.help_text())
    if values["vnc"] and values["vnc_experimental"]:
        raise UsageFailure("--vnc and --vnc-experimental are mutually exclusive", spec)
    networks = [bool(values["net_bridged"]), values["net_softnet"], values["net_host"]]
    if sum(networks) > 1:
        raise UsageFailure(
            "--net-bridged, --net-softnet and --net-host are mutually exclusive", spec
        )
    if values["graphics"] and values["no_graphics"]:
        raise UsageFailure("--graphics and --no-graphics are mutually exclusive", spec)
    for disk in values["disk"]:
        if disk.split(":")[0].endswith("-amd64.iso"):
            raise UsageFailure(
                "Seems you have a disk targeting x86 architecture (hence amd64 in the name). "
                "Please use an 'arm64' version of the disk.",
                spec,
            )
    run = VMRun(
        session.home,
        values["name"],
        suspendable=values["suspendable"],
        plan=session.plan,
        base_timing=session.base_timing,
        emit=emit,
        in_process=session.in_process,
    )
    if values["capture_system_keys"] and (
        values["no_graphics"] or values["vnc"] or values["vnc_experimental"]
    ):
        # sic: tart's message says "captures" although the flag is --capture-system-keys
        raise UsageFailure("--captures-system-keys can only be used with the default VM view", spec)
    run.validate(spec)
    for flag in ("no_trackpad", "no_keyboard", "no_pointer"):
        if values[flag] and run.suspendable:
            option = "--" + flag.replace("_", "-")
            raise UsageFailure(f"{option} cannot be used with --suspendable", spec)
    if values["no_trackpad"] and run.os_name == "linux":
        raise UsageFailure("--no-trackpad can only be used with macOS VMs", spec)
    return run


class _HelpRequested(TartFailure):
    def __init__(self, text: str) -> None:
        super().__init__("", 0, stdout=text)

    def outcome(self) -> Outcome:
        return Outcome(0, self.stdout, "")


def _run_to_completion(args: Sequence[str], session: Session) -> Outcome:
    """``run`` through :func:`execute`: start, then wait for the VM to end."""
    out: list[str] = []
    err: list[str] = []

    def emit(stream: str, text: str) -> None:
        (out if stream == "stdout" else err).append(text)
        if session.emit is not None:
            session.emit(stream, text)

    run = prepare_run(args, session, emit)
    run.start()
    while run.alive:
        deadline = run.next_deadline()
        if deadline is None:
            raise CommandTimedOut  # nothing will ever end this VM from within this call
        session.sleep(max(0.0, deadline - session.now()))
        run.tick()
    assert run.exit_status is not None
    return Outcome(run.exit_status, "".join(out), "".join(err))


# -- clone, pull, create ----------------------------------------------------------------------


def _progress(session: Session) -> str:
    if "CI" in session.environ:
        return "0%\n100%\n"
    return "0%\n\x1b[1A\r\x1b[J100%\n"


def _pull(session: Session, remote: RemoteName, *, announce: bool) -> tuple[Path, str]:
    """Bring ``remote`` into the cache; (its directory, tart's progress output)."""
    home = session.home
    out = f"pulling {remote}...\n" if announce else ""
    out += "pulling manifest...\n"
    image: Image | None = home.find_image(remote)
    if image is None:
        raise PrefixedFailure(
            'UnexpectedHTTPStatusCode(when: "pulling manifest", code: 404, details: "")', out
        )
    digest_dir = home.repository_dir(remote) / image.digest
    cached_name = f"{remote.repository}@{image.digest}"
    if digest_dir.is_dir() and home.is_complete(digest_dir):
        if remote.digest is not None or not home.link_tag(remote, image.digest):
            return digest_dir, out + f"{cached_name} image is already cached and linked!\n"
        return digest_dir, out + f"{cached_name} image is already cached! creating a symlink...\n"
    out += f"pulling disk ({image.compressed_gb:.1f} GB compressed)...\n"
    out += _progress(session)
    out += "pulling NVRAM...\n"
    digest_dir = home.store_image(image, remote)
    if remote.digest is None:
        home.link_tag(remote, image.digest)
    else:
        (digest_dir / ".explicitly-pulled").touch()
    return digest_dir, out


def _parse_remote_or_fail(name: str) -> RemoteName | None:
    try:
        return parse_remote(name)
    except UnknownReferenceFormat as error:
        raise TartFailure(str(error)) from None


def cmd_pull(values: dict[str, Any], session: Session) -> Outcome:
    name = values["remote_name"]
    if values["concurrency"] < 1:
        raise UsageFailure("network concurrency cannot be less than 1", SPECS["pull"])
    if "/" not in name and is_usable_local_name(name) and session.home.vm_dir(name).is_dir():
        return Outcome(0, f'"{name}" is a local image, nothing to pull here!\n')
    remote = _parse_remote_or_fail(name)
    if remote is None:
        raise TartFailure(f'the specified VM "{name}" does not exist', 2)
    _, out = _pull(session, remote, announce=True)
    return Outcome(0, out)


def cmd_clone(values: dict[str, Any], session: Session) -> Outcome:
    source, new_name = values["source"], values["new_name"]
    if "/" in new_name:
        raise UsageFailure("<new-name> should be a local name", SPECS["clone"])
    if values["concurrency"] < 1:
        raise UsageFailure("network concurrency cannot be less than 1", SPECS["clone"])
    home = session.home
    out = ""
    remote = _parse_remote_or_fail(source)
    if remote is not None:
        source_dir = home.cached(remote)
        if source_dir is None:
            source_dir, out = _pull(session, remote, announce=False)
    else:
        source_dir = _open(session, source)
    try:
        with home.staging() as staged, home_lock(home.path):
            home.copy_vm(source_dir, staged)
            config = home.read_config(staged)
            suspended = (staged / SNAPSHOT).exists()
            if not suspended and config.get("macAddress") in home.macs_in_use().values():
                config["macAddress"] = random_mac()
                home.write_config(staged, config)
            home.install(staged, new_name)
    except OSError as error:
        raise PrefixedFailure(str(error), out) from None
    return Outcome(0, out)


def cmd_create(values: dict[str, Any], session: Session) -> Outcome:
    spec = SPECS["create"]
    if values["from_ipsw"] is None and not values["linux"]:
        raise UsageFailure("Please specify either a --from-ipsw or --linux option!", spec)
    if values["from_ipsw"] is not None:
        raise PrefixedFailure("fake-tart cannot install macOS from an IPSW; clone an image")
    home = session.home
    with home.staging() as staged, home_lock(home.path):
        config = new_config("linux", 4, 4096, random_mac(), values["disk_format"])
        home.write_config(staged, config)
        write_file(staged / NVRAM, b"\0" * 1024)
        write_disk(staged / DISK, values["disk_size"] * GB, guest=None)
        home.install(staged, values["name"])
    return Outcome(0)


# -- state changes ------------------------------------------------------------------------------


def cmd_stop(values: dict[str, Any], session: Session) -> Outcome:
    name = values["name"]
    home = session.home
    directory = _open(session, name)
    state = home.state(directory)
    if state == SUSPENDED:
        with contextlib.suppress(FileNotFoundError):
            (directory / SNAPSHOT).unlink()
        return Outcome(0)
    pid = home.holder(directory)
    if pid is None:
        raise TartFailure(f'VM "{name}" is not running', 2)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        send_signal(directory, pid, signal.SIGINT)
    poll = session.timing(name).stop_poll_interval
    budget = float(values["timeout"])
    while budget > 0:
        if home.holder(directory) is None:
            return Outcome(0)
        session.sleep(poll)
        budget -= poll
    try:
        send_signal(directory, pid, signal.SIGKILL)
    except OSError as error:
        raise TartFailure(
            f'failed to forcefully terminate the VM "{name}": {error.strerror}'
        ) from None
    guest_processes.end_all(directory)  # a killed run cannot end its guest's commands
    return Outcome(0)


def cmd_suspend(values: dict[str, Any], session: Session) -> Outcome:
    name = values["name"]
    directory = _open(session, name)
    pid = session.home.holder(directory)
    if pid is None:
        # tart formats VMNotRunning twice: the doubled text is what users really see.
        raise TartFailure(f'VM "VM "{name}" is not running" is not running', 2)
    try:
        send_signal(directory, pid, signal.SIGUSR1)
    except OSError:
        raise TartFailure(
            "Failed to suspend the VM: failed to send SIGUSR1 signal to the "
            f'"tart run" process running VM "{name}"'
        ) from None
    return Outcome(0)


def cmd_delete(values: dict[str, Any], session: Session) -> Outcome:
    home = session.home
    for name in values["names"]:
        remote = _parse_remote_or_fail(name)
        if remote is not None:
            if not home.delete_cached(remote):
                raise TartFailure(f'the specified VM "{name}" does not exist', 2)
            continue
        try:
            directory = home.open_vm(name, touch=False)
        except (VMMissing, VMIncomplete):
            raise TartFailure(f'the specified VM "{name}" does not exist', 2) from None
        # Holding the lock while deleting, as tart does, keeps a racing run out.
        lock = PidLock.try_acquire(directory / CONFIG, per_descriptor=True)
        if lock is None:
            raise TartFailure(f'VM "{name}" is running')
        try:
            guest_processes.end_all(directory)  # left by a run that was killed outright
            shutil.rmtree(directory)
        finally:
            lock.release()
    return Outcome(0)


def cmd_rename(values: dict[str, Any], session: Session) -> Outcome:
    name, new_name = values["name"], values["new_name"]
    if "/" in new_name:
        raise UsageFailure("<new-name> should be a local name", SPECS["rename"])
    home = session.home
    if "/" in name or not is_usable_local_name(name) or not home.vm_dir(name).is_dir():
        raise UsageFailure(f"failed to rename a non-existent local VM: {name}", None)
    if home.vm_dir(new_name).exists():
        raise UsageFailure(
            f"failed to rename VM {name}, target VM {new_name} already exists, delete it first!",
            None,
        )
    home.vm_dir(name).rename(home.vm_dir(new_name))
    return Outcome(0)


_DISPLAY = re.compile(r"(\d+)x(\d+)(pt|px)?")


def cmd_set(values: dict[str, Any], session: Session) -> Outcome:
    home = session.home
    directory = _open(session, values["name"])
    config = home.read_config(directory)
    cpu = values["cpu"]
    if cpu is not None:
        if cpu < config.get("cpuCountMin", 1):
            raise PrefixedFailure(
                "LessThanMinimalResourcesError: VM should have "
                f"{config['cpuCountMin']} CPU cores at minimum (requested {cpu})"
            )
        config["cpuCount"] = cpu
    memory = values["memory"]
    if memory is not None:
        wanted = memory * MIB
        if wanted < config.get("memorySizeMin", 0):
            raise PrefixedFailure(
                "LessThanMinimalResourcesError: VM should have "
                f"{config['memorySizeMin']} bytes of memory at minimum (requested {wanted})"
            )
        config["memorySize"] = wanted
    if values["display"] is not None:
        match = _DISPLAY.fullmatch(values["display"])
        if match is None:
            raise UsageFailure(
                f"The value '{values['display']}' is invalid for '--display <display>'",
                SPECS["set"],
            )
        display: dict[str, Any] = {"width": int(match[1]), "height": int(match[2])}
        if match[3]:
            display["unit"] = match[3]
        config["display"] = display
    # Every set writes displayRefit from the flags, clearing it when neither is given.
    config.pop("displayRefit", None)
    if values["display_refit"]:
        config["displayRefit"] = True
    elif values["no_display_refit"]:
        config["displayRefit"] = False
    if values["random_mac"]:
        config["macAddress"] = random_mac()  # keeps any snapshot, as tart does
    if values["random_serial"] and config.get("os", "darwin") == "darwin":
        config["ecid"] = os.urandom(8).hex()
    if values["disk"] is not None:
        try:
            copy_sparse(Path(values["disk"]), directory / DISK)
        except OSError as error:
            raise PrefixedFailure(str(error)) from None
    if values["disk_size"] is not None:
        current = os.stat(directory / DISK).st_size
        wanted = values["disk_size"] * GB
        if wanted < current:
            raise TartFailure(
                f"new disk size of {wanted} should be larger than the current disk size of "
                f"{current}"
            )
        os.truncate(directory / DISK, wanted)
    home.write_config(directory, config)
    return Outcome(0)


# -- inspection -----------------------------------------------------------------------------


def _relative(seconds: float) -> str:
    """Foundation's RelativeDateTimeFormatter (numeric, full units) for a past date."""
    seconds = max(0, int(seconds))
    if seconds == 0:
        return "in 0 seconds"
    for unit, size in (
        ("year", 31536000),
        ("month", 2592000),
        ("week", 604800),
        ("day", 86400),
        ("hour", 3600),
        ("minute", 60),
        ("second", 1),
    ):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''} ago"
    raise AssertionError("unreachable")


def _iso(timestamp: float) -> str:
    moment = datetime.datetime.fromtimestamp(int(timestamp), tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """TextTable's plain style, then trimmed as tart does."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        " ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True))
        for row in [header, *rows]
    ]
    return ("\n".join(lines) + "\n").strip() + "\n"


def cmd_list(values: dict[str, Any], session: Session) -> Outcome:
    home = session.home
    now = session.now()
    entries: list[tuple[str, str, Path]] = []
    if values["source"] in (None, "local"):
        entries += [("local", n, home.vm_dir(n)) for n in home.local_names()]
    if values["source"] in (None, "oci"):
        entries += [("OCI", n, d) for n, d in home.oci_entries()]
    if values["quiet"]:
        return Outcome(0, "".join(f"{name}\n" for _, name, _ in entries))
    records: list[dict[str, Any]] = []
    for source, name, directory in entries:
        with contextlib.suppress(OSError):
            apparent, allocated = home.sizes(directory)
            accessed = home.accessed(directory)
            state = home.state(directory)
            records.append(
                {
                    "Source": source,
                    "Name": name,
                    "Disk": apparent // GB,
                    "Size": allocated // GB,
                    "Accessed": accessed,
                    "Running": state == RUNNING,
                    "State": state,
                }
            )
    if values["format"] == "json":
        for record in records:
            record["Accessed"] = _iso(record["Accessed"])
        return Outcome(0, apple_json(records) + "\n")
    if not records:
        return Outcome(0, "\n")
    header = ("Source", "Name", "Disk", "Size", "Accessed", "State")
    rows = [
        (
            r["Source"],
            r["Name"],
            str(r["Disk"]),
            str(r["Size"]),
            _relative(now - r["Accessed"]),
            r["State"],
        )
        for r in records
    ]
    return Outcome(0, _table(header, rows))


def cmd_get(values: dict[str, Any], session: Session) -> Outcome:
    home = session.home
    directory = _open(session, values["name"])
    config = home.read_config(directory)
    apparent, allocated = home.sizes(directory)
    display = config.get("display", {})
    state = home.state(directory)
    record = {
        "OS": config.get("os", "darwin"),
        "CPU": config.get("cpuCount"),
        "Memory": int(config.get("memorySize", 0)) // MIB,
        "Disk": apparent // GB,
        "DiskFormat": config.get("diskFormat", "raw"),
        "Size": f"{allocated / GB:.3f}",
        "Display": f"{display.get('width')}x{display.get('height')}{display.get('unit', '')}",
        "Running": state == RUNNING,
        "State": state,
    }
    if values["format"] == "json":
        return Outcome(0, apple_json(record) + "\n")
    header = ("OS", "CPU", "Memory", "Disk", "DiskFormat", "Size", "Display", "State")
    return Outcome(0, _table(header, [tuple(str(record[k]) for k in header)]))


def _agent_reachable(session: Session, name: str, directory: Path) -> bool:
    """Whether a gRPC call through control.sock would reach a live guest agent now."""
    info = read_run_info(directory)
    if info is None or session.home.holder(directory) is None:
        return False
    try:
        socket_token = json.loads((directory / CONTROL_SOCKET).read_text()).get("token")
    except (OSError, ValueError):
        return False
    if socket_token != info["token"] or session.now() < info["boot_ready_at"]:
        return False
    faults = session.plan.for_vm(name)
    guest = session.home.guest(directory)
    agent = faults.agent if faults.agent is not None else bool(guest and guest.agent)
    return agent


def _resolve_ip(session: Session, name: str, directory: Path, resolver: str) -> str | None:
    home = session.home
    faults = session.plan.for_vm(name)
    mac = str(home.read_config(directory).get("macAddress"))
    if resolver == "agent":
        if not _agent_reachable(session, name, directory) or faults.no_ip:
            return None
        return faults.stale_ip or ip_for_mac(mac)
    if faults.stale_ip is not None:
        return faults.stale_ip
    lease = home.lease(mac)
    if resolver == "arp" and home.holder(directory) is None:
        return None  # ARP entries need a guest that talks on the network
    return lease


def cmd_ip(values: dict[str, Any], session: Session) -> Outcome:
    name, resolver = values["name"], values["resolver"]
    directory = _open(session, name)
    poll = session.timing(name).ip_poll_interval
    deadline = session.now() + values["wait"]
    while True:
        ip = _resolve_ip(session, name, directory, resolver)
        if ip is not None:
            return Outcome(0, ip + "\n")
        session.sleep(poll)
        if session.now() >= deadline:
            break
    message = "no IP address found"
    if session.home.holder(directory) is None:
        message += ", is your VM running?"
    if resolver == "agent":
        message += " (also make sure that Guest agent for Tart is running inside of a VM)"
    elif resolver == "arp" and session.home.read_config(directory).get("os") == "linux":
        message += " (not all Linux distributions are compatible with the ARP resolver)"
    raise TartFailure(message)


def cmd_exec(values: dict[str, Any], session: Session) -> Outcome:
    name = values["name"]
    directory = _open(session, name)
    if session.home.holder(directory) is None:
        raise TartFailure(f'VM "{name}" is not running', 2)
    if values["tty"] and not session.stdout_is_tty:
        return Outcome(-signal.SIGTRAP, "", EXEC_TTY_CRASH)
    if not _agent_reachable(session, name, directory) or session.plan.take_exec_failure(name):
        session.sleep(session.timing(name).agent_connect_delay)
        raise TartFailure(AGENT_UNREACHABLE)
    token = _run_token(directory)
    home = session.home

    def vm_alive() -> bool:
        return home.holder(directory) is not None and _run_token(directory) == token

    try:
        outcome = run_in_guest(
            values["command"],
            directory,
            stdin=session.stdin if values["interactive"] else None,
            tty=values["tty"],
            timeout=session.remaining(),
            emulate_echo=session.emulate_echo,
            vm_alive=vm_alive,
        )
    except subprocess.TimeoutExpired:
        raise CommandTimedOut from None
    if not vm_alive():
        # The VM ended under the command (its end killed it): the agent's stream broke.
        guest_processes.end_all(directory)
        raise PrefixedFailure(VM_ENDED_DURING_EXEC.format(name=name))
    return outcome


def _run_token(directory: Path) -> object:
    info = read_run_info(directory)
    return None if info is None else info.get("token")


def cmd_fqn(values: dict[str, Any], session: Session) -> Outcome:
    name = values["name"]
    remote = _parse_remote_or_fail(name)
    if remote is None or remote.digest is not None:
        return Outcome(0, name + "\n")
    cached = session.home.cached(remote)
    if cached is None:
        raise TartFailure(
            f"OCI storage error: {name} is not a digest and doesn't point to a digest"
        )
    return Outcome(0, f"{remote.repository}@{cached.name}\n")


_HANDLERS: dict[str, Callable[[dict[str, Any], Session], Outcome]] = {
    "clone": cmd_clone,
    "create": cmd_create,
    "delete": cmd_delete,
    "exec": cmd_exec,
    "fqn": cmd_fqn,
    "get": cmd_get,
    "ip": cmd_ip,
    "list": cmd_list,
    "pull": cmd_pull,
    "rename": cmd_rename,
    "set": cmd_set,
    "stop": cmd_stop,
    "suspend": cmd_suspend,
}
