"""Checkpoint folders (all or nothing, recovery after a kill), pruning, and the optimizer/schedule."""

from __future__ import annotations

import os

import numpy as np
import paddle
import pytest

from segzoo import ModelConfig
from segzoo.errors import ConfigError
from segzoo.training import checkpoint as ckpt
from segzoo.training.optim import build_optimizer, build_scheduler, effective_warmup


def _state(value: float) -> dict:
    return {"w": paddle.full([2, 3], value, dtype="float32")}


def test_save_and_load_round_trip(tmp_path):
    folder = ckpt.save_checkpoint(tmp_path / "iter_5", _state(1.5), {"m": paddle.ones([2])}, {"iter": 5, "mIoU": 0.5})
    assert sorted(p.name for p in folder.iterdir()) == sorted([ckpt.WEIGHTS, ckpt.OPTIMIZER, ckpt.STATES])
    model, opt, states = ckpt.load_checkpoint(folder)
    np.testing.assert_array_equal(model["w"].numpy(), np.full((2, 3), 1.5, np.float32))
    assert states == {"iter": 5, "mIoU": 0.5}
    assert float(opt["m"].sum()) == 2.0
    # no temporary folder is left behind
    assert [p.name for p in tmp_path.iterdir()] == ["iter_5"]


def test_replacing_a_folder_and_recovering_from_a_kill_between_the_renames(tmp_path):
    ckpt.save_checkpoint(tmp_path / "best_model", _state(1.0), None, {"iter": 1})
    ckpt.save_checkpoint(tmp_path / "best_model", _state(2.0), None, {"iter": 2})
    assert ckpt.read_states(tmp_path / "best_model")["iter"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["best_model"]
    # a kill after the old folder was renamed away and before the new one arrived
    os.rename(tmp_path / "best_model", tmp_path / ".best_model.old-abc123")
    (tmp_path / ".iter_9.tmp-xyz").mkdir()  # and a half-written checkpoint
    (tmp_path / ".iter_9.tmp-xyz" / ckpt.WEIGHTS).write_bytes(b"half")
    assert ckpt.list_checkpoints(tmp_path) == []
    ckpt.recover(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best_model"]
    assert ckpt.read_states(tmp_path / "best_model")["iter"] == 2
    # an .old folder whose successor did arrive is just removed
    ckpt.save_checkpoint(tmp_path / "x", _state(0.0), None, {"iter": 0})
    (tmp_path / ".best_model.old-def").mkdir()
    ckpt.recover(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best_model", "x"]


def test_prune_keeps_the_newest(tmp_path):
    for it in (2, 4, 10, 6):
        ckpt.save_checkpoint(tmp_path / f"iter_{it}", _state(it), None, {"iter": it})
    (tmp_path / "iter_99").mkdir()  # not a checkpoint (no weights): ignored
    ckpt.prune_checkpoints(tmp_path, keep=2)
    assert [n for n, _ in ckpt.list_checkpoints(tmp_path)] == [6, 10]
    assert ckpt.latest_checkpoint(tmp_path).name == "iter_10"


def test_incomplete_or_missing_resume_folder_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="Train.resume_path: .* is not a checkpoint folder"):
        ckpt.load_checkpoint(tmp_path / "iter_7")
    (tmp_path / "iter_7").mkdir()
    paddle.save(_state(1.0), str(tmp_path / "iter_7" / ckpt.WEIGHTS))
    with pytest.raises(ConfigError, match="lacks model.pdopt, model.pdstates"):
        ckpt.load_checkpoint(tmp_path / "iter_7")


def test_schedule_warmup_then_polynomial_decay():
    cfg = ModelConfig(learning_rate=0.1, warmup_iters=4, lr_power=1.0)
    sched = build_scheduler(cfg, total_iters=14)
    lrs = []
    for _ in range(14):
        lrs.append(sched.get_lr())
        sched.step()
    # linear warm-up from lr/1000 to lr over 4 iterations
    assert lrs[0] == pytest.approx(1e-4)
    assert lrs[:4] == sorted(lrs[:4])
    assert lrs[2] == pytest.approx(1e-4 + (0.1 - 1e-4) * 2 / 4)
    # then linear decay (power 1) over the remaining 10 iterations
    assert lrs[4] == pytest.approx(0.1)
    assert lrs[9] == pytest.approx(0.1 * (1 - 5 / 10))
    assert lrs[13] == pytest.approx(0.1 * (1 - 9 / 10))
    # power 0.9 decays polynomially
    poly = build_scheduler(ModelConfig(learning_rate=1.0, warmup_iters=0, lr_power=0.9), total_iters=10)
    for _ in range(5):
        poly.step()
    assert poly.get_lr() == pytest.approx((1 - 5 / 10) ** 0.9)
    assert effective_warmup(1500, 100) == 50 and effective_warmup(10, 100) == 10


def test_optimizers_follow_the_config():
    layer = paddle.nn.Linear(3, 2)
    sgd = build_optimizer(ModelConfig(optimizer="sgd", momentum=0.8), layer.parameters(),
                          build_scheduler(ModelConfig(), 10))
    assert isinstance(sgd, paddle.optimizer.Momentum)
    adamw = build_optimizer(ModelConfig(optimizer="adamw", weight_decay=0.05, grad_clip=1.0),
                            layer.parameters(), build_scheduler(ModelConfig(), 10))
    assert isinstance(adamw, paddle.optimizer.AdamW)
    assert isinstance(adamw._grad_clip, paddle.nn.ClipGradByGlobalNorm)
    # the clip really bounds the update: a huge gradient moves the weights by at most lr * clip-ish
    x = paddle.full([1, 3], 1e6)
    before = layer.weight.numpy().copy()
    sgd_clip = build_optimizer(ModelConfig(optimizer="sgd", momentum=0.0, weight_decay=0.0, grad_clip=1.0,
                                           learning_rate=0.1), layer.parameters(),
                               0.1)
    layer(x).sum().backward()
    sgd_clip.step()
    step = np.abs(layer.weight.numpy() - before)
    assert np.sqrt((step**2).sum()) <= 0.1 * 1.0 + 1e-6
