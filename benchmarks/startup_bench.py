"""Fresh-interpreter costs: ``import vms_core``, and loading the tart backend by name.

Each sample is a new interpreter that times the work itself with ``perf_counter``,
so the interpreter's own startup (reported alongside for context) does not dilute
the figures.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

from report import Metric, fresh_times, interleaved, median_of_ratios

IMPORT_CORE = "import vms_core"
LOAD_BY_NAME = "from vms_core import load_backend\nload_backend('tart')"
IMPORT_DIRECT = "from vms_tart.backend import TartBackend\nTartBackend()"


def interpreter_startup_ms() -> float:
    """Wall time of ``python -c pass`` (with site, as every sample above pays it)."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return (time.perf_counter() - started) * 1000.0


def measure(samples: int) -> list[Metric]:
    """``import_ms`` (with interpreter startup for context) and ``backend_load_ratio``."""
    import_times = [fresh_times(IMPORT_CORE) for _ in range(samples)]
    import_ms = [wall for wall, _ in import_times]
    startup_ms = [interpreter_startup_ms() for _ in range(samples)]
    by_name: list[tuple[float, float]] = []
    direct: list[tuple[float, float]] = []

    def sample(code: str, into: list[tuple[float, float]]) -> float:
        into.append(fresh_times(code))
        return into[-1][0]

    pairs = interleaved(
        lambda: sample(LOAD_BY_NAME, by_name), lambda: sample(IMPORT_DIRECT, direct), samples
    )
    cpu_pairs = [(a[1], b[1]) for a, b in zip(by_name, direct, strict=True)]
    return [
        Metric(
            "import_ms",
            round(statistics.median(import_ms), 1),
            30.0,
            unit="ms",
            details={
                "samples": samples,
                "min_ms": round(min(import_ms), 1),
                # CPU time moves less than wall time when other work shares the cores.
                "cpu_ms_median": round(statistics.median(cpu for _, cpu in import_times), 1),
                "interpreter_startup_ms": round(statistics.median(startup_ms), 1),
            },
        ),
        Metric(
            "backend_load_ratio",
            round(median_of_ratios(pairs), 3),
            1.10,
            details={
                "samples": samples,
                "by_name_ms_median": round(statistics.median(p[0] for p in pairs), 1),
                "direct_ms_median": round(statistics.median(p[1] for p in pairs), 1),
                "cpu_ratio": round(median_of_ratios(cpu_pairs), 3),
            },
        ),
    ]
