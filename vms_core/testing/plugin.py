"""The ``vms`` pytest plugin (entry point ``pytest11``): pick a backend, get fixtures.

Options:
  ``--vm-backend NAME``  the backend to load (default ``fake``)
  ``--vm-config FILE``   a TOML file as read by :func:`vms_core.load_backend_from_config`;
                         its ``backend`` key names the backend unless ``--vm-backend``
                         is given too, which must then agree with it.

Fixtures:
  ``vm_backend``   the loaded backend (one per session)
  ``vm_instance``  a freshly cloned and started instance, always cleaned up

Marker:
  ``@pytest.mark.vm_backend_available``  skip unless the backend can run here
  (``vm_instance`` skips by itself in that case).

Loaded by every pytest run in an environment where vms is installed, so importing
it must stay cheap: everything else is imported when a hook or fixture needs it.
The backend is loaded after collection when a selected test uses a fixture or the
marker, so a bad selection is one usage error before any test runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from vms_core.backend import Backend
    from vms_core.instance import Instance

DEFAULT_BACKEND = "fake"
MARKER = "vm_backend_available"
_BACKEND_KEY = pytest.StashKey["Backend"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("vms", "virtual machine backends (vms_core.testing)")
    group.addoption(
        "--vm-backend",
        metavar="NAME",
        default=None,
        help=f"backend for the vm_backend/vm_instance fixtures (default: {DEFAULT_BACKEND})",
    )
    group.addoption(
        "--vm-config",
        metavar="FILE",
        default=None,
        help="TOML file naming the backend and its options (backend = ..., [name] table)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}: skip the test unless the selected VM backend can run on this machine",
    )


#: What makes a test need the selected backend.
FIXTURES = frozenset({"vm_backend", "vm_instance"})


def uses_the_backend(item: pytest.Item) -> bool:
    fixtures = getattr(item, "fixturenames", ())
    return item.get_closest_marker(MARKER) is not None or not FIXTURES.isdisjoint(fixtures)


@pytest.hookimpl(trylast=True)  # after -k/-m deselection: only tests that will run count
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Load the selected backend once, before any test, if a test will use it.

    A bad ``--vm-backend``/``--vm-config`` then stops the session with one usage
    error instead of failing every test that uses the fixtures; sessions that do
    not use them never load a backend.
    """
    if any(uses_the_backend(item) for item in items):
        load_selected_backend(config)


def load_selected_backend(config: pytest.Config) -> Backend:
    """The backend the command line selects, loaded once per session."""
    backend = config.stash.get(_BACKEND_KEY, None)
    if backend is not None:
        return backend
    from vms_core.errors import VMError
    from vms_core.plugins import load_backend, load_backend_from_config, read_config

    name: str | None = config.getoption("--vm-backend")
    config_file: str | None = config.getoption("--vm-config")
    try:
        if config_file is not None:
            configured, _ = read_config(config_file)
            if name is not None and name != configured:
                raise pytest.UsageError(
                    f"--vm-backend {name} disagrees with {config_file}, which selects {configured}"
                )
            backend = load_backend_from_config(config_file)
        else:
            backend = load_backend(name or DEFAULT_BACKEND)
    except VMError as err:
        # Without the cause: pytest prints a usage error as one line, no traceback.
        raise pytest.UsageError(f"cannot load the VM backend: {err}") from None
    config.stash[_BACKEND_KEY] = backend
    return backend


def skip_unless_available(backend: Backend) -> None:
    availability = backend.availability()
    if not availability:
        pytest.skip(f"backend {backend.name!r} cannot run here: {availability.reason}")


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker(MARKER) is not None:
        skip_unless_available(load_selected_backend(item.config))


@pytest.fixture(scope="session")
def vm_backend(pytestconfig: pytest.Config) -> Backend:
    """The backend chosen with ``--vm-backend``/``--vm-config`` (default ``fake``)."""
    return load_selected_backend(pytestconfig)


@pytest.fixture
def vm_instance(vm_backend: Backend) -> Iterator[Instance]:
    """A freshly cloned and started instance; stopped and deleted afterwards, whatever happens."""
    from vms_core.lifecycle import running

    skip_unless_available(vm_backend)
    with running(vm_backend.create_instance()) as instance:
        yield instance
