from __future__ import annotations

import pytest

from vms_core import Backoff, OperationTimeoutError, poll_until


def test_backoff_delays_grow_and_cap() -> None:
    delays = Backoff(initial=0.5, factor=3, maximum=2).delays()
    assert [next(delays) for _ in range(4)] == [0.5, 1.5, 2, 2]


@pytest.mark.parametrize("args", [(0, 2, 1), (1, 0.5, 2), (2, 2, 1)])
def test_invalid_backoff_is_refused(args: tuple[float, float, float]) -> None:
    with pytest.raises(ValueError, match="invalid backoff"):
        Backoff(*args)


def test_poll_until_returns_first_result_and_lets_check_abort() -> None:
    values = iter([None, None, "ready"])
    now = [0.0]

    def sleep(s: float) -> None:
        now[0] += s

    assert (
        poll_until(lambda: next(values), timeout=None, what="x", clock=lambda: now[0], sleep=sleep)
        == "ready"
    )

    def boom() -> None:
        raise RuntimeError("abort")

    with pytest.raises(RuntimeError, match="abort"):
        poll_until(boom, timeout=1, what="x", clock=lambda: now[0], sleep=sleep)


def test_poll_until_checks_once_more_at_the_deadline() -> None:
    now = [0.0]
    checks: list[float] = []

    def check() -> None:
        checks.append(now[0])

    def sleep(s: float) -> None:
        now[0] += s

    with pytest.raises(OperationTimeoutError, match="timed out after 1s waiting for the thing"):
        poll_until(
            check,
            timeout=1,
            what="the thing",
            backoff=Backoff(0.4, 1, 0.4),
            clock=lambda: now[0],
            sleep=sleep,
        )
    assert checks == pytest.approx([0, 0.4, 0.8, 1.0])


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_backoff_is_refused(value: float) -> None:
    with pytest.raises(ValueError, match="invalid backoff"):
        Backoff(initial=value)


@pytest.mark.parametrize("timeout", [-1.0, float("nan")])
def test_poll_until_refuses_an_impossible_timeout(timeout: float) -> None:
    with pytest.raises(ValueError, match="timeout must be a finite number >= 0"):
        poll_until(lambda: True, timeout=timeout, what="x")
