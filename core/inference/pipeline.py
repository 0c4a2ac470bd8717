"""Pipelining: read, decode and pre-process the next batches while the current one runs, and write results behind it.

:class:`Prefetcher` runs ``prepare(batch)`` for the batches of a source
iterator ahead of the consumer, in worker threads, and hands the results back
**in input order**. OpenCV's decoders and resizes and numpy's array
arithmetic release the GIL, so this overlaps with the engine's own threads:
throughput is bounded by the model, not by reading images.

Memory stays bounded: at most ``depth`` prepared batches wait in the queue
(plus the ``workers`` being prepared). An error while reading or preparing a
batch (an :class:`~segzoo.errors.InputError` naming the file, say) is raised
to the consumer at that batch's place in the sequence, after every earlier
batch has been handed over: the same order of results and errors as without
pipelining. Closing the consumer's generator early (``break``) stops the
reader thread and drops the batches read ahead.

>>> with Prefetcher(iter(batches), prepare, depth=2) as prepared:
...     for batch, ready in prepared:
...         run(ready)

:class:`OrderedWriter` is the other end: one thread that runs
``write(item)`` for each item put, in the order put, while the caller goes on
predicting (PNG encoding and file writes release the GIL too).
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Iterable, Iterator, Optional

#: default number of batches prepared ahead of the one running
DEFAULT_PREFETCH = 2

_DONE = object()


class Prefetcher:
    """Iterate ``(batch, prepare(batch))`` for each batch of ``source``, prepared ahead in threads.

    Args:
        source: an iterator of batches; it is advanced by one reader thread
            only (generators need not be thread-safe), so decoding done by the
            iterator itself overlaps with the consumer too.
        prepare: ``prepare(batch) -> ready`` run in a pool of ``workers``
            threads (``None``: the reader thread only pulls batches).
        depth: batches read and prepared ahead of the consumer (>= 1).
        workers: threads running ``prepare`` (1 keeps decoding and
            pre-processing on their own core; more helps with many cores).
    """

    def __init__(
        self,
        source: Iterable,
        prepare: Optional[Callable[[Any], Any]] = None,
        depth: int = DEFAULT_PREFETCH,
        workers: int = 1,
    ):
        if depth < 1:
            raise ValueError("depth must be >= 1")
        self._source = iter(source)
        self._prepare = prepare
        self._queue: "queue.Queue" = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="segzoo-prepare") if prepare else None
        self._thread = threading.Thread(target=self._read, name="segzoo-reader", daemon=True)
        self._thread.start()

    # -- the reader thread ------------------------------------------------------------------------
    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _read(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    batch = next(self._source)
                except StopIteration:
                    break
                except BaseException as exc:  # reading failed: hand the error over in order
                    self._put(("error", exc))
                    return
                if self._pool is not None:
                    fut = self._pool.submit(self._prepare, batch)
                else:
                    fut = Future()
                    fut.set_result(None)
                if not self._put(("batch", (batch, fut))):
                    return
        finally:
            self._put(("done", _DONE))

    # -- the consumer -----------------------------------------------------------------------------
    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        try:
            while True:
                kind, value = self._queue.get()
                if kind == "done":
                    return
                if kind == "error":
                    raise value
                batch, fut = value
                yield batch, fut.result()
        finally:
            self.close()

    def close(self) -> None:
        """Stop reading ahead and release the threads (idempotent)."""
        self._stop.set()
        while True:  # unblock a reader waiting on a full queue
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join(timeout=5)
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        close = getattr(self._source, "close", None)
        if close is not None and not self._thread.is_alive():
            try:
                close()
            except (RuntimeError, ValueError):  # pragma: no cover - generator still running elsewhere
                pass

    def __enter__(self) -> "Prefetcher":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class OrderedWriter:
    """Run ``write(item)`` for each :meth:`put` item in one background thread, in the order put.

    At most ``depth`` items wait. An error raised by ``write`` is raised again
    by the next :meth:`put` or by :meth:`close` (nothing after it is written);
    leaving the ``with`` block writes what is queued and joins the thread, on an
    error of the caller's too (results predicted before it are still saved).
    ``results`` holds each ``write``'s return value, in order.

    >>> with OrderedWriter(lambda r: r.save_to_img("out/")) as writer:
    ...     for result in model.predict("photos/"):
    ...         writer.put(result)
    """

    def __init__(self, write: Callable[[Any], Any], depth: int = 4):
        self._write = write
        self._queue: "queue.Queue" = queue.Queue(maxsize=max(1, depth))
        self._error: Optional[BaseException] = None
        self._failed = False  # a write failed: nothing after it is written
        self.results: list = []
        self._thread = threading.Thread(target=self._loop, name="segzoo-writer", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if not self._failed:
                try:
                    self.results.append(self._write(item))
                except BaseException as exc:  # noqa: BLE001 - handed to the caller
                    self._error, self._failed = exc, True

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def put(self, item: Any) -> None:
        self._raise()
        self._queue.put(item)

    def close(self) -> None:
        """Write what is queued, stop the thread, and raise a write's error (idempotent)."""
        if self._thread.is_alive():
            self._queue.put(_DONE)
            self._thread.join()
        self._raise()

    def __enter__(self) -> "OrderedWriter":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.close()
            return
        try:  # the caller's error wins; what was predicted before it is still written
            self.close()
        except Exception:  # noqa: BLE001
            pass


def chunked(items: Iterable, size: int) -> Iterator[list]:
    """Lists of ``size`` consecutive items (the last one shorter)."""
    batch: list = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
