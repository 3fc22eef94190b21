"""``TartBackend``: the ``tart`` entry point of ``vms.backends``."""

from __future__ import annotations

import json
import logging
from typing import Any

from typing_extensions import override

from vms_core.backend import Availability, BackendBase, VMDetail, VMInfo
from vms_core.errors import BackendCommandError
from vms_core.instance import Capabilities
from vms_tart.config import TartOptions, whole_seconds
from vms_tart.errors import NOT_RUNNING, check, result_error
from vms_tart.instance import TartInstance
from vms_tart.listing import list_all, to_state
from vms_tart.names import validate_name, validate_source
from vms_tart.runner import TartRunner
from vms_tart.subprocess_runner import SubprocessRunner

logger = logging.getLogger(__name__)


class TartBackend(BackendBase):
    """VMs managed by a tart CLI (real ``tart``, or ``fake-tart`` via ``binary``).

    ``runner`` replaces the default :class:`SubprocessRunner` (tests, the in-process
    simulator); every other keyword is an option of :class:`TartOptions`.
    """

    name = "tart"
    Options: type[Any] = TartOptions
    options: TartOptions

    def __init__(self, *, runner: TartRunner | None = None, **options: Any) -> None:
        super().__init__(**options)
        self.runner: TartRunner = runner or self._default_runner()

    def _default_runner(self) -> TartRunner:
        """The runner used when none is given (subclasses plug in others here)."""
        return SubprocessRunner(
            self.options.binary, env=self.options.env, kill_on_exit=self.options.kill_on_exit
        )

    def _tart_options(self) -> TartOptions:
        """The options instances get (subclasses with other option types convert here)."""
        return self.options

    @property
    def default_source(self) -> str:
        return self.options.source

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(suspend=self._tart_options().suspendable)

    def availability(self) -> Availability:
        return self.runner.availability()

    def create_instance(self, name: str | None = None, source: str | None = None) -> TartInstance:
        return TartInstance(
            validate_name(name if name is not None else self.new_name()),
            validate_source(source if source is not None else self.default_source),
            self.runner,
            self._tart_options(),
        )

    @override
    def list_vms(self, prefix: str | None = None) -> list[VMInfo]:
        """Local VMs (not the OCI cache) whose names start with ``prefix``.

        A ``tart list`` that hangs is killed after ``state_timeout`` (OperationTimeoutError).
        """
        logger.debug("tart list --format json (prefix=%s)", prefix)
        return [
            VMInfo(
                name=entry.name,
                state=entry.state,
                backend_state=entry.tart_state,
                running=entry.running,
                source=entry.source,
                accessed=entry.accessed,
            )
            for entry in list_all(self.runner, timeout=self.options.state_timeout).local()
            if prefix is None or entry.name.startswith(prefix)
        ]

    def get_vm(self, name: str) -> VMDetail:
        """``tart get <name> --format json``; a missing VM raises NotFoundError."""
        validate_name(name)
        logger.debug("tart get %s --format json (vm=%s)", name, name)
        result = check(
            self.runner.run(("get", name, "--format", "json"), timeout=self.options.state_timeout),
            f"tart get {name} failed",
        )
        try:
            data = json.loads(result.stdout)
            if not isinstance(data, dict):
                raise ValueError("expected a JSON object")
        except ValueError as err:
            raise BackendCommandError(
                result.argv, 0, result.stdout, message=f"malformed JSON from tart get: {err}"
            ) from err
        tart_state = str(data.get("State", "running" if data.get("Running") else "stopped"))
        info = VMInfo(
            name=name,
            state=to_state(tart_state),
            backend_state=tart_state,
            running=bool(data.get("Running", tart_state == "running")),
            source="local",
        )
        known = {"CPU", "Memory", "Disk", "State", "Running"}
        return VMDetail(
            info=info,
            cpus=_int_or_none(data.get("CPU")),
            memory_mib=_int_or_none(data.get("Memory")),
            disk_gb=_int_or_none(data.get("Disk")),
            extras={key: value for key, value in data.items() if key not in known},
        )

    @override
    def _stop_for_delete(self, name: str, stop_timeout: float | None) -> None:
        timeout = stop_timeout if stop_timeout is not None else self.options.stop_timeout
        args = ("stop", name, "--timeout", str(whole_seconds(timeout)))
        logger.debug("tart %s (vm=%s)", " ".join(args), name)
        result = self.runner.run(args, timeout=timeout + self.options.force_stop_timeout)
        if not result.ok and not NOT_RUNNING.search(result.stderr):
            raise result_error(result, f"tart stop of {name} failed")

    @override
    def _delete_by_name(self, name: str) -> None:
        logger.debug("tart delete %s (vm=%s)", name, name)
        check(self.runner.run(("delete", name)), f"tart delete of {name} failed")


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
