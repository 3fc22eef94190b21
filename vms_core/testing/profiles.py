"""Hypothesis profiles for VM tests, chosen by the ``VMS_HYPOTHESIS_PROFILE`` variable.

None has a deadline or the too-slow health check: VM operations take as long as
they take, and machines shared with other jobs are noisy.

- ``ci`` (the default): several hundred programs, derandomized so a CI failure
  reproduces on every run, no example database written;
- ``quick``: a smoke run while editing;
- ``thorough``: thousands of longer random programs; repeat it for a night's soak.

Size runs against slow targets with :func:`examples` (a share of the profile's
count), so one variable scales every target together.
"""

from __future__ import annotations

import os

from vms_core.errors import ConfigError
from vms_core.testing.harness import missing_testing_extra

try:
    from hypothesis import HealthCheck, settings
except ModuleNotFoundError as _err:
    raise missing_testing_extra(__name__, _err) from _err

PROFILE_ENV = "VMS_HYPOTHESIS_PROFILE"
DEFAULT_PROFILE = "ci"

_PROFILES = {
    "ci": settings(
        max_examples=300,
        deadline=None,
        derandomize=True,
        database=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow],
    ),
    "quick": settings(
        max_examples=30,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    ),
    # Hypothesis keeps every program's choices: about 0.25 MB each at 100 steps, so a
    # longer soak is several runs (random, unlike ci), not one bigger one.
    "thorough": settings(
        max_examples=2000,
        stateful_step_count=100,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    ),
}


def profile_name(short: str) -> str:
    """The registered name of one of this module's profiles (they are namespaced)."""
    return f"vms-{short}"


def register_profiles() -> None:
    for short, profile in _PROFILES.items():
        settings.register_profile(profile_name(short), profile)


_loaded: list[str] = []


def load_profile(short: str | None = None) -> str:
    """Register and load ``short`` (default: ``$VMS_HYPOTHESIS_PROFILE`` or ``ci``)."""
    short = short or os.environ.get(PROFILE_ENV) or DEFAULT_PROFILE
    if short not in _PROFILES:
        raise ConfigError(
            f"{PROFILE_ENV}={short!r} is not a profile; choose one of {', '.join(_PROFILES)}"
        )
    register_profiles()
    settings.load_profile(profile_name(short))
    _loaded[:] = [short]
    return short


def loaded_profile() -> str | None:
    """The short name :func:`load_profile` last loaded (None: it was never called)."""
    return _loaded[0] if _loaded else None


def examples(share: float) -> int:
    """``share`` of the current profile's ``max_examples``, at least one."""
    current = settings.default
    count = current.max_examples if current is not None else settings().max_examples
    return max(1, round(count * share))
