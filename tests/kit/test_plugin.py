"""The pytest plugin: options, fixtures, the availability marker, and a cheap import."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

import vms_core.plugins
from vms_core import Availability

from .memory_backend import MemoryBackend, MemoryTool

INNER_TESTS = """
def test_instance_is_running(vm_instance, vm_backend):
    assert vm_instance.state().value == "Running"
    assert vm_instance.exec("echo", "hi").stdout == "hi\\n"
    assert vm_backend.name_prefix == PREFIX
"""


class Loads:
    """Stands in for the entry-point loader: records names, hands out memory backends."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, available: bool = True) -> None:
        self.names: list[str] = []
        self.tool = MemoryTool()
        tool = self.tool

        class SharedToolBackend(MemoryBackend):
            def __init__(self, **options: Any) -> None:
                super().__init__(tool, **options)

            def availability(self) -> Availability:
                return Availability(available, "" if available else "no memory here")

        def load_backend_class(name: str) -> type[MemoryBackend]:
            self.names.append(name)
            return SharedToolBackend

        monkeypatch.setattr(vms_core.plugins, "load_backend_class", load_backend_class)


def test_vm_instance_is_started_and_always_cleaned_up(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads = Loads(monkeypatch)
    pytester.makepyfile(
        f"PREFIX = 'mem-'\n{INNER_TESTS}\n"
        "def test_fails_while_running(vm_instance):\n    assert False\n"
    )
    result = pytester.runpytest("--vm-backend", "memory")
    result.assert_outcomes(passed=1, failed=1)
    assert loads.names == ["memory"]  # loaded once per session
    assert [argv[0] for argv in loads.tool.commands].count("clone") == 2
    assert loads.tool.vms == {}, "an instance outlived its test"
    assert loads.tool.leftover_processes() == []


def test_the_default_backend_is_fake(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads = Loads(monkeypatch)
    pytester.makepyfile("def test_backend(vm_backend):\n    assert vm_backend is not None\n")
    pytester.runpytest().assert_outcomes(passed=1)
    assert loads.names == ["fake"]


def test_marker_and_vm_instance_skip_when_the_backend_cannot_run_here(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads = Loads(monkeypatch, available=False)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.vm_backend_available
        def test_marked():
            raise AssertionError("must not run")

        def test_needs_instance(vm_instance):
            raise AssertionError("must not run")

        def test_unrelated():
            pass
        """
    )
    result = pytester.runpytest("--vm-backend", "memory", "-rs", "--strict-markers")
    result.assert_outcomes(passed=1, skipped=2)
    result.stdout.fnmatch_lines(["*backend 'memory' cannot run here: no memory here*"])
    assert loads.tool.commands == []


FOUR_TESTS_USING_THE_FIXTURES = """
import pytest

def test_backend(vm_backend):
    pass

def test_instance(vm_instance):
    pass

@pytest.mark.vm_backend_available
def test_marked():
    pass

def test_backend_again(vm_backend):
    pass
"""


def assert_one_usage_error(result: pytest.RunResult, message: str) -> None:
    """The session stops before any test, saying ``message`` once, without a traceback."""
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    output = result.stdout.lines + result.stderr.lines
    said = [line for line in output if message in line]
    assert len(said) == 1 and said[0].startswith(f"ERROR: {message}"), output
    assert not any("Traceback" in line or line.startswith("E ") for line in output)
    assert len(output) < 10, "\n".join(output)


def test_an_unknown_backend_is_one_usage_error_naming_the_installed_ones(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(FOUR_TESTS_USING_THE_FIXTURES)
    result = pytester.runpytest_subprocess("--vm-backend", "no-such-backend")
    assert_one_usage_error(
        result,
        "cannot load the VM backend: no backend named 'no-such-backend'; installed backends:",
    )


def test_a_missing_config_file_is_one_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(FOUR_TESTS_USING_THE_FIXTURES)
    result = pytester.runpytest_subprocess("--vm-config", "/nonexistent.toml")
    assert_one_usage_error(result, "cannot load the VM backend: ")
    assert "/nonexistent.toml" in result.stderr.str() + result.stdout.str()


def test_a_bad_selection_does_not_matter_to_tests_that_do_not_use_the_plugin(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile("def test_plain():\n    pass\n")
    result = pytester.runpytest("--vm-backend", "no-such-backend", "--vm-config", "/nonexistent")
    result.assert_outcomes(passed=1)


def test_vm_config_selects_the_backend_and_its_options(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads = Loads(monkeypatch)
    config = pytester.makefile(".toml", vms='backend = "memory"\n[memory]\nname_prefix = "cfg-"\n')
    pytester.makepyfile(f"PREFIX = 'cfg-'\n{INNER_TESTS}")
    pytester.runpytest("--vm-config", str(config)).assert_outcomes(passed=1)
    assert loads.names == ["memory"]
    assert loads.tool.vms == {}


def test_vm_backend_must_agree_with_vm_config(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    Loads(monkeypatch)
    config = pytester.makefile(".toml", vms='backend = "memory"\n')
    pytester.makepyfile("def test_backend(vm_backend):\n    pass\n")
    result = pytester.runpytest("--vm-config", str(config), "--vm-backend", "qemu")
    assert_one_usage_error(
        result, f"--vm-backend qemu disagrees with {config}, which selects memory"
    )


@pytest.mark.timeout(60)
def test_importing_the_plugin_and_vms_core_stays_cheap() -> None:
    probe = (
        "import sys, vms_core\n"
        "assert 'pytest' not in sys.modules and 'hypothesis' not in sys.modules\n"
        "import vms_core.testing.plugin\n"
        "print(sorted(m for m in ('hypothesis', 'stevedore') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"
