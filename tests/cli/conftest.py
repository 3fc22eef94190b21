"""Fixtures for the ``vms`` command: run it in-process against the kit's memory backend."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from kit.memory_backend import MemoryBackend

from vms_core.cli import app as cli_app
from vms_core.cli import selection


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What one ``vms`` invocation did."""

    status: int
    out: str
    err: str

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.startswith("vms: error:")]


Vms = Callable[..., Outcome]


@pytest.fixture(autouse=True)
def fresh_entry_point_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """Give each test its own view of installed plugins.

    stevedore caches entry points per namespace on a class attribute for the life of
    the process; without this, a test that installs a throwaway plugin would not see
    it, and the plugins loaded here would stay cached for other test modules.
    """
    from stevedore.extension import ExtensionManager

    monkeypatch.setattr(ExtensionManager, "ENTRY_POINT_CACHE", {})


@pytest.fixture
def memory(monkeypatch: pytest.MonkeyPatch) -> MemoryBackend:
    """The backend ``--backend memory`` loads in this test (one instance, state kept)."""
    backend = MemoryBackend()
    real_load_backend = selection.load_backend

    def load_backend(name: str, **options: Any) -> Any:
        return backend if name == "memory" else real_load_backend(name, **options)

    monkeypatch.setattr(selection, "load_backend", load_backend)
    return backend


@pytest.fixture
def vms(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Vms:
    """Run ``vms ARGS...`` in this process; a clean environment, no tart on PATH."""
    for variable in (selection.BACKEND_ENV, selection.CONFIG_ENV):
        monkeypatch.delenv(variable, raising=False)

    def run(*argv: str) -> Outcome:
        try:
            status = cli_app.main(list(argv))
        except SystemExit as exit_:  # argparse: usage errors, --version, --help
            status = int(exit_.code or 0)
        captured = capsys.readouterr()
        return Outcome(status, captured.out, captured.err)

    return run
