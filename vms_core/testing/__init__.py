"""The testing kit: a conformance suite, a hypothesis state machine and a pytest plugin.

Shipped so that backend authors, and libraries coding against ``vms_core``, can
test with the tools this project tests itself with. The state machine and the
profiles need the ``testing`` extra (hypothesis); the conformance suite does not.
Names are imported lazily: importing this package (which every pytest run does,
through the plugin) costs nothing.

- :class:`Harness`, :class:`FaultInjector` (``vms_core.testing.harness``): what
  the kit knows about a backend under test; :class:`KitFailure`, what it raises.
- :func:`run_conformance`, :class:`ConformanceTests` (``.conformance``).
- :class:`InstanceStateMachine` (``.statemachine``).
- profiles for hypothesis (``.profiles``), the pytest plugin (``.plugin``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vms_core.testing.conformance import ConformanceTests, run_conformance
    from vms_core.testing.harness import (
        DELAY,
        DIE,
        FAIL,
        ChildCensus,
        FaultInjector,
        Harness,
        HarnessFactory,
        KitFailure,
        as_harness,
        child_processes,
    )
    from vms_core.testing.statemachine import InstanceStateMachine

_EXPORTS = {
    "DELAY": "harness",
    "DIE": "harness",
    "FAIL": "harness",
    "HANG": "harness",
    "HangInjector": "harness",
    "FaultInjector": "harness",
    "Harness": "harness",
    "HarnessFactory": "harness",
    "KitFailure": "harness",
    "ChildCensus": "harness",
    "as_harness": "harness",
    "child_processes": "harness",
    "ConformanceTests": "conformance",
    "run_conformance": "conformance",
    "InstanceStateMachine": "statemachine",
}

__all__ = [
    "DELAY",
    "DIE",
    "FAIL",
    "HANG",
    "ChildCensus",
    "ConformanceTests",
    "FaultInjector",
    "HangInjector",
    "Harness",
    "HarnessFactory",
    "InstanceStateMachine",
    "KitFailure",
    "as_harness",
    "child_processes",
    "run_conformance",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
