"""tart's name rules: which strings are remote (OCI) references, and how they display."""

from __future__ import annotations

import dataclasses
import re

_WORD = r"[A-Za-z0-9]+"
_HOST = rf"{_WORD}(?:-{_WORD})*(?:\.{_WORD}(?:-{_WORD})*)*"
_COMPONENT = rf"{_WORD}(?:[._-]+{_WORD})*"
_REMOTE = re.compile(
    rf"(?P<host>{_HOST}(?::[0-9]+)?)"
    rf"/(?P<namespace>{_COMPONENT}(?:/{_COMPONENT})*)"
    rf"(?::(?P<tag>{_COMPONENT})|@(?P<algorithm>{_WORD}):(?P<digest>{_WORD}))?"
)


class UnknownReferenceFormat(ValueError):
    """A digest reference with an algorithm other than sha256."""


@dataclasses.dataclass(frozen=True)
class RemoteName:
    host: str
    namespace: str
    tag: str | None = None
    digest: str | None = None  # "sha256:<hex>"

    @property
    def repository(self) -> str:
        return f"{self.host}/{self.namespace}"

    def __str__(self) -> str:
        if self.digest is not None:
            return f"{self.repository}@{self.digest}"
        return f"{self.repository}:{self.tag or 'latest'}"


def parse_remote(name: str) -> RemoteName | None:
    """The remote reference ``name`` spells, or None when tart would treat it as local.

    Raises :class:`UnknownReferenceFormat` for ``@<algo>:...`` digests other than sha256.
    """
    match = _REMOTE.fullmatch(name)
    if match is None:
        return None
    if match["algorithm"] is not None:
        if match["algorithm"] != "sha256":
            raise UnknownReferenceFormat("failed to parse remote name: unknown reference format")
        return RemoteName(match["host"], match["namespace"], digest=f"sha256:{match['digest']}")
    return RemoteName(match["host"], match["namespace"], tag=match["tag"] or "latest")


def is_remote(name: str) -> bool:
    try:
        return parse_remote(name) is not None
    except UnknownReferenceFormat:
        return True


#: The longest file name (in bytes) macOS and Linux file systems accept.
NAME_MAX_BYTES = 255


def is_usable_local_name(name: str) -> bool:
    """Whether ``name`` can be a directory under ``vms/`` (tart itself has no whitelist).

    ``.`` and ``..`` would be ``vms/`` itself or the home: tart fails on them (and on
    names the file system refuses) instead of touching other VMs, so the fake must too.
    """
    return (
        name not in {"", ".", ".."}
        and "/" not in name
        and "\0" not in name
        and len(name.encode("utf-8", "surrogateescape")) <= NAME_MAX_BYTES
    )
