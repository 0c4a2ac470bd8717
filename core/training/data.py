"""The training data pipeline: a SegDataset, the augmentations, the model's normalisation, batches.

Sample order is a stream of epochs: epoch ``e`` is the permutation
``numpy.random.default_rng([seed, e]).permutation(N)`` of the ``N`` training
samples, the epochs are concatenated, and iteration ``k`` takes the next
``batch_size × world_size`` samples of the stream; process ``r`` of
``world_size`` takes its own ``batch_size`` of them. Each sample is
augmented with a generator seeded by ``(seed, epoch, index)``. So a run is
determined by its seed, different processes see different samples, the
number of data-loading workers changes nothing, and resuming at iteration
``k`` is starting the stream at ``k``.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..errors import DatasetError
from ..registry import get_registry

__all__ = ["TrainSamples", "batch_sampler_class", "build_train_loader", "collate", "raise_batch_error"]


def _paddle_io():
    import paddle.io

    return paddle.io


class TrainSamples:
    """``dataset[(epoch, index)]`` → ``(image 3×H×W float32, label H×W int64, [epoch, index])``.

    Reads sample ``index`` of ``seg_dataset`` (a :class:`segzoo.datasets.SegDataset`),
    augments it with ``augment`` (:class:`segzoo.training.transforms.Augment`)
    and normalises it with the model's ``preprocess`` hook. A label value
    ``>= num_classes`` (other than the ignore index) is a
    :class:`~segzoo.errors.DatasetError` naming the file.
    """

    def __init__(self, seg_dataset, model_name: str, model_config, augment, seed: int, num_classes: int):
        self.ds = seg_dataset
        self.model_name = model_name
        self.model_config = model_config
        self.augment = augment
        self.seed = int(seed)
        self.num_classes = int(num_classes)
        self.ignore_index = int(model_config.ignore_index)

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, key):
        # paddle's DataLoader hangs (no workers) or loses the message (workers) when a sample raises:
        # errors travel inside the batch instead and are raised again in the training process
        try:
            return self._load(key)
        except Exception as exc:  # noqa: BLE001 - re-raised by raise_batch_error()
            return _SampleError(exc)

    def _load(self, key):
        epoch, index = (int(key[0]), int(key[1])) if isinstance(key, (tuple, list)) else (0, int(key))
        image, label = self.ds[index]
        valid = label != self.ignore_index
        if valid.any() and int(label[valid].max()) >= self.num_classes:
            sample = self.ds.samples[index]
            values = sorted(set(np.unique(label[valid]).tolist()) - set(range(self.num_classes)))
            raise DatasetError(
                f"{sample.label} ({sample.where()}): label values {values[:8]} are >= num_classes "
                f"({self.num_classes}). Fix: set Train.num_classes to the number of classes, or fix the mask "
                "(255 marks ignored pixels). `segzoo check-dataset` lists every such file."
            )
        rng = np.random.default_rng([self.seed, epoch, index])
        image, label = self.augment(image, label, rng)
        x = get_registry().preprocess(self.model_name, self.model_config, image)
        return np.asarray(x, np.float32), label.astype(np.int64), np.array([epoch, index], np.int64)


class _SampleError:
    """An exception raised while loading a sample, carried to the training process as text."""

    def __init__(self, exc: BaseException):
        import traceback

        self.kind = "dataset" if isinstance(exc, DatasetError) else type(exc).__name__
        self.message = str(exc) if self.kind == "dataset" else "".join(traceback.format_exception(exc))


def collate(batch):
    """Stack a list of samples into ``(images N×3×H×W, labels N×H×W, keys N×2, error)`` numpy arrays.

    ``error`` is ``[0]`` for a good batch, or the UTF-8 bytes of the first
    sample error (see :func:`raise_batch_error`).
    """
    for item in batch:
        if isinstance(item, _SampleError):
            text = f"{item.kind}\n{item.message}".encode("utf-8")
            empty = np.zeros((1, 1, 1, 1), np.float32)
            return empty, np.zeros((1, 1, 1), np.int64), np.zeros((1, 2), np.int64), np.frombuffer(text, np.uint8)
    images, labels, keys = zip(*batch)
    return np.stack(images), np.stack(labels), np.stack(keys), np.zeros((1,), np.uint8)


def raise_batch_error(error) -> None:
    """Raise the sample error a batch carries (a :class:`DatasetError` for dataset problems)."""
    data = np.asarray(error.numpy() if hasattr(error, "numpy") else error, np.uint8)
    if data.size == 1 and data[0] == 0:
        return
    kind, _, message = bytes(data).decode("utf-8", errors="replace").partition("\n")
    if kind == "dataset":
        raise DatasetError(message)
    raise RuntimeError(f"loading a training sample failed in the data loader:\n{message}")


def _stream_keys(n: int, seed: int, start: int, count: int) -> list[tuple[int, int]]:
    """``count`` consecutive entries of the sample stream from position ``start``."""
    keys = []
    pos = start
    while len(keys) < count:
        epoch, offset = divmod(pos, n)
        perm = np.random.default_rng([seed, epoch]).permutation(n)
        take = min(n - offset, count - len(keys))
        keys.extend((epoch, int(i)) for i in perm[offset : offset + take])
        pos += take
    return keys


_SAMPLER_CLASS = None


def _make_sampler_class():
    """``paddle.io.DistributedBatchSampler`` with the epoch-stream order (built lazily: no paddle at import)."""
    global _SAMPLER_CLASS
    if _SAMPLER_CLASS is not None:
        return _SAMPLER_CLASS
    base = _paddle_io().DistributedBatchSampler

    class _StreamBatchSampler(base):
        """Batches of ``(epoch, index)`` keys for iterations ``start_iter .. total_iters - 1`` of this process.

        The rank and number of processes are detected like
        ``DistributedBatchSampler`` does (or given); the order is the epoch
        stream of the module docstring instead of one shuffle per epoch.
        """

        def __init__(self, dataset, batch_size: int, seed: int, start_iter: int, total_iters: int,
                     num_replicas: Optional[int] = None, rank: Optional[int] = None):
            super().__init__(dataset, batch_size, num_replicas=num_replicas, rank=rank, shuffle=False,
                             drop_last=True)
            self.seed = int(seed)
            self.start_iter = int(start_iter)
            self.total_iters = int(total_iters)
            self.n = len(dataset)
            if self.n == 0:
                raise DatasetError("the training split has no samples; add lines to train.txt")

        def __iter__(self):
            per_iter = self.batch_size * self.nranks
            for it in range(self.start_iter, self.total_iters):
                keys = _stream_keys(self.n, self.seed, it * per_iter, per_iter)
                mine = keys[self.local_rank * self.batch_size : (self.local_rank + 1) * self.batch_size]
                yield mine

        def __len__(self) -> int:
            return max(self.total_iters - self.start_iter, 0)

    _SAMPLER_CLASS = _StreamBatchSampler
    return _SAMPLER_CLASS


def batch_sampler_class():
    """The stream batch sampler class (a ``paddle.io.DistributedBatchSampler``); imports paddle."""
    return _make_sampler_class()


def build_train_loader(samples: TrainSamples, batch_size: int, seed: int, start_iter: int, total_iters: int,
                       num_workers: int = 0):
    """A ``paddle.io.DataLoader`` yielding the batches of iterations ``start_iter .. total_iters - 1``."""
    io = _paddle_io()
    sampler = _make_sampler_class()(samples, batch_size, seed, start_iter, total_iters)
    return io.DataLoader(
        samples,
        batch_sampler=sampler,
        collate_fn=collate,
        num_workers=num_workers,
        use_shared_memory=num_workers > 0,
        return_list=True,
    )
