"""A Ctrl-C that lands inside a finalizer is not lost: training stops before the next batch.

Python drops a ``KeyboardInterrupt`` raised in ``__del__`` ("Exception ignored in"); Paddle's data
loader and tensors run finalizers all through a training step. These tests send a real SIGINT from
inside a real finalizer, where Python swallows it, and check that the batch iterator of the trainer
still stops the run.
"""

from __future__ import annotations

import os
import signal
import sys

import pytest

from segzoo.training.interrupt import interrupt_checked


class _CtrlCInFinalizer:
    """Sends SIGINT to this process while being finalized: Python prints the KeyboardInterrupt and drops it."""

    def __del__(self):
        os.kill(os.getpid(), signal.SIGINT)
        sum(range(100))  # bytecode after the signal: the handler runs here, inside __del__


def _train(batches, press_at: int) -> list[int]:
    done = []
    for batch in batches:
        if batch == press_at:
            _CtrlCInFinalizer()  # made and dropped at once: its finalizer runs now
        done.append(batch)
    return done


def test_a_swallowed_ctrl_c_still_stops_before_the_next_batch(monkeypatch):
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    dropped = []  # what Python reports as "Exception ignored in ... __del__"
    record = lambda unraisable: dropped.append(unraisable.exc_type)  # noqa: E731
    monkeypatch.setattr(sys, "unraisablehook", record)
    # plain Python loses it: the loop runs to the end
    assert _train(range(5), press_at=1) == [0, 1, 2, 3, 4]
    assert dropped == [KeyboardInterrupt]
    # the trainer's iterator stops before batch 2
    seen = []
    with pytest.raises(KeyboardInterrupt):
        for batch in interrupt_checked(range(5)):
            seen.append(batch)
            if batch == 1:
                _CtrlCInFinalizer()
    assert seen == [0, 1] and dropped == [KeyboardInterrupt]  # the second: noted, not printed
    assert sys.unraisablehook is record and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back


def test_without_ctrl_c_every_batch_comes_and_the_handler_is_put_back():
    assert list(interrupt_checked(iter(range(4)))) == [0, 1, 2, 3]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_an_ignored_sigint_stays_ignored():
    """nohup or a parent that ignores SIGINT: the run is not made interruptible behind its back."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        batches = interrupt_checked(range(3))
        assert next(batches) == 0
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        os.kill(os.getpid(), signal.SIGINT)
        assert list(batches) == [1, 2]
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_run_left_by_an_error_does_not_unguard_the_next_one():
    """A training loop that raised keeps its (suspended) iterator alive until it is collected; the next
    run in the same process is still guarded, and the late close does not undo the new guard."""
    hook = sys.unraisablehook
    first = interrupt_checked(range(3))
    assert next(first) == 0  # the run then failed: `first` is left suspended
    second = interrupt_checked(range(3))
    assert next(second) == 0
    first.close()  # collected late
    assert getattr(signal.getsignal(signal.SIGINT), "segzoo_guard", False)  # the second run's guard stays
    seen = [0]
    with pytest.raises(KeyboardInterrupt):
        for batch in second:
            seen.append(batch)
            _CtrlCInFinalizer()
    assert seen == [0, 1]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler and sys.unraisablehook is hook
