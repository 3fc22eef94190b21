"""Backend loading through real installed entry points (a throwaway distribution on sys.path)."""

from __future__ import annotations

from pathlib import Path

import pytest
from throwaway_plugins import PROBE_BACKEND_SOURCE, install_backends

from vms_core import (
    BackendNotInstalledError,
    ConfigError,
    available_backends,
    load_backend,
    load_backend_from_config,
)


@pytest.fixture
def plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Install two entry points in group vms.backends: one good, one that fails to import."""
    install_backends(
        tmp_path,
        monkeypatch,
        module_name="vms_probe_plugin",
        module_source=PROBE_BACKEND_SOURCE,
        entry_points={
            "probe": "vms_probe_plugin:ProbeBackend",
            "broken": "vms_no_such_module_xyz:Backend",
        },
    )
    return tmp_path


def test_our_backends_are_registered() -> None:
    assert {"tart", "fake", "qemu"} <= set(available_backends())


def test_listing_names_imports_nothing(plugins: Path) -> None:
    names = available_backends()
    assert "probe" in names and "broken" in names
    assert names == sorted(names)


def test_load_by_name_with_options(plugins: Path) -> None:
    backend = load_backend("probe", colour="red", size=3)
    assert backend.options.colour == "red"  # type: ignore[attr-defined]
    assert backend.options.size == 3  # type: ignore[attr-defined]
    assert backend.name_prefix == "probe-"
    assert backend.new_name().startswith("probe-")  # type: ignore[attr-defined]


def test_unknown_name_lists_what_is_installed(plugins: Path) -> None:
    with pytest.raises(BackendNotInstalledError) as info:
        load_backend("vmware")
    assert "no backend named 'vmware'" in str(info.value)
    assert "probe" in str(info.value) and "tart" in str(info.value)


def test_broken_plugin_says_it_failed_to_import(plugins: Path) -> None:
    with pytest.raises(BackendNotInstalledError) as info:
        load_backend("broken")
    assert "installed but failed to import" in str(info.value)
    assert "vms_no_such_module_xyz" in str(info.value)


def test_unknown_options_name_the_accepted_ones(plugins: Path) -> None:
    with pytest.raises(ConfigError, match="accepted: colour, size, name_prefix"):
        load_backend("probe", color="red")


def test_load_from_toml(plugins: Path, tmp_path: Path) -> None:
    config = tmp_path / "vms.toml"
    config.write_text('backend = "probe"\n[probe]\ncolour = "green"\nsize = 7\n[other]\nx = 1\n')
    backend = load_backend_from_config(config)
    assert backend.options.colour == "green"  # type: ignore[attr-defined]
    assert backend.options.size == 7  # type: ignore[attr-defined]
    assert load_backend_from_config(config, size=9).options.size == 9  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[probe]\ncolour = 'x'\n", 'must set backend = "<name>"'),
        ("backend = 'probe'\nprobe = 3\n", "[probe] must be a table"),
        ("backend = \n", "is not valid TOML"),
        ("backend = 'probe'\n[probe]\nsize = 'big'\n", "probe.size: expected an integer"),
    ],
)
def test_bad_config_files(plugins: Path, tmp_path: Path, text: str, fragment: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_backend_from_config(config)
    assert fragment in str(info.value)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_backend_from_config(tmp_path / "nope.toml")


def test_a_directory_is_not_a_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        load_backend_from_config(tmp_path)


def test_a_config_file_that_is_not_utf8(tmp_path: Path) -> None:
    config = tmp_path / "vms.toml"
    config.write_bytes(b"\xff\xfebackend = 'fake'\n")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_backend_from_config(config)
