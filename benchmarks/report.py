"""What every benchmark reports, and the arithmetic the reports share.

A :class:`Metric` is one figure with its target. Ratios are taken between runs made
side by side in the same process (interleaved, alternating which goes first), and
the reported value is the median of the per-pair ratios: on noisy shared machines
a ratio of neighbours is far steadier than a ratio of two separate averages.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import Any, Literal

Direction = Literal["max", "min"]


@dataclasses.dataclass
class Metric:
    """One measured figure. ``value`` None means skipped (``reason`` says why)."""

    name: str
    value: float | None
    target: float | None
    unit: str = ""
    #: "max": the value must not exceed the target; "min": it must reach it.
    direction: Direction = "max"
    reason: str | None = None
    details: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def passed(self) -> bool | None:
        if self.value is None or self.target is None:
            return None
        if self.direction == "max":
            return self.value <= self.target
        return self.value >= self.target

    def to_json(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "target": self.target,
            "unit": self.unit,
            "direction": self.direction,
            "pass": self.passed,
            "reason": self.reason,
            "details": self.details,
        }


def skipped(name: str, target: float | None, reason: str, **kwargs: Any) -> Metric:
    return Metric(name, None, target, reason=reason, **kwargs)


def median_of_ratios(pairs: Sequence[tuple[float, float]]) -> float:
    """The median of ``library / bare`` over the pairs."""
    return statistics.median(library / bare for library, bare in pairs)


def interleaved(
    library: Callable[[], float], bare: Callable[[], float], rounds: int
) -> list[tuple[float, float]]:
    """``rounds`` pairs (library, bare), alternating which runs first so drift cancels."""
    pairs = []
    for index in range(rounds):
        if index % 2 == 0:
            first = library()
            pairs.append((first, bare()))
        else:
            second = bare()
            pairs.append((library(), second))
    return pairs


def fresh_python(code: str, *, env: dict[str, str] | None = None) -> str:
    """Run ``code`` in a fresh interpreter (this one's) and return its stdout."""
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=120,
    )
    if result.returncode != 0:
        raise RuntimeError(f"fresh interpreter failed ({result.returncode}): {result.stderr}")
    return result.stdout


def timed_snippet(code: str) -> str:
    """Python that runs ``code`` and prints its wall (perf_counter) and CPU milliseconds."""
    return (
        "import time\n"
        "_wall, _cpu = time.perf_counter(), time.process_time()\n"
        f"{code}\n"
        "print((time.perf_counter() - _wall) * 1000.0, (time.process_time() - _cpu) * 1000.0)\n"
    )


def fresh_times(code: str) -> tuple[float, float]:
    """Wall and CPU milliseconds ``code`` takes at the start of a fresh interpreter."""
    wall, cpu = fresh_python(timed_snippet(code)).strip().splitlines()[-1].split()
    return float(wall), float(cpu)


def _format_value(metric: Metric) -> str:
    if metric.value is None:
        return "skipped"
    text = f"{metric.value:.0f}" if abs(metric.value) >= 100 else f"{metric.value:.3g}"
    return f"{text} {metric.unit}".rstrip()


def _format_target(metric: Metric) -> str:
    if metric.target is None:
        return "-"
    sign = "<=" if metric.direction == "max" else ">="
    return f"{sign} {metric.target:g}"


def table(metrics: Sequence[Metric]) -> str:
    """A plain-text table: metric, value, target, verdict (and why a metric was skipped)."""
    rows = [("metric", "value", "target", "result")]
    for metric in metrics:
        verdict = {True: "pass", False: "MISS", None: "-"}[metric.passed]
        if metric.value is None:
            verdict = f"skipped: {metric.reason}"
        rows.append((metric.name, _format_value(metric), _format_target(metric), verdict))
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True))
        + "  "
        + row[3]
        for row in rows
    ]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def as_json(metrics: Sequence[Metric], machine: dict[str, Any], mode: str) -> str:
    return json.dumps(
        {
            "machine": machine,
            "mode": mode,
            "metrics": {metric.name: metric.to_json() for metric in metrics},
        },
        indent=2,
    )
