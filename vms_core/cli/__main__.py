"""``python -m vms_core.cli``: the same as the ``vms`` console script."""

import sys

from vms_core.cli.app import main

sys.exit(main())
