"""A Ctrl-C during training is never lost: it is remembered and raised again at the next iteration.

Python raises ``KeyboardInterrupt`` wherever the main thread is when SIGINT
arrives. Inside a finalizer (``__del__``, a weakref callback: Paddle's data
loader and tensors have them) the exception is printed as "Exception ignored"
and dropped, and training went on to the end as if no key had been pressed
(seen once in CI). :func:`interrupt_checked` wraps the batch iterator: its
SIGINT handler notes the signal before raising, and the iterator raises
``KeyboardInterrupt`` before handing out the next batch if one was noted
(and the "Exception ignored" traceback of the dropped one is not printed).
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import Iterable, Iterator, TypeVar

__all__ = ["interrupt_checked"]

T = TypeVar("T")


def interrupt_checked(batches: Iterable[T]) -> Iterator[T]:
    """Yield from ``batches``; raise ``KeyboardInterrupt`` before the next one once SIGINT has arrived.

    A run whose last iteration is done is finished, even if a Ctrl-C in its last step was dropped.

    Off the main thread, or where SIGINT is ignored (``nohup``) or handled by
    someone else, the iterable is passed through unchanged.
    """
    if threading.current_thread() is not threading.main_thread():
        yield from batches
        return
    previous = signal.getsignal(signal.SIGINT)
    if getattr(previous, "segzoo_guard", False):  # an earlier run's guard, its iterator not yet collected
        previous = signal.default_int_handler
    if previous is not signal.default_int_handler:
        yield from batches
        return
    noted = []

    def on_sigint(signum, frame):
        noted.append(signum)
        raise KeyboardInterrupt

    on_sigint.segzoo_guard = True

    hook = sys.unraisablehook
    while getattr(hook, "segzoo_inner", None) is not None:  # an earlier run's, not yet put back
        hook = hook.segzoo_inner

    def on_unraisable(unraisable):  # the dropped Ctrl-C is noted already: no "Exception ignored" traceback
        if unraisable.exc_type is not KeyboardInterrupt or not noted:
            hook(unraisable)

    on_unraisable.segzoo_inner = hook

    signal.signal(signal.SIGINT, on_sigint)
    sys.unraisablehook = on_unraisable
    try:
        for batch in batches:
            if noted:
                raise KeyboardInterrupt
            yield batch
    finally:  # put back what was there, unless a later run's guard has replaced it since
        if signal.getsignal(signal.SIGINT) is on_sigint:
            signal.signal(signal.SIGINT, previous)
        if sys.unraisablehook is on_unraisable:
            sys.unraisablehook = hook
