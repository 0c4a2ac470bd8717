"""The dynamic batcher: batch sizes, the timeout, per-image errors, the queue bound, real-model answers."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from segzoo.errors import InputError
from segzoo.serving.batcher import DynamicBatcher, QueueFull

from .conftest import drawn


class Recorder:
    """A predict function that returns each image's first channel and records the calls."""

    def __init__(self, delay: float = 0.02):
        self.delay = delay
        self.calls: list[tuple[int, object, str]] = []

    def __call__(self, images, target):
        self.calls.append((len(images), target, threading.current_thread().name))
        time.sleep(self.delay)
        out = []
        for img in images:
            if img[0, 0, 1] == 255:
                raise InputError("image flagged as unreadable")
            out.append(img[:, :, 0].copy())
        return out


def image(value: int, flag: bool = False) -> np.ndarray:
    img = np.full((4, 5, 3), value, np.uint8)
    if flag:
        img[0, 0, 1] = 255
    return img


async def _submit_all(batcher, jobs):
    await batcher.start()
    try:
        return await asyncio.gather(*(batcher.submit(img, target) for img, target in jobs), return_exceptions=True)
    finally:
        await batcher.stop()


def test_concurrent_jobs_are_batched_and_answered_in_order():
    rec = Recorder()
    batcher = DynamicBatcher(rec, max_batch_size=4, batch_timeout_ms=50)
    results = asyncio.run(_submit_all(batcher, [(image(i), None) for i in range(10)]))
    for i, labels in enumerate(results):
        assert np.array_equal(labels, np.full((4, 5), i, np.uint8))
    sizes = [c[0] for c in rec.calls]
    assert sum(sizes) == 10 and max(sizes) == 4 and len(sizes) == 3
    assert {c[2] for c in rec.calls} == {"segzoo-infer_0"}  # one inference thread
    stats = batcher.stats
    assert stats.jobs == 10 and stats.batches == 3 and stats.mean_batch_size == pytest.approx(10 / 3)


def test_max_batch_size_one_turns_batching_off():
    rec = Recorder(delay=0.0)
    batcher = DynamicBatcher(rec, max_batch_size=1, batch_timeout_ms=50)
    asyncio.run(_submit_all(batcher, [(image(i), None) for i in range(6)]))
    assert [c[0] for c in rec.calls] == [1] * 6


def test_target_sizes_run_as_separate_calls():
    rec = Recorder()
    batcher = DynamicBatcher(rec, max_batch_size=8, batch_timeout_ms=50)
    jobs = [(image(i), (64, 64) if i % 2 else None) for i in range(6)]
    results = asyncio.run(_submit_all(batcher, jobs))
    assert all(isinstance(r, np.ndarray) for r in results)
    assert sorted((c[0], str(c[1])) for c in rec.calls) == [(3, "(64, 64)"), (3, "None")]


def test_a_lone_job_waits_at_most_the_timeout():
    rec = Recorder(delay=0.0)

    async def one():
        batcher = DynamicBatcher(rec, max_batch_size=8, batch_timeout_ms=100)
        await batcher.start()
        try:
            start = time.perf_counter()
            await batcher.submit(image(1))
            return time.perf_counter() - start
        finally:
            await batcher.stop()

    elapsed = asyncio.run(one())
    assert 0.09 <= elapsed < 1.0
    assert [c[0] for c in rec.calls] == [1]


def test_a_bad_image_fails_only_its_own_request():
    rec = Recorder()
    batcher = DynamicBatcher(rec, max_batch_size=8, batch_timeout_ms=50)
    jobs = [(image(i, flag=(i == 2)), None) for i in range(5)]
    results = asyncio.run(_submit_all(batcher, jobs))
    assert isinstance(results[2], InputError)
    for i in (0, 1, 3, 4):
        assert np.array_equal(results[i], np.full((4, 5), i, np.uint8))
    # the group of 5 failed, then each image ran alone: only the flagged one fails
    assert batcher.stats.failed == 1
    assert dict(batcher.stats.sizes) == {5: 1, 1: 5}


def test_internal_errors_reach_every_job_of_the_call():
    def broken(images, target):
        raise RuntimeError("engine crashed")

    batcher = DynamicBatcher(broken, max_batch_size=8, batch_timeout_ms=20)
    results = asyncio.run(_submit_all(batcher, [(image(i), None) for i in range(3)]))
    assert all(isinstance(r, RuntimeError) for r in results)


def test_the_queue_is_bounded():
    gate = threading.Event()

    def slow(images, target):
        gate.wait(5)
        return [img[:, :, 0] for img in images]

    async def flood():
        batcher = DynamicBatcher(slow, max_batch_size=1, batch_timeout_ms=0, max_queue=3)
        await batcher.start()
        try:
            first = asyncio.ensure_future(batcher.submit(image(0)))
            await asyncio.sleep(0.05)  # the first is running; the next three wait
            waiting = [asyncio.ensure_future(batcher.submit(image(i))) for i in range(1, 4)]
            await asyncio.sleep(0.05)
            with pytest.raises(QueueFull):
                await batcher.submit(image(9))
            gate.set()
            return await asyncio.gather(first, *waiting)
        finally:
            gate.set()
            await batcher.stop()

    assert len(asyncio.run(flood())) == 4


def test_batched_answers_equal_single_answers_with_the_real_model(reference):
    images = [drawn(seed, (96, 64)) for seed in range(6)]
    single = [reference.predict_arrays([img])[0] for img in images]

    def predict(batch, target):
        return reference.predict_arrays(batch, batch_size=len(batch), target_size=target)

    batcher = DynamicBatcher(predict, max_batch_size=4, batch_timeout_ms=50)
    results = asyncio.run(_submit_all(batcher, [(img, None) for img in images]))
    assert max(batcher.stats.sizes) > 1
    for got, want in zip(results, single):
        assert got.shape == (64, 96) and np.array_equal(got, want)
