"""benchmarks/run.py: a quick run prints every metric, and the report's rules hold.

No timing is asserted anywhere: the figures belong in docs/performance.md, not in CI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
EXPECTED_METRICS = {
    "lifecycle_overhead_ratio",
    "tart_invocations_per_lifecycle",
    "backend_load_ratio",
    "import_ms",
    "hypothesis_steps_per_second",
    "qemu_start_ratio",
    "scale_wall_seconds",
    "scale_peak_kib_per_instance",
}


@pytest.fixture
def bench_modules(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The benchmark scripts importable as the modules run.py itself imports."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    yield


def processes_with_marker(marker: str) -> list[str]:
    """Processes whose environment carries ``marker`` (what a benchmark run left behind)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if marker.encode() in (proc / "environ").read_bytes():
                found.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:  # gone, or not ours to read
            continue
    return found


@pytest.mark.timeout(300)
def test_quick_json_run_reports_every_metric_and_leaves_no_process() -> None:
    marker = f"VMS_BENCH_SMOKE={uuid.uuid4().hex}"
    key, value = marker.split("=")
    # QEMU boots are covered by tests/qemu; here its metric must still be reported.
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "run.py"), "--quick", "--json",
         "--skip", "qemu_start_ratio"],
        check=False, capture_output=True, text=True, timeout=280, env={**os.environ, key: value},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)  # one JSON object, nothing else on stdout
    assert report["mode"] == "quick"
    assert {"nproc", "cpu_model", "python"} <= set(report["machine"])
    metrics = report["metrics"]
    assert set(metrics) == EXPECTED_METRICS
    for name, metric in metrics.items():
        assert {"value", "target", "pass", "reason"} <= set(metric), name
        if metric["value"] is None:
            assert metric["reason"], f"{name} is null without a reason"
    assert metrics["qemu_start_ratio"]["value"] is None
    assert "--skip" in metrics["qemu_start_ratio"]["reason"]
    # Everything else was measured (a null would mean a benchmark broke).
    measured = EXPECTED_METRICS - {"qemu_start_ratio"}
    assert all(metrics[name]["value"] is not None for name in measured), metrics
    invocations = metrics["tart_invocations_per_lifecycle"]
    assert invocations["value"] >= 7
    assert invocations["details"]["sequence"][:2] == ["clone", "run"]
    assert processes_with_marker(marker) == []


def test_strict_fails_only_on_a_missed_target(bench_modules: None) -> None:
    from report import Metric
    from run import exit_status

    missed = Metric("x", 2.0, 1.0)
    skipped = Metric("y", None, 1.0, reason="not installed")
    met = Metric("z", 500.0, 100.0, direction="min")
    assert exit_status([missed, met], strict=False) == 0
    assert exit_status([missed, met], strict=True) == 1
    assert exit_status([skipped, met], strict=True) == 0


def test_a_metric_passes_by_its_direction(bench_modules: None) -> None:
    from report import Metric

    assert Metric("ratio", 1.10, 1.10).passed is True
    assert Metric("ratio", 1.11, 1.10).passed is False
    assert Metric("rate", 999.0, 1000.0, direction="min").passed is False
    assert Metric("rate", None, 1000.0, direction="min").passed is None


def test_skip_rejects_unknown_metric_names() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "run.py"), "--skip", "import_msec"],
        check=False, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "unknown metric import_msec" in result.stderr
    assert "import_ms" in result.stderr


def test_interleaving_alternates_which_side_runs_first(bench_modules: None) -> None:
    from report import interleaved, median_of_ratios

    order: list[str] = []

    def side(name: str, seconds: float) -> float:
        order.append(name)
        return seconds

    pairs = interleaved(lambda: side("lib", 3.0), lambda: side("bare", 2.0), 4)
    assert order == ["lib", "bare", "bare", "lib", "lib", "bare", "bare", "lib"]
    assert pairs == [(3.0, 2.0)] * 4
    assert median_of_ratios([(3.0, 2.0), (1.0, 1.0), (4.0, 2.0)]) == 1.5


def test_bare_qemu_uses_the_backend_argv_with_the_console_on_a_pipe(bench_modules: None) -> None:
    from qemu_bench import bare_argv

    backend = ["qemu-system-x86_64", "-chardev", "file,id=serial0,path=/d/serial.log",
               "-serial", "chardev:serial0", "-kernel", "/k"]  # fmt: skip
    assert bare_argv(backend) == [
        "qemu-system-x86_64", "-chardev", "stdio,id=serial0,signal=off",
        "-serial", "chardev:serial0", "-kernel", "/k",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="serial0"):
        bare_argv(["qemu-system-x86_64", "-kernel", "/k"])
