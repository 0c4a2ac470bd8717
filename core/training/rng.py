"""The random generators of a training process: seeding, and their state in a checkpoint.

The state is kept as plain Python values (lists, tuples, paddle's generator
states) because ``paddle.load`` turns numpy arrays into tensors and has no
uint32, so ``model.pdstates`` gives back exactly what was saved.
"""

from __future__ import annotations

import random

import numpy as np

__all__ = ["seed_all", "rng_state", "set_rng_state"]


def seed_all(seed: int) -> None:
    """Seed paddle, numpy and Python's ``random``."""
    import paddle

    paddle.seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def rng_state(on_gpu: bool) -> dict:
    """The state of every generator training draws from (CUDA's too on a GPU)."""
    import paddle

    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(gauss)],
        "python": random.getstate(),
        "paddle": paddle.get_rng_state(),
    }
    if on_gpu:
        state["cuda"] = paddle.get_cuda_rng_state()
    return state


def set_rng_state(state: dict, on_gpu: bool) -> None:
    """Restore what :func:`rng_state` returned (nothing when ``state`` is empty)."""
    import paddle

    if not state:
        return
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    random.setstate(state["python"])
    paddle.set_rng_state(state["paddle"])
    if on_gpu and "cuda" in state:
        paddle.set_cuda_rng_state(state["cuda"])
