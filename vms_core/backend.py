"""What a backend offers: instance construction and provider operations."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from vms_core.errors import ConfigError, NotFoundError, VMError
from vms_core.instance import Capabilities, Instance
from vms_core.states import State

if TYPE_CHECKING:
    import datetime

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Availability:
    """Whether a backend can run on this machine, and why not."""

    available: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.available


@dataclasses.dataclass(frozen=True)
class VMInfo:
    """One VM as the backend's tool lists it."""

    name: str
    state: State
    #: The tool's own word for the state (e.g. tart's ``"suspended"``).
    backend_state: str
    running: bool
    source: str | None = None
    accessed: datetime.datetime | None = None


@dataclasses.dataclass(frozen=True)
class VMDetail:
    """One VM's configuration as the backend's tool reports it."""

    info: VMInfo
    cpus: int | None = None
    memory_mib: int | None = None
    disk_gb: int | None = None
    extras: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class DeleteReport:
    """What a bulk delete did; it carries on past failures."""

    deleted: list[str] = dataclasses.field(default_factory=list)
    failures: dict[str, VMError] = dataclasses.field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failures


@runtime_checkable
class Backend(Protocol):
    """A loaded backend. Entry points in ``vms.backends`` name classes of this shape,
    constructed with keyword options (see :func:`vms_core.options.parse_options`)."""

    #: The entry-point name.
    name: str

    @property
    def default_source(self) -> str:
        """The image ``create_instance`` clones when no source is given."""
        ...

    @property
    def name_prefix(self) -> str:
        """Generated instance names start with this; provider operations filter by it."""
        ...

    @property
    def capabilities(self) -> Capabilities: ...

    def availability(self) -> Availability:
        """Cheap check that the backend's tools exist here; never raises."""
        ...

    def create_instance(self, name: str | None = None, source: str | None = None) -> Instance:
        """A new instance in state Initial; a name is generated when not given."""
        ...

    def list_vms(self, prefix: str | None = None) -> list[VMInfo]:
        """This backend's local VMs whose names start with ``prefix`` (all when None)."""
        ...

    def get_vm(self, name: str) -> VMDetail:
        """Details of one VM; raises NotFoundError when missing."""
        ...

    def delete_all(
        self, prefix: str | None = None, *, stop_timeout: float | None = None
    ) -> DeleteReport:
        """Stop (if running) and delete every VM listed by ``list_vms(prefix)``.

        ``None`` means this backend's ``name_prefix``; an empty prefix is refused.
        """
        ...


class BackendBase:
    """Optional base class: options parsing, name generation and the bulk-delete loop.

    Subclasses set ``name`` and ``Options`` (a dataclass; a ``name_prefix`` field is
    honoured) and implement the :class:`Backend` methods plus ``_stop_for_delete``
    and ``_delete_by_name`` used by :meth:`delete_all`.
    """

    name: str = ""
    Options: type[Any]

    def __init__(self, **options: Any) -> None:
        from vms_core.options import parse_options

        self.options = parse_options(self.Options, options, backend=self.name)
        if getattr(self.options, "name_prefix", None) == "":
            # The prefix is what keeps delete_all() to this backend's own VMs.
            raise ConfigError(f"{self.name}.name_prefix must not be empty")

    @property
    def name_prefix(self) -> str:
        prefix = getattr(self.options, "name_prefix", "vms-")
        return str(prefix)

    def new_name(self) -> str:
        """A fresh VM name with this backend's prefix."""
        import secrets

        return f"{self.name_prefix}{secrets.token_hex(4)}"

    def list_vms(self, prefix: str | None = None) -> list[VMInfo]:
        raise NotImplementedError

    def _stop_for_delete(self, name: str, stop_timeout: float | None) -> None:
        raise NotImplementedError

    def _delete_by_name(self, name: str) -> None:
        raise NotImplementedError

    def delete_all(
        self, prefix: str | None = None, *, stop_timeout: float | None = None
    ) -> DeleteReport:
        """Stop and delete every VM whose name starts with ``prefix`` (default: ours).

        An empty prefix is refused: it would delete every VM the tool knows, including
        ones this library never made.
        """
        prefix = self.name_prefix if prefix is None else prefix
        if not prefix:
            raise ConfigError("delete_all with an empty prefix would delete every VM")
        report = DeleteReport()
        for info in self.list_vms(prefix):
            try:
                self._stop_and_delete(info, stop_timeout)
            except VMError as err:
                report.failures[info.name] = err
            else:
                report.deleted.append(info.name)
        return report

    def delete_vm(self, name: str, *, stop_timeout: float | None = None) -> None:
        """Stop (if running) and delete the VM named exactly ``name`` (never one it prefixes).

        Raises :class:`NotFoundError` when there is no such VM.
        """
        for info in self.list_vms(name):
            if info.name == name:
                self._stop_and_delete(info, stop_timeout)
                return
        raise NotFoundError(f"no VM named {name!r} on backend {self.name}")

    def _stop_and_delete(self, info: VMInfo, stop_timeout: float | None) -> None:
        if info.running:
            try:
                self._stop_for_delete(info.name, stop_timeout)
            except VMError as err:
                # Carry on: the delete below may still succeed, and its error tells the truth.
                logger.debug("stop of %s before delete failed: %s", info.name, err)
        self._delete_by_name(info.name)
