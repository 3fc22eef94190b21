"""N instances cloned, started, stopped and deleted concurrently on the in-process fake.

One thread per instance, all through one :class:`~vms_tart.backend.TartBackend` over
one :class:`~vms_fake.inprocess.InProcessRunner`; a barrier holds every thread
until all N VMs are running, so N really run at once. The wall time comes from a
run without tracing; the memory from a second run under ``tracemalloc`` (Python
allocations, peak above the baseline, divided by N).
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

from report import Metric

from vms_core.lifecycle import cleanup
from vms_fake.inprocess import InProcessRunner
from vms_tart.backend import TartBackend

#: No thread may wait longer than this for the others (a hang is a failure, not a figure).
BARRIER_TIMEOUT = 300.0


def _run_all(count: int) -> tuple[float, list[BaseException]]:
    """Run ``count`` concurrent lifecycles; the wall time and the errors raised."""
    home = tempfile.mkdtemp(prefix="vms-bench-scale-")
    runner = InProcessRunner(home)
    backend = TartBackend(runner=runner)
    # Pull once up front: the figure is about running VMs, and concurrent first pulls of
    # one image race inside the simulator (TartHome.store_image; see docs/performance.md).
    pulled = runner.run(("pull", backend.default_source))
    if not pulled.ok:
        raise RuntimeError(f"pulling {backend.default_source} failed: {pulled.stderr}")
    all_running = threading.Barrier(count, timeout=BARRIER_TIMEOUT)
    errors: list[BaseException] = []

    def lifecycle(index: int) -> None:
        vm = backend.create_instance(f"scale-{index}")
        try:
            vm.clone()
            vm.start()
            all_running.wait()
            vm.stop()
            vm.delete()
        except BaseException as err:
            errors.append(err)
            all_running.abort()
        finally:
            cleanup(vm)

    threads = [
        threading.Thread(target=lifecycle, args=(index,), name=f"scale-{index}")
        for index in range(count)
    ]
    started = time.perf_counter()
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return time.perf_counter() - started, errors


def _traced(run: Callable[[], object]) -> int:
    """Peak bytes Python allocated during ``run`` above what was allocated before it."""
    tracemalloc.start()
    try:
        baseline, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        run()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - baseline


def _status_kib(field: str) -> int | None:
    """A ``/proc/self/status`` memory field (``VmRSS``, ``VmHWM``) in KiB, if available."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _rss_peak_delta_kib(run: Callable[[], object]) -> int | None:
    """How far the resident set's peak rose above its level before ``run`` (Linux only).

    Writing 5 to ``/proc/self/clear_refs`` resets the peak (``VmHWM``) to the current RSS.
    Unlike ``tracemalloc`` this includes thread stacks and native allocations.
    """
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        run()
        return None
    before = _status_kib("VmRSS")
    run()
    peak = _status_kib("VmHWM")
    return None if before is None or peak is None else peak - before


def measure(count: int) -> list[Metric]:
    """``scale_wall_seconds`` and ``scale_peak_kib_per_instance`` for ``count`` VMs."""
    outcome: list[tuple[float, list[BaseException]]] = []
    rss_kib = _rss_peak_delta_kib(lambda: outcome.append(_run_all(count)))
    seconds, errors = outcome[0]
    if errors:
        first = errors[0]
        reason = (
            f"{len(errors)} of {count} lifecycles failed; first: {type(first).__name__}: {first}"
        )
        return [
            Metric("scale_wall_seconds", None, None, unit="s", reason=reason),
            Metric("scale_peak_kib_per_instance", None, None, unit="KiB", reason=reason),
        ]
    peak = _traced(lambda: _run_all(count))
    return [
        Metric(
            "scale_wall_seconds", round(seconds, 3), None, unit="s", details={"instances": count}
        ),
        Metric(
            "scale_peak_kib_per_instance",
            round(peak / count / 1024.0, 1),
            None,
            unit="KiB",
            details={
                "instances": count,
                "measured_with": "tracemalloc",
                # From the untraced run: includes thread stacks and native memory.
                "rss_peak_kib_per_instance": None if rss_kib is None else round(rss_kib / count, 1),
            },
        ),
    ]
