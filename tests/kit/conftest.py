"""Every kit test, the mutant runs included, must leave no process of its own behind."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from vms_core.testing import ChildCensus


@pytest.fixture(autouse=True)
def leaves_no_process_behind() -> Iterator[None]:
    census = ChildCensus()
    yield
    leftovers = census.kill()
    assert leftovers == [], f"the test left processes behind (now killed): {leftovers}"
