"""A cancel is held until the code says it is safe to stop, then delivered as it came."""

import os
import signal

import pytest

from azaion_assets.lib.proc.interrupts import deferred_interrupts


@pytest.fixture(autouse=True)
def default_handlers():
    """Python's own SIGINT handler, whatever an earlier test in this process left (an in-process
    Dagster execution installs its own): the tests deliver signals to this very process."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_signal_is_recorded_and_delivered_on_exit():
    reached_safe_point = False
    with pytest.raises(KeyboardInterrupt), deferred_interrupts() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.requested and stop.signum == signal.SIGINT
        reached_safe_point = True
    assert reached_safe_point
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_second_signal_interrupts_at_once():
    after_second = False
    with pytest.raises(KeyboardInterrupt), deferred_interrupts():
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)
        after_second = True
    assert not after_second


def test_sigterm_is_deferred_and_handlers_are_restored():
    seen: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, _frame: seen.append(signum))
    try:
        with deferred_interrupts() as stop:
            os.kill(os.getpid(), signal.SIGTERM)
            assert stop.requested and seen == []
        assert seen == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_without_a_signal_nothing_happens():
    with deferred_interrupts() as stop:
        pass
    assert not stop.requested
