"""Backend discovery and loading through stevedore entry points (group ``vms.backends``)."""

from __future__ import annotations

import logging
import os
from typing import Any, cast

from vms_core.backend import Backend
from vms_core.errors import BackendNotInstalledError, ConfigError

logger = logging.getLogger(__name__)

NAMESPACE = "vms.backends"


def available_backends() -> list[str]:
    """Installed backend names, sorted, without importing any of them."""
    from importlib import metadata

    return sorted({ep.name for ep in metadata.entry_points(group=NAMESPACE)})


def load_backend_class(name: str) -> type[Backend]:
    """Import the class registered under ``name``; errors name what is installed."""
    from stevedore import driver
    from stevedore.exception import NoMatches

    failures: list[BaseException] = []

    def on_failure(_manager: Any, entrypoint: Any, err: BaseException) -> None:
        failures.append(err)

    try:
        manager = driver.DriverManager(
            NAMESPACE,
            name,
            invoke_on_load=False,
            on_load_failure_callback=on_failure,
        )
    except NoMatches:
        if failures:
            err = failures[0]
            raise BackendNotInstalledError(
                f"backend {name!r} is installed but failed to import: {type(err).__name__}: {err}"
            ) from err
        installed = ", ".join(available_backends()) or "none"
        raise BackendNotInstalledError(
            f"no backend named {name!r}; installed backends: {installed}"
        ) from None
    return cast("type[Backend]", manager.driver)


def load_backend(name: str, **options: Any) -> Backend:
    """Load the backend ``name`` and construct it with ``options``.

    Unknown or ill-typed options raise :class:`ConfigError` listing what the
    backend accepts.
    """
    backend_class = load_backend_class(name)
    backend = backend_class(**options)
    logger.debug("loaded backend %s with options %s", name, sorted(options))
    return backend


def read_config(path: str | os.PathLike[str]) -> tuple[str, dict[str, Any]]:
    """Read ``backend = "<name>"`` and the ``[<name>]`` options table from a TOML file."""
    import tomllib

    try:
        with open(path, "rb") as config_file:
            document = tomllib.load(config_file)
    except FileNotFoundError:
        raise ConfigError(f"config file {os.fspath(path)!r} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"config file {os.fspath(path)!r} is not valid TOML: {err}") from err
    except OSError as err:  # a directory, no permission, ...
        raise ConfigError(
            f"config file {os.fspath(path)!r} cannot be read: {err.strerror or err}"
        ) from err
    name = document.get("backend")
    if not isinstance(name, str) or not name:
        raise ConfigError(
            f'config file {os.fspath(path)!r} must set backend = "<name>" at the top level'
        )
    table = document.get(name, {})
    if not isinstance(table, dict):
        raise ConfigError(f"config file {os.fspath(path)!r}: [{name}] must be a table")
    return name, table


def load_backend_from_config(path: str | os.PathLike[str], **overrides: Any) -> Backend:
    """Load the backend a TOML file names, with its table's options (``overrides`` win)."""
    name, options = read_config(path)
    return load_backend(name, **{**options, **overrides})
