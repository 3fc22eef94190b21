"""The ``vms`` command. Imported only by the console script, never by ``import vms_core``."""

from vms_core.cli.app import main

__all__ = ["main"]
