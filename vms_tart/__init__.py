"""The tart backend: VMs driven through the ``tart`` CLI (or the ``fake-tart`` simulator).

Entry point ``tart`` of ``vms.backends``; see ``docs/tart.md``.
"""

from vms_tart.backend import TartBackend
from vms_tart.config import TartOptions
from vms_tart.instance import TartInstance
from vms_tart.listing import ListEntries, ListEntry, list_all
from vms_tart.runner import CommandResult, RunProcess, TartRunner
from vms_tart.subprocess_runner import SubprocessRunner

__all__ = [
    "CommandResult",
    "ListEntries",
    "ListEntry",
    "RunProcess",
    "SubprocessRunner",
    "TartBackend",
    "TartInstance",
    "TartOptions",
    "TartRunner",
    "list_all",
]
