from __future__ import annotations

import dataclasses
from typing import Literal

import pytest

from vms_core import ConfigError
from vms_core.options import parse_options


@dataclasses.dataclass(frozen=True)
class Opts:
    binary: str = "tool"
    memory: int | None = None
    timeout: float = 30.0
    verbose: bool = False
    run_options: tuple[str, ...] = ()
    os: Literal["macos", "linux"] = "macos"


def test_defaults_and_coercions() -> None:
    opts = parse_options(
        Opts, {"timeout": 5, "run_options": ["--a", "--b"], "memory": 2048}, backend="x"
    )
    assert opts == Opts(timeout=5.0, run_options=("--a", "--b"), memory=2048)
    assert isinstance(opts.timeout, float)


def test_unknown_option_names_the_accepted_ones() -> None:
    with pytest.raises(ConfigError) as info:
        parse_options(Opts, {"binray": "x", "colour": 1}, backend="tart")
    message = str(info.value)
    assert "unknown option(s) for backend 'tart': binray, colour" in message
    assert "accepted: binary, memory, timeout, verbose, run_options, os" in message


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ({"memory": "lots"}, "x.memory: expected an integer"),
        ({"memory": True}, "x.memory: expected an integer"),
        ({"timeout": "soon"}, "x.timeout: expected a number"),
        ({"timeout": float("nan")}, "x.timeout: expected a finite number"),
        ({"timeout": float("inf")}, "x.timeout: expected a finite number"),
        ({"verbose": "yes"}, "x.verbose: expected bool"),
        ({"run_options": "--a"}, "x.run_options: expected a list"),
        ({"os": "windows"}, "x.os: 'windows' is not one of 'macos', 'linux'"),
    ],
)
def test_wrong_types_are_config_errors(values: dict[str, object], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment.replace(".", r"\.")):
        parse_options(Opts, values, backend="x")
    assert issubclass(ConfigError, ValueError)
