"""Which backend ``vms`` picks, and what it says about why."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from vms_core import BackendNotInstalledError, BackendUnavailableError, ConfigError
from vms_core.cli.selection import BackendChoice, choose_backend, load_available


def no_tart(_name: str) -> str | None:
    return None


def tart_at(path: str) -> Callable[[str], str | None]:
    return lambda name: path if name == "tart" else None


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "vms.toml"
    path.write_text('backend = "fake"\n[fake]\nname_prefix = "ci-"\n')
    return path


def test_fallback_is_fake_when_no_tart_is_on_path() -> None:
    choice = choose_backend(None, None, {}, which=no_tart)
    assert choice == BackendChoice("fake", {}, choice.reason)
    assert "no tart on PATH" in choice.describe()


def test_tart_on_path_is_preferred_to_the_fallback() -> None:
    choice = choose_backend(None, None, {}, which=tart_at("/opt/bin/tart"))
    assert (choice.name, choice.reason) == ("tart", "found tart at /opt/bin/tart")


def test_vms_backend_beats_tart_on_path() -> None:
    choice = choose_backend(None, None, {"VMS_BACKEND": "qemu"}, which=tart_at("/bin/tart"))
    assert (choice.name, choice.reason) == ("qemu", "VMS_BACKEND")


def test_config_beats_vms_backend_and_carries_its_options(config: Path) -> None:
    choice = choose_backend(None, str(config), {"VMS_BACKEND": "qemu"}, which=no_tart)
    assert (choice.name, dict(choice.options)) == ("fake", {"name_prefix": "ci-"})
    assert choice.reason == f"config file {config}"


def test_vms_config_from_the_environment(config: Path) -> None:
    choice = choose_backend(None, None, {"VMS_CONFIG": str(config)}, which=no_tart)
    assert (choice.name, choice.reason) == ("fake", f"VMS_CONFIG={config}")


def test_backend_flag_beats_everything(config: Path) -> None:
    environ = {"VMS_CONFIG": str(config), "VMS_BACKEND": "qemu"}
    choice = choose_backend("tart", None, environ, which=no_tart)
    # VMS_CONFIG names another backend, so its options do not apply to tart.
    assert choice == BackendChoice("tart", {}, "--backend")


def test_backend_flag_naming_the_config_backend_keeps_its_options(config: Path) -> None:
    choice = choose_backend("fake", str(config), {}, which=no_tart)
    assert dict(choice.options) == {"name_prefix": "ci-"}
    assert choice.reason == f"--backend, options from config file {config}"


def test_an_explicit_config_contradicting_backend_is_an_error(config: Path) -> None:
    with pytest.raises(ConfigError, match="--backend tart conflicts with config file"):
        choose_backend("tart", str(config), {}, which=no_tart)


def test_a_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        choose_backend(None, str(tmp_path / "nope.toml"), {}, which=no_tart)


def test_load_available_refuses_an_unknown_backend() -> None:
    with pytest.raises(BackendNotInstalledError, match="no backend named 'nope'; installed"):
        load_available(BackendChoice("nope"))


def test_load_available_refuses_a_backend_that_cannot_run_here(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from vms_core import Availability
    from vms_core.cli import selection

    class Unavailable:
        def availability(self) -> Availability:
            return Availability(False, "tart binary not found on PATH")

    monkeypatch.setattr(selection, "load_backend", lambda name, **options: Unavailable())
    with pytest.raises(BackendUnavailableError) as raised:
        load_available(BackendChoice("tart"))
    assert str(raised.value) == "backend tart cannot run here: tart binary not found on PATH"
