"""The ``vms`` command."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from vms_core.errors import VMError
from vms_core.plugins import available_backends, load_backend
from vms_core.render import FORMATS, render


def _cmd_states(args: argparse.Namespace) -> int:
    sys.stdout.write(render(args.format))
    return 0


def _cmd_backends(args: argparse.Namespace) -> int:
    rows = []
    for name in available_backends():
        try:
            availability = load_backend(name).availability()
            rows.append(
                {"name": name, "available": availability.available, "reason": availability.reason}
            )
        except VMError as err:
            rows.append({"name": name, "available": False, "reason": str(err)})
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for row in rows:
            status = "available" if row["available"] else f"unavailable: {row['reason']}"
            sys.stdout.write(f"{row['name']:<8} {status}\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vms", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    states = sub.add_parser("states", help="print the lifecycle transition table")
    states.add_argument("--format", choices=FORMATS, default="text")
    states.set_defaults(func=_cmd_states)
    backends = sub.add_parser("backends", help="list installed backends")
    backends.add_argument("--json", action="store_true")
    backends.set_defaults(func=_cmd_backends)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
