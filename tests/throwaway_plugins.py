"""Install backends as real entry points for one test: a throwaway distribution on sys.path."""

from __future__ import annotations

from pathlib import Path

import pytest
from stevedore.extension import ExtensionManager

#: A minimal backend plugin: options colour/size/name_prefix, never available.
PROBE_BACKEND_SOURCE = """
import dataclasses
from vms_core import Availability, BackendBase

@dataclasses.dataclass(frozen=True)
class Options:
    colour: str = "blue"
    size: int = 1
    name_prefix: str = "probe-"

class ProbeBackend(BackendBase):
    name = "probe"
    Options = Options
    default_source = "probe-image"

    def availability(self):
        return Availability(False, "probe tool not found")
"""


def install_backends(
    directory: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    module_name: str,
    module_source: str,
    entry_points: dict[str, str],
) -> None:
    """Write ``module_name`` and a dist-info registering ``entry_points`` in vms.backends.

    ``entry_points`` maps backend names to ``module:attribute`` targets (which may
    name modules that do not exist, to test a plugin that fails to import).
    """
    (directory / f"{module_name}.py").write_text(module_source)
    dist = directory / f"{module_name}-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {module_name.replace('_', '-')}\nVersion: 1.0\n"
    )
    lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
    (dist / "entry_points.txt").write_text(f"[vms.backends]\n{lines}")
    monkeypatch.syspath_prepend(str(directory))
    # stevedore caches entry points per namespace for the whole process; start afresh so
    # the throwaway distribution is seen even after other tests loaded a backend.
    monkeypatch.setattr(ExtensionManager, "ENTRY_POINT_CACHE", {})
