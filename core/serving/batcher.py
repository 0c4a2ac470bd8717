"""Dynamic batching: concurrent requests share one model call.

Requests put ``(image, target size)`` jobs on an asyncio queue and await their future. One
collector task takes the first waiting job, then keeps taking jobs until the batch holds
``max_batch_size`` of them or ``batch_timeout_ms`` have passed since the first, and hands the
batch to the single inference thread (so the model is only ever called from one thread). While
that thread runs, new jobs pile up in the queue, so under load the next batch fills at once and
the timeout only matters when traffic is light. Jobs with different target sizes run as
separate ``predict_arrays`` calls of the same round. A user error of one image
(:class:`~segzoo.SegzooError`) fails only its own request: a failed group is retried image by
image. The queue is bounded: past ``max_queue`` waiting images, :meth:`DynamicBatcher.submit`
raises :class:`QueueFull` (the app answers 503).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import numpy as np

from ..errors import SegzooError

log = logging.getLogger("segzoo.serving")

#: ``predict(images, target_size) -> label maps``, e.g. a bound ``Predictor.predict_arrays`` wrapper
PredictFn = Callable[[Sequence[np.ndarray], Any], list]


class QueueFull(Exception):
    """More images are waiting than the batcher's ``max_queue``."""


@dataclass
class BatcherStats:
    """Counters of one process's batcher (what ``GET /health`` reports)."""

    jobs: int = 0  # images that went through the model (successfully or not)
    batches: int = 0  # model calls (predict_arrays calls)
    failed: int = 0  # images whose model call failed
    busy_s: float = 0.0  # seconds spent in model calls
    sizes: Counter = field(default_factory=Counter)  # batch size -> count

    @property
    def mean_batch_size(self) -> float:
        return self.jobs / self.batches if self.batches else 0.0

    def as_dict(self) -> dict:
        return {
            "images": self.jobs,
            "batches": self.batches,
            "failedImages": self.failed,
            "meanBatchSize": round(self.mean_batch_size, 3),
            "maxBatchSize": max(self.sizes) if self.sizes else 0,
            "batchSizes": {str(k): v for k, v in sorted(self.sizes.items())},
            "inferenceSeconds": round(self.busy_s, 3),
        }


@dataclass
class _Job:
    image: np.ndarray
    target: Any
    future: asyncio.Future


class DynamicBatcher:
    """Batch concurrent :meth:`submit` calls into calls of ``predict`` on one worker thread.

    Args:
        predict: ``predict(images, target) -> list of label maps`` (called on the worker thread).
        max_batch_size: most images per call (1 turns batching off).
        batch_timeout_ms: longest wait for more jobs after the first of a batch.
        max_queue: most images waiting; beyond it :meth:`submit` raises :class:`QueueFull`.
        thread_initializer: run once on the worker thread before the first call (e.g. to set
            paddle's device there).

    Use inside a running event loop: ``await start()``, ``await submit(...)``, ``await stop()``.
    """

    def __init__(
        self,
        predict: PredictFn,
        max_batch_size: int = 8,
        batch_timeout_ms: float = 10.0,
        max_queue: int = 256,
        thread_initializer: Optional[Callable[[], None]] = None,
    ):
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be >= 1")
        self.predict = predict
        self.max_batch_size = int(max_batch_size)
        self.timeout_s = max(0.0, float(batch_timeout_ms)) / 1000.0
        self.max_queue = int(max_queue)
        self.stats = BatcherStats()
        self._initializer = thread_initializer
        self._queue: Optional[asyncio.Queue] = None
        self._task: Optional[asyncio.Task] = None
        self._executor: Optional[ThreadPoolExecutor] = None
        self._lock = threading.Lock()

    # -- life cycle -------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Create the queue, the inference thread and the collector task (in the running loop)."""
        self._queue = asyncio.Queue()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="segzoo-infer", initializer=self._initializer)
        self._task = asyncio.get_running_loop().create_task(self._collect(), name="segzoo-batcher")

    async def stop(self) -> None:
        """Stop collecting, fail the waiting jobs, and let the inference thread finish."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._queue is not None:
            while not self._queue.empty():
                job = self._queue.get_nowait()
                if not job.future.done():
                    job.future.set_exception(RuntimeError("the server is shutting down"))
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)

    @property
    def queued(self) -> int:
        """Images waiting for the model."""
        return self._queue.qsize() if self._queue is not None else 0

    # -- requests ---------------------------------------------------------------------------------------
    async def submit(self, image: np.ndarray, target: Any = None) -> np.ndarray:
        """The label map of ``image`` (``target`` as ``predict_arrays``' ``target_size``)."""
        if self._queue is None:
            raise RuntimeError("the batcher is not started")
        if self._queue.qsize() >= self.max_queue:
            raise QueueFull(f"{self._queue.qsize()} images are waiting (the limit is {self.max_queue})")
        future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Job(image, target, future))
        return await future

    # -- the collector ----------------------------------------------------------------------------------
    async def _collect(self) -> None:
        loop = asyncio.get_running_loop()
        queue = self._queue
        assert queue is not None
        while True:
            jobs = [await queue.get()]
            deadline = loop.time() + self.timeout_s
            while len(jobs) < self.max_batch_size:
                try:
                    jobs.append(queue.get_nowait())
                    continue
                except asyncio.QueueEmpty:
                    pass
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    jobs.append(await asyncio.wait_for(queue.get(), remaining))
                except asyncio.TimeoutError:
                    break
            jobs = [j for j in jobs if not j.future.done()]  # clients that went away
            if jobs:
                try:
                    await self._run_round(jobs)
                except asyncio.CancelledError:
                    for j in jobs:
                        if not j.future.done():
                            j.future.set_exception(RuntimeError("the server is shutting down"))
                    raise

    async def _run_round(self, jobs: list[_Job]) -> None:
        groups: dict[Any, list[_Job]] = {}
        for job in jobs:
            groups.setdefault(job.target, []).append(job)
        for target, group in groups.items():
            await self._run_group(target, group, retry_alone=True)

    async def _run_group(self, target: Any, group: list[_Job], retry_alone: bool) -> None:
        loop = asyncio.get_running_loop()
        try:
            labels = await loop.run_in_executor(self._executor, self._call, [j.image for j in group], target)
        except SegzooError as exc:
            if retry_alone and len(group) > 1:  # find the image at fault; the others still get answers
                for job in group:
                    await self._run_group(target, [job], retry_alone=False)
                return
            self._fail(group, exc)
        except Exception as exc:  # a bug or an engine failure: every job of the group fails
            log.error("inference of a batch of %d image(s) failed: %s: %s", len(group), type(exc).__name__, exc)
            self._fail(group, exc)
        else:
            for job, label in zip(group, labels):
                if not job.future.done():
                    job.future.set_result(label)

    def _fail(self, group: list[_Job], exc: BaseException) -> None:
        with self._lock:
            self.stats.failed += len(group)
        for job in group:
            if not job.future.done():
                job.future.set_exception(exc)

    def _call(self, images: list[np.ndarray], target: Any) -> list:
        start = time.perf_counter()
        try:
            labels = self.predict(images, target)
        finally:
            with self._lock:
                self.stats.busy_s += time.perf_counter() - start
                self.stats.batches += 1
                self.stats.jobs += len(images)
                self.stats.sizes[len(images)] += 1
        if len(labels) != len(images):
            raise RuntimeError(f"predict returned {len(labels)} label maps for {len(images)} images")
        return labels
