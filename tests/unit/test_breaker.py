from __future__ import annotations

import pytest

from semantic_reuse.spi import BreakerState, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_consecutive_failures_and_backs_off() -> None:
    clock = Clock()
    breaker = CircuitBreaker("x", failure_threshold=2, reset_s=1, max_reset_s=4, clock=clock)
    assert breaker.allow()
    breaker.record_failure()
    breaker.record_success()  # a success resets the count: failures must be consecutive
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()
    clock.now = 1.0
    assert breaker.allow()  # the one trial
    assert breaker.state is BreakerState.HALF_OPEN
    assert not breaker.allow()  # no second trial while the first is out
    breaker.record_failure()  # trial failed: wait twice as long
    clock.now = 2.5
    assert not breaker.allow()
    clock.now = 3.0
    assert breaker.allow()
    breaker.record_failure()
    clock.now = 6.9
    assert not breaker.allow()
    clock.now = 7.0  # capped at max_reset_s = 4
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow()
    assert breaker.opened_count == 3


def test_a_late_success_from_before_the_open_does_not_close_it() -> None:
    """Calls let through while closed may end after the breaker opened: their success says
    nothing about now (the store answered, the embedder still fails). Only the trial closes it;
    closing on them made it open again at the next failure, one WARNING each time."""
    clock = Clock()
    breaker = CircuitBreaker("x", failure_threshold=2, reset_s=1, clock=clock)
    assert breaker.allow()  # two calls in flight
    assert breaker.allow()
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    breaker.record_success()  # the late one
    assert breaker.state is BreakerState.OPEN
    assert breaker.opened_count == 1
    clock.now = 1.0
    assert breaker.allow()  # the trial
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED


def test_a_lost_trial_does_not_wedge_the_breaker() -> None:
    clock = Clock()
    breaker = CircuitBreaker("x", failure_threshold=1, reset_s=1, clock=clock)
    breaker.record_failure()
    clock.now = 1.0
    assert breaker.allow()  # this trial never reports back (say, it was cancelled)
    clock.now = 2.0
    assert breaker.allow()


@pytest.mark.parametrize(
    "kwargs", [{"failure_threshold": 0}, {"reset_s": 0}, {"reset_s": 5, "max_reset_s": 1}]
)
def test_bad_settings(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"failure_threshold|reset_s"):
        CircuitBreaker("x", **kwargs)  # type: ignore[arg-type]
