"""Backend options: validate keyword arguments or a TOML table against a dataclass."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar, Union

from vms_core.errors import ConfigError

T = TypeVar("T")


def option_names(options_type: type[Any]) -> list[str]:
    return [field.name for field in dataclasses.fields(options_type)]


def parse_options(options_type: type[T], values: Mapping[str, Any], *, backend: str) -> T:
    """Build ``options_type`` (a dataclass) from ``values``.

    Unknown names and values of the wrong type raise :class:`ConfigError` naming
    the accepted options. TOML integers are accepted where a float is declared and
    lists where a tuple is declared.
    """
    accepted = option_names(options_type)
    unknown = sorted(set(values) - set(accepted))
    if unknown:
        raise ConfigError(
            f"unknown option(s) for backend {backend!r}: {', '.join(unknown)}; "
            f"accepted: {', '.join(accepted)}"
        )
    hints = typing.get_type_hints(options_type)
    converted = {
        name: _coerce(value, hints[name], f"{backend}.{name}") for name, value in values.items()
    }
    try:
        return options_type(**converted)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"invalid options for backend {backend!r}: {err}") from err


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {value!r}")
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item_type = args[0] if args else Any
        return tuple(_coerce(item, item_type, where) for item in value)
    if origin in (dict, Mapping) or annotation in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a table, got {value!r}")
        return dict(value)
    if origin is typing.Literal:
        if value not in args:
            choices = ", ".join(repr(a) for a in args)
            raise ConfigError(f"{where}: {value!r} is not one of {choices}")
        return value
    if annotation is Any:
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        if not math.isfinite(value):  # TOML allows nan and inf; no option means either
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
        return float(value)
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if annotation in (str, bool):
        if not isinstance(value, annotation):
            raise ConfigError(f"{where}: expected {annotation.__name__}, got {value!r}")
        return value
    return value
