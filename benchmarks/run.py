"""What the vms framework costs over the raw tools, measured side by side (issue 8).

    .venv/bin/python benchmarks/run.py            # the full run, a table
    .venv/bin/python benchmarks/run.py --quick    # about a minute on 2 busy cores
    .venv/bin/python benchmarks/run.py --json     # one JSON object on stdout

Ratios compare the library with a bare equivalent run alternately in the same
process (median of the per-pair ratios), so a noisy machine moves both sides.
The exit status is 0 even when a target is missed (this is a report), unless
``--strict``. Progress goes to stderr. See docs/performance.md for the figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import report
from report import Direction, Metric


@dataclasses.dataclass(frozen=True)
class Sizes:
    """How much of each benchmark to run."""

    lifecycle_rounds: int
    fresh_process_samples: int
    hypothesis_programs: int
    scale_instances: int
    qemu_boots: int


FULL = Sizes(
    lifecycle_rounds=15,
    fresh_process_samples=21,
    hypothesis_programs=100,
    scale_instances=100,
    qemu_boots=5,
)
QUICK = Sizes(
    lifecycle_rounds=5,
    fresh_process_samples=7,
    hypothesis_programs=20,
    scale_instances=20,
    qemu_boots=2,
)


@dataclasses.dataclass(frozen=True)
class Benchmark:
    """A group of metrics measured together (its metric names are what ``--skip`` takes)."""

    metrics: tuple[str, ...]
    run: Callable[[Sizes], list[Metric]]
    #: Used when the benchmark is skipped: each metric's target.
    targets: tuple[float | None, ...]
    #: Each metric's direction when skipped ("max": lower is better).
    directions: tuple[Direction, ...] | None = None


def _lifecycle(sizes: Sizes) -> list[Metric]:
    import lifecycle_bench

    return lifecycle_bench.measure(sizes.lifecycle_rounds)


def _startup(sizes: Sizes) -> list[Metric]:
    import startup_bench

    return startup_bench.measure(sizes.fresh_process_samples)


def _statemachine(sizes: Sizes) -> list[Metric]:
    import statemachine_bench

    return statemachine_bench.measure(sizes.hypothesis_programs)


def _scale(sizes: Sizes) -> list[Metric]:
    import scale_bench

    return scale_bench.measure(sizes.scale_instances)


def _qemu(sizes: Sizes) -> list[Metric]:
    import qemu_bench

    return qemu_bench.measure(sizes.qemu_boots)


BENCHMARKS = (
    Benchmark(
        ("lifecycle_overhead_ratio", "tart_invocations_per_lifecycle"), _lifecycle, (1.15, 7)
    ),
    Benchmark(("import_ms", "backend_load_ratio"), _startup, (30.0, 1.10)),
    Benchmark(("hypothesis_steps_per_second",), _statemachine, (1000.0,), ("min",)),
    Benchmark(("qemu_start_ratio",), _qemu, (1.10,)),
    Benchmark(("scale_wall_seconds", "scale_peak_kib_per_instance"), _scale, (None, None)),
)
METRIC_NAMES = tuple(name for bench in BENCHMARKS for name in bench.metrics)


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "load_average_at_start": [round(load, 2) for load in os.getloadavg()],
    }


def run(sizes: Sizes, skip: frozenset[str]) -> list[Metric]:
    metrics: list[Metric] = []
    for bench in BENCHMARKS:
        if skip.issuperset(bench.metrics):
            metrics += [
                report.skipped(name, target, "skipped by --skip", direction=direction)
                for name, target, direction in zip(
                    bench.metrics,
                    bench.targets,
                    bench.directions or ("max",) * len(bench.metrics),
                    strict=True,
                )
            ]
            continue
        started = time.perf_counter()
        print(f"measuring {', '.join(bench.metrics)} ...", file=sys.stderr, flush=True)
        metrics += bench.run(sizes)
        print(f"  done in {time.perf_counter() - started:.1f}s", file=sys.stderr, flush=True)
    return metrics


def exit_status(metrics: Sequence[Metric], *, strict: bool) -> int:
    """0, or with ``strict`` 1 when any measured metric missed its target."""
    if strict and any(metric.passed is False for metric in metrics):
        return 1
    return 0


def _names(text: str) -> frozenset[str]:
    names = frozenset(name.strip() for name in text.split(",") if name.strip())
    unknown = names - set(METRIC_NAMES)
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown metric {', '.join(sorted(unknown))}; known: {', '.join(METRIC_NAMES)}"
        )
    return names


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="a short run (about a minute)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 when a measured metric misses its target"
    )
    parser.add_argument(
        "--skip",
        type=_names,
        default=frozenset(),
        metavar="METRIC[,METRIC]",
        help="leave these out (reported as null); a benchmark runs if any of its metrics is kept",
    )
    args = parser.parse_args(argv)
    host = machine()
    metrics = run(QUICK if args.quick else FULL, args.skip)
    mode = "quick" if args.quick else "full"
    if args.json:
        print(report.as_json(metrics, host, mode))
    else:
        print(
            f"{host['cpu_model']}, {host['nproc']} CPUs, Python {host['python']}, "
            f"load {host['load_average_at_start']} ({mode} run)\n"
        )
        print(report.table(metrics))
    return exit_status(metrics, strict=args.strict)


if __name__ == "__main__":
    sys.exit(main())
