"""Project-wide test setup: the hypothesis profile (``VMS_HYPOTHESIS_PROFILE``, default ``ci``)."""

from vms_core.testing.profiles import load_profile

# pytester runs the vms pytest plugin in inner sessions (tests/kit/test_plugin.py).
pytest_plugins = ["pytester"]

load_profile()
