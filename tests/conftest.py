"""Project-wide test setup: the hypothesis profile (``VMS_HYPOTHESIS_PROFILE``, default ``ci``)."""

from vms_core.testing.profiles import load_profile

load_profile()
