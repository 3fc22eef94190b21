"""tart's command-line grammar (:data:`SPECS`), parsed with swift-argument-parser's texts.

Three ways a tart command fails (spec section 1.4), as exceptions the commands raise:
:class:`TartFailure` (a RuntimeError: bare message, exit 1 or 2), :class:`UsageFailure`
(``Error: ...`` plus a usage block, exit 64) and :class:`PrefixedFailure` (``Error: ...``
without usage, exit 1).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

EX_USAGE = 64


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What a finished command did. A negative exit code means death by that signal."""

    exit_code: int
    stdout: str = ""
    stderr: str = ""


class TartFailure(Exception):
    """A tart RuntimeError: its text alone on stderr."""

    def __init__(self, message: str, exit_code: int = 1, stdout: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.stdout = stdout

    def outcome(self) -> Outcome:
        return Outcome(self.exit_code, self.stdout, self.message + "\n")


class PrefixedFailure(TartFailure):
    """Any non-RuntimeError error (or one thrown from validate()): ``Error: `` prefix, exit 1."""

    def __init__(self, message: str, stdout: str = "") -> None:
        super().__init__(message, 1, stdout)

    def outcome(self) -> Outcome:
        return Outcome(1, self.stdout, f"Error: {self.message}\n")


class UsageFailure(TartFailure):
    """A parse or validation error: ``Error: ``, the usage block, exit 64."""

    def __init__(self, message: str, spec: CommandSpec | None) -> None:
        super().__init__(message, EX_USAGE)
        self.spec = spec

    def outcome(self) -> Outcome:
        if self.spec is None:
            usage = "Usage: tart <subcommand>\n  See 'tart --help' for more information.\n"
        else:
            usage = (
                f"Usage: tart {self.spec.usage}\n"
                f"  See 'tart {self.spec.name} --help' for more information.\n"
            )
        return Outcome(EX_USAGE, "", f"Error: {self.message}\n{usage}")


def _join_choices(choices: Sequence[str]) -> str:
    quoted = [f"'{c}'" for c in choices]
    if len(quoted) <= 2:
        return " and ".join(quoted)
    return ", ".join(quoted[:-1]) + " or " + quoted[-1]


@dataclasses.dataclass(frozen=True)
class Option:
    """``--long <value>`` (``short`` like ``-t``); ``flag`` options take no value."""

    long: str
    dest: str
    value_name: str = ""
    short: str | None = None
    flag: bool = False
    convert: Callable[[str], Any] = str
    choices: tuple[str, ...] = ()
    repeatable: bool = False
    default: Any = None
    #: A custom message for a bad value (``list --source``).
    invalid_message: str | None = None

    @property
    def display(self) -> str:
        return f"--{self.long} <{self.value_name}>" if not self.flag else f"--{self.long}"

    def parse_value(self, text: str, spec: CommandSpec) -> Any:
        if self.choices and text not in self.choices:
            if self.invalid_message is not None:
                raise UsageFailure(self.invalid_message.format(value=text), spec)
            raise UsageFailure(
                f"The value '{text}' is invalid for '{self.display}'. "
                f"Please provide one of {_join_choices(self.choices)}.",
                spec,
            )
        try:
            return self.convert(text)
        except ValueError:
            message = f"The value '{text}' is invalid for '{self.display}'"
            raise UsageFailure(message, spec) from None


def unsigned(bits: int) -> Callable[[str], int]:
    """A Swift ``UInt<bits>`` argument: decimal digits within range."""

    def convert(text: str) -> int:
        if not text.isdigit() or int(text) >= 1 << bits:
            raise ValueError(text)
        return int(text)

    return convert


def signed(text: str) -> int:
    if not text.lstrip("-").isdigit():
        raise ValueError(text)
    return int(text)


@dataclasses.dataclass(frozen=True)
class CommandSpec:
    name: str
    abstract: str
    usage: str
    options: tuple[Option, ...] = ()
    #: Positional arguments: (dest, display); a display ending in ``...`` takes the rest.
    positionals: tuple[tuple[str, str], ...] = ()
    #: After the first positional, every word is taken verbatim (``exec``).
    verbatim_after_first: bool = False

    def help_text(self) -> str:
        lines = [f"OVERVIEW: {self.abstract}", "", f"USAGE: tart {self.usage}", ""]
        if self.options:
            lines.append("OPTIONS:")
            for option in self.options:
                short = f"-{option.short}, " if option.short else ""
                lines.append(f"  {short}{option.display}")
            lines.append("  -h, --help              Show help information.")
        return "\n".join(lines) + "\n"

    def parse(self, args: Sequence[str]) -> dict[str, Any]:
        """The parsed arguments; raises UsageFailure; ``{"help": True}`` for --help."""
        by_long = {o.long: o for o in self.options}
        by_short = {o.short: o for o in self.options if o.short}
        values: dict[str, Any] = {
            o.dest: ([] if o.repeatable else (False if o.flag else o.default)) for o in self.options
        }
        positionals: list[str] = []
        words = list(args)
        index = 0
        only_positionals = False

        def store(option: Option, value: str | None) -> None:
            if option.flag:
                values[option.dest] = True
                return
            assert value is not None
            parsed = option.parse_value(value, self)
            if option.repeatable:
                values[option.dest].append(parsed)
            else:
                values[option.dest] = parsed

        def take_value(option: Option) -> str:
            nonlocal index
            if index + 1 >= len(words):
                raise UsageFailure(f"Missing value for '{option.display}'", self)
            index += 1
            return words[index]

        while index < len(words):
            word = words[index]
            verbatim = self.verbatim_after_first and positionals
            if verbatim or only_positionals or word == "-" or not word.startswith("-"):
                if word == "--" and not verbatim and not only_positionals:
                    only_positionals = True
                else:
                    positionals.append(word)
            elif word == "--":
                only_positionals = True
            elif word in ("-h", "--help"):
                return {"help": True}
            elif word.startswith("--"):
                name, has_value, inline = word[2:].partition("=")
                option = by_long.get(name)
                if option is None:
                    raise UsageFailure(f"Unknown option '--{name}'", self)
                if option.flag:
                    if has_value:
                        raise UsageFailure(f"Unknown option '{word}'", self)
                    store(option, None)
                else:
                    store(option, inline if has_value else take_value(option))
            else:
                letters = word[1:]
                for position, letter in enumerate(letters):
                    option = by_short.get(letter)
                    if option is None:
                        raise UsageFailure(f"Unknown option '-{letter}'", self)
                    if option.flag:
                        store(option, None)
                    elif position == len(letters) - 1:
                        store(option, take_value(option))
                    else:
                        store(option, letters[position + 1 :])
                        break
            index += 1

        for position, (dest, display) in enumerate(self.positionals):
            if display.endswith("..."):
                if len(positionals) <= position:
                    raise UsageFailure(f"Missing expected argument '{display}'", self)
                values[dest] = positionals[position:]
                positionals = positionals[:position]
                break
            if len(positionals) <= position:
                raise UsageFailure(f"Missing expected argument '{display}'", self)
            values[dest] = positionals[position]
        else:
            extra = positionals[len(self.positionals) :]
            if extra:
                raise UsageFailure(f"Unexpected argument '{extra[0]}'", self)
        return values


VERSION = "2.35.0"

# -- tart's commands ---------------------------------------------------------------------------

_NAME = (("name", "<name>"),)
_FORMAT = Option("format", "format", "format", choices=("text", "json"), default="text")
_INSECURE = Option("insecure", "insecure", flag=True)
_CONCURRENCY = Option("concurrency", "concurrency", "concurrency", convert=signed, default=4)

SPECS: dict[str, CommandSpec] = {
    spec.name: spec
    for spec in (
        CommandSpec(
            "create",
            "Create a VM",
            "create <name> [--from-ipsw <from-ipsw>] [--linux] [--disk-size <disk-size>] "
            "[--disk-format <disk-format>]",
            (
                Option("from-ipsw", "from_ipsw", "from-ipsw"),
                Option("linux", "linux", flag=True),
                Option("disk-size", "disk_size", "disk-size", convert=unsigned(16), default=50),
                Option(
                    "disk-format",
                    "disk_format",
                    "disk-format",
                    choices=("raw", "asif"),
                    default="raw",
                ),
            ),
            _NAME,
        ),
        CommandSpec(
            "clone",
            "Clone a VM",
            "clone <source-name> <new-name> [--insecure] [--concurrency <concurrency>] "
            "[--prune-limit <prune-limit>]",
            (
                _INSECURE,
                _CONCURRENCY,
                Option("prune-limit", "prune_limit", "prune-limit", convert=unsigned(64)),
                Option("deduplicate", "deduplicate", flag=True),
            ),
            (("source", "<source-name>"), ("new_name", "<new-name>")),
        ),
        CommandSpec(
            "run",
            "Run a VM",
            "run <name> [--no-graphics] [--serial] [--serial-path <serial-path>] [--no-audio] "
            "[--no-clipboard] [--recovery] [--vnc] [--vnc-experimental] [--disk <disk> ...] "
            "[--rosetta <tag>] [--dir <dir> ...] [--nested] [--net-bridged <interface name> ...] "
            "[--net-softnet] [--net-host] [--root-disk-opts <root-disk-opts>] [--suspendable] "
            "[--capture-system-keys] [--no-trackpad] [--no-pointer] [--no-keyboard]",
            (
                Option("no-graphics", "no_graphics", flag=True),
                Option("graphics", "graphics", flag=True),
                Option("serial", "serial", flag=True),
                Option("serial-path", "serial_path", "serial-path"),
                Option("no-audio", "no_audio", flag=True),
                Option("no-clipboard", "no_clipboard", flag=True),
                Option("recovery", "recovery", flag=True),
                Option("vnc", "vnc", flag=True),
                Option("vnc-experimental", "vnc_experimental", flag=True),
                Option("disk", "disk", "disk", repeatable=True),
                Option("rosetta", "rosetta", "tag"),
                Option("dir", "dir", "dir", repeatable=True),
                Option("nested", "nested", flag=True),
                Option("net-bridged", "net_bridged", "interface name", repeatable=True),
                Option("net-softnet", "net_softnet", flag=True),
                Option("net-host", "net_host", flag=True),
                Option("root-disk-opts", "root_disk_opts", "root-disk-opts", default=""),
                Option("suspendable", "suspendable", flag=True),
                Option("capture-system-keys", "capture_system_keys", flag=True),
                Option("no-trackpad", "no_trackpad", flag=True),
                Option("no-pointer", "no_pointer", flag=True),
                Option("no-keyboard", "no_keyboard", flag=True),
            ),
            _NAME,
        ),
        CommandSpec(
            "set",
            "Modify VM's configuration",
            "set <name> [--cpu <cpu>] [--memory <memory>] [--display <display>] "
            "[--display-refit] [--no-display-refit] [--random-mac] [--random-serial] "
            "[--disk <disk>] [--disk-size <disk-size>]",
            (
                Option("cpu", "cpu", "cpu", convert=unsigned(16)),
                Option("memory", "memory", "memory", convert=unsigned(64)),
                Option("display", "display", "display"),
                Option("display-refit", "display_refit", flag=True),
                Option("no-display-refit", "no_display_refit", flag=True),
                Option("random-mac", "random_mac", flag=True),
                Option("random-serial", "random_serial", flag=True),
                Option("disk", "disk", "disk"),
                Option("disk-size", "disk_size", "disk-size", convert=unsigned(16)),
            ),
            _NAME,
        ),
        CommandSpec(
            "get", "Get a VM's configuration", "get <name> [--format <format>]", (_FORMAT,), _NAME
        ),
        CommandSpec(
            "list",
            "List created VMs",
            "list [--source <source>] [--format <format>] [--quiet]",
            (
                Option(
                    "source",
                    "source",
                    "source",
                    choices=("local", "oci"),
                    invalid_message="'{value}' is not a valid <source>",
                ),
                _FORMAT,
                Option("quiet", "quiet", short="q", flag=True),
            ),
        ),
        CommandSpec(
            "ip",
            "Get VM's IP address",
            "ip <name> [--wait <wait>] [--resolver <resolver>]",
            (
                Option("wait", "wait", "wait", convert=unsigned(16), default=0),
                Option(
                    "resolver",
                    "resolver",
                    "resolver",
                    choices=("dhcp", "arp", "agent"),
                    default="dhcp",
                ),
            ),
            _NAME,
        ),
        CommandSpec(
            "exec",
            "Execute a command in a running VM",
            "exec [-i] [-t] <name> <command> ...",
            (
                Option("i", "interactive", short="i", flag=True),
                Option("t", "tty", short="t", flag=True),
            ),
            (("name", "<name>"), ("command", "<command> ...")),
            verbatim_after_first=True,
        ),
        CommandSpec(
            "pull",
            "Pull a VM from a registry",
            "pull <remote-name> [--insecure] [--concurrency <concurrency>]",
            (_INSECURE, _CONCURRENCY, Option("deduplicate", "deduplicate", flag=True)),
            (("remote_name", "<remote-name>"),),
        ),
        CommandSpec(
            "rename",
            "Rename a local VM",
            "rename <name> <new-name>",
            (),
            (("name", "<name>"), ("new_name", "<new-name>")),
        ),
        CommandSpec(
            "stop",
            "Stop a VM",
            "stop <name> [--timeout <timeout>]",
            (Option("timeout", "timeout", "timeout", short="t", convert=unsigned(64), default=30),),
            _NAME,
        ),
        CommandSpec("delete", "Delete a VM", "delete <name> ...", (), (("names", "<name> ..."),)),
        CommandSpec("fqn", "Get a fully-qualified VM name", "fqn <name>", (), _NAME),
        CommandSpec("suspend", "Suspend a VM", "suspend <name>", (), _NAME),
    )
}

#: Real tart subcommands the simulator does not model.
UNSIMULATED = {
    "login": "Login to a registry",
    "logout": "Logout from a registry",
    "push": "Push a VM to a registry",
    "import": "Import VM from a compressed .tvm file",
    "export": "Export VM to a compressed .tvm file",
    "prune": "Prune OCI and IPSW caches or local VMs",
}
_HELP_ORDER = (
    *("create", "clone", "run", "set", "get", "list", "login", "logout", "ip", "exec"),
    *("pull", "push", "import", "export", "prune", "rename", "stop", "delete", "suspend"),
)


def root_help() -> str:
    lines = [
        "OVERVIEW: fake-tart: a simulator of tart " + VERSION,
        "",
        "USAGE: tart <subcommand>",
        "",
        "OPTIONS:",
        "  --version               Show the version.",
        "  -h, --help              Show help information.",
        "",
        "SUBCOMMANDS:",
    ]
    for name in _HELP_ORDER:
        abstract = SPECS[name].abstract if name in SPECS else UNSIMULATED[name]
        lines.append(f"  {name:<24}{abstract}")
    lines += ["", "  See 'tart help <subcommand>' for detailed help."]
    return "\n".join(lines) + "\n"
