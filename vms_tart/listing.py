"""``tart list --format json`` as typed entries, and tart's state words as :class:`State`."""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
from collections.abc import Iterator, Sequence
from typing import Any, overload

from vms_core.errors import BackendCommandError
from vms_core.states import State
from vms_tart.errors import check
from vms_tart.runner import TartRunner

logger = logging.getLogger(__name__)

LIST_ARGS = ("list", "--format", "json")

#: tart's three state words (plus ``deleted``, which the Go library also maps).
TART_STATES = {
    "running": State.RUNNING,
    "suspended": State.SUSPENDED,
    "stopped": State.STOPPED,
    "deleted": State.DELETED,
}


def to_state(tart_state: str) -> State:
    """Map tart's state word; anything unknown is ``Initial`` (as the Go library does)."""
    state = TART_STATES.get(tart_state.lower())
    if state is None:
        logger.debug("unknown tart state %r, taken as Initial", tart_state)
        return State.INITIAL
    return state


def _parse_accessed(value: Any) -> datetime.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclasses.dataclass(frozen=True)
class ListEntry:
    """One row of ``tart list``: a local VM (source ``local``) or an OCI cache entry."""

    name: str
    source: str
    #: tart's own word: ``running``, ``suspended`` or ``stopped``.
    tart_state: str
    running: bool
    disk_gb: int | None = None
    size_gb: int | None = None
    accessed: datetime.datetime | None = None

    @property
    def state(self) -> State:
        return to_state(self.tart_state)

    @property
    def is_local(self) -> bool:
        return self.source.lower() == "local"

    @classmethod
    def from_json(cls, row: Any) -> ListEntry:
        if not isinstance(row, dict) or not isinstance(row.get("Name"), str):
            raise ValueError(f"not a tart list entry: {row!r}")
        tart_state = row.get("State")
        running = bool(row.get("Running", False))
        if not isinstance(tart_state, str):  # tart before 1.8 had only Running
            tart_state = "running" if running else "stopped"
        return cls(
            name=row["Name"],
            source=str(row.get("Source", "")),
            tart_state=tart_state,
            running=running,
            disk_gb=_int(row.get("Disk")),
            size_gb=_int(row.get("Size")),
            accessed=_parse_accessed(row.get("Accessed")),
        )


class ListEntries(Sequence[ListEntry]):
    """The entries of one ``tart list``, with lookups."""

    def __init__(self, entries: Sequence[ListEntry]) -> None:
        self._entries = tuple(entries)

    @overload
    def __getitem__(self, index: int) -> ListEntry: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[ListEntry]: ...
    def __getitem__(self, index: int | slice) -> ListEntry | Sequence[ListEntry]:
        return self._entries[index]

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[ListEntry]:
        return iter(self._entries)

    def __repr__(self) -> str:
        return f"ListEntries({list(self._entries)!r})"

    def lookup(self, name: str) -> ListEntry | None:
        """The first entry named ``name``, local VMs first (tart lists them first)."""
        return next((entry for entry in self._entries if entry.name == name), None)

    def lookup_source_name(self, source: str, name: str) -> ListEntry | None:
        """The entry with this source (``local`` or ``OCI``, any case) and name."""
        wanted = source.lower()
        return next(
            (e for e in self._entries if e.name == name and e.source.lower() == wanted), None
        )

    def local(self) -> ListEntries:
        return ListEntries([entry for entry in self._entries if entry.is_local])


def parse_list_output(argv: Sequence[str], stdout: str) -> ListEntries:
    """Parse ``tart list --format json`` output; malformed output is a command error."""
    try:
        rows = json.loads(stdout) if stdout.strip() else []
        if not isinstance(rows, list):
            raise ValueError("expected a JSON array")
        return ListEntries([ListEntry.from_json(row) for row in rows])
    except ValueError as err:
        raise BackendCommandError(
            argv, 0, stdout, message=f"malformed JSON from tart list: {err}"
        ) from err


def list_all(runner: TartRunner, *, timeout: float | None = None) -> ListEntries:
    """Every VM and OCI cache entry tart knows, from ``tart list --format json``."""
    result = check(runner.run(LIST_ARGS, timeout=timeout), "tart list failed")
    return parse_list_output(result.argv, result.stdout)
