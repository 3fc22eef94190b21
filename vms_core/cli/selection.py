"""Which backend a ``vms`` command uses, and why.

Precedence: ``--backend``, then ``--config`` (or ``VMS_CONFIG``), then ``VMS_BACKEND``,
then ``tart`` when a tart binary is on PATH, else ``fake`` (the simulator, which
runs anywhere).
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable, Mapping
from typing import Any

from vms_core.backend import Backend
from vms_core.errors import BackendUnavailableError, ConfigError, VMError
from vms_core.plugins import load_backend, read_config

CONFIG_ENV = "VMS_CONFIG"
BACKEND_ENV = "VMS_BACKEND"

Which = Callable[[str], str | None]


@dataclasses.dataclass(frozen=True)
class BackendChoice:
    """A backend name, the options to construct it with, and the reason it was chosen."""

    name: str
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    reason: str = ""
    #: The config file the options came from, if any.
    config: str | None = None

    def command_line(self) -> list[str]:
        """Options that make another ``vms`` command choose the same backend, same options."""
        if self.config:
            return ["--config", self.config]
        return ["--backend", self.name]

    def describe(self) -> str:
        """The one line ``vms`` prints on stderr about the choice."""
        return f"backend {self.name} ({self.reason})"


def choose_backend(
    backend: str | None,
    config: str | None,
    environ: Mapping[str, str],
    *,
    which: Which = shutil.which,
) -> BackendChoice:
    """Apply the precedence rules. A config file's options apply only to the backend it names.

    An explicit ``--config`` naming another backend than ``--backend`` is a
    :class:`ConfigError`; a ``VMS_CONFIG`` from the environment is then ignored.
    """
    config_from_env = False
    if not config and environ.get(CONFIG_ENV):
        config = environ[CONFIG_ENV]
        config_from_env = True
    ignored = ""
    if config and config_from_env and backend:
        # --backend wins over the environment: an unreadable VMS_CONFIG must not stop it.
        try:
            read_config(config)
        except ConfigError as error:
            ignored = f"; {CONFIG_ENV}={config} ignored: {error}"
            config = None
    if config:
        config_name, options = read_config(config)
        where = f"{CONFIG_ENV}={config}" if config_from_env else f"config file {config}"
        if backend is None or backend == config_name:
            reason = f"--backend, options from {where}" if backend else where
            return BackendChoice(config_name, options, reason, config)
        if not config_from_env:
            raise ConfigError(
                f"--backend {backend} conflicts with {where}, which names backend {config_name!r}"
            )
    if backend:
        return BackendChoice(backend, {}, f"--backend{ignored}")
    if environ.get(BACKEND_ENV):
        return BackendChoice(environ[BACKEND_ENV], {}, BACKEND_ENV)
    tart = which("tart")
    if tart:
        return BackendChoice("tart", {}, f"found tart at {tart}")
    return BackendChoice(
        "fake", {}, f"no --backend, {CONFIG_ENV} or {BACKEND_ENV}, and no tart on PATH"
    )


def load_available(choice: BackendChoice) -> Backend:
    """Load the chosen backend and make sure it can run here.

    Raises :class:`BackendNotInstalledError`, :class:`ConfigError` or
    :class:`BackendUnavailableError` with the backend's own reason.
    """
    try:
        loaded = load_backend(choice.name, **dict(choice.options))
        availability = loaded.availability()
    except VMError:
        raise  # already says what is wrong, with its own status
    except Exception as error:
        # A constructor that trips over its options (an unusable directory, a malformed
        # file it names) is the user's setup to fix, not a bug to report with a traceback.
        cause = f"{type(error).__name__}: {error}"
        if choice.config:
            raise ConfigError(
                f"backend {choice.name} could not be set up with the options from "
                f"config file {choice.config}: {cause}"
            ) from error
        raise BackendUnavailableError(
            f"backend {choice.name} could not be set up: {cause}"
        ) from error
    if not availability:
        reason = availability.reason or "no reason given"
        raise BackendUnavailableError(f"backend {choice.name} cannot run here: {reason}")
    return loaded
