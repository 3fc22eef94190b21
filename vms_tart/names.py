"""Validation of VM names and image sources before any tart command sees them.

tart has no character whitelist for local names; these are the strings it would
misread: an empty name, one containing ``/`` (tart takes it for a registry
reference, or refuses it as a new name), one starting with ``-`` (parsed as
an option), and the names no directory ``vms/<name>`` can have: ``.`` and ``..``
(``vms/`` itself and the home: every VM at once), NUL, and more than 255 bytes.
"""

from __future__ import annotations

from vms_core.errors import InvalidNameError

#: The longest file name, in bytes, that macOS (APFS) and Linux file systems accept.
NAME_MAX_BYTES = 255


def _common_problem(value: str) -> str | None:
    if not value:
        return "is empty"
    if value != value.strip():
        return "has leading or trailing white space"
    if value.startswith("-"):
        return "starts with '-' (tart would read it as an option)"
    if any(ord(char) < 32 for char in value):
        return "contains control characters (NUL included)"
    if any(0xD800 <= ord(char) <= 0xDFFF for char in value):
        # Bytes that were not UTF-8 (surrogateescape): APFS file names must be UTF-8.
        return "contains bytes that are not UTF-8"
    return None


def _file_name_problem(name: str) -> str | None:
    if name in (".", ".."):
        return "is not a usable directory name (tart would act on the VM directory itself)"
    if len(name.encode("utf-8", "surrogateescape")) > NAME_MAX_BYTES:
        return f"is longer than {NAME_MAX_BYTES} bytes, the longest file name"
    return None


def validate_name(name: str) -> str:
    """Return ``name`` if tart would read it as the local VM name meant; else raise."""
    problem = _common_problem(name)
    if problem is None and "/" in name:
        problem = "contains '/' (tart would read it as a registry reference)"
    if problem is None:
        problem = _file_name_problem(name)
    if problem is not None:
        raise InvalidNameError(f"invalid VM name {name!r}: it {problem}")
    return name


def validate_source(source: str) -> str:
    """Return ``source`` (a local VM name or a registry reference) if usable; else raise."""
    problem = _common_problem(source)
    if problem is None and (source.startswith("/") or source.endswith("/") or "//" in source):
        problem = "is neither a local VM name nor a registry reference"
    if problem is None and "/" not in source:
        problem = _file_name_problem(source)
    if problem is not None:
        raise InvalidNameError(f"invalid image source {source!r}: it {problem}")
    return source
