"""Project-wide test setup: the hypothesis profile (``VMS_HYPOTHESIS_PROFILE``, default ``ci``)."""

import signal

from vms_core.testing.profiles import load_profile

# A run started in the background of a non-interactive shell (as CI may) inherits
# SIGINT ignored, and exec passes "ignored" on to every child; the Ctrl-C tests need
# it delivered. A handler (unlike SIG_IGN) is reset to the default across exec.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# pytester runs the vms pytest plugin in inner sessions (tests/kit/test_plugin.py).
pytest_plugins = ["pytester"]

load_profile()
