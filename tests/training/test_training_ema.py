"""The EMA of the weights (Train.ema, on by default): model.pdema in every checkpoint, evaluated, the averaging rule."""

from __future__ import annotations

import json

import numpy as np
import paddle

from segzoo import build_model
from segzoo.training import checkpoint as ckpt
from segzoo.training import train
from segzoo.weights import load_weights

MODEL = "SeaFormer_tiny"


def _load(path) -> dict:
    return {k: v.numpy() for k, v in paddle.load(str(path)).items()}


def test_ema_files_are_written_evaluated_and_follow_the_averaging_rule(shapes64, tmp_path, tiny_train):
    out = tmp_path / "out"
    result = train(tiny_train(MODEL, shapes64, out, epochs_iters=3, save_interval=1, keep_checkpoints=3,
                              ema_decay=0.9), progress=False)
    for folder in ("iter_1", "iter_2", "iter_3", "best_model"):
        assert (out / folder / ckpt.EMA).is_file(), folder
    assert result["models"]["last_1"]["pdema"] == "iter_3/model.pdema"
    assert result["models"]["best"]["pdema"] == "best_model/model.pdema"
    assert json.loads((out / "train_result.json").read_text())["models"]["last_1"]["pdema"] == "iter_3/model.pdema"

    # the EMA differs from the weights, and is a state dict that loads into the model exactly
    raw, ema = _load(out / "iter_3" / ckpt.WEIGHTS), _load(out / "iter_3" / ckpt.EMA)
    assert raw.keys() == ema.keys()
    assert any(not np.array_equal(raw[k], ema[k]) for k in raw)
    assert load_weights(build_model(MODEL, num_classes=4), out / "iter_3" / ckpt.EMA, strict=True).complete

    # iteration 3: ema = d * ema_2 + (1 - d) * weights_3 with d = min(0.9, 1 - 1/4) = 0.75
    ema2 = _load(out / "iter_2" / ckpt.EMA)
    for key in raw:
        if np.issubdtype(raw[key].dtype, np.floating):
            np.testing.assert_allclose(ema[key], 0.75 * ema2[key] + 0.25 * raw[key], rtol=1e-5, atol=1e-6,
                                       err_msg=key)

    # evaluated beside the weights, and recorded in the checkpoint state
    log = (out / "train.log").read_text()
    assert "[EVAL] iter 2/3, EMA of the weights (model.pdema): mIoU" in log
    assert 0.0 <= ckpt.read_states(out / "iter_2")["ema_mIoU"] <= 1.0


def test_ema_off_writes_no_pdema(shapes64, tmp_path, tiny_train):
    out = tmp_path / "out"
    result = train(tiny_train(MODEL, shapes64, out, epochs_iters=2, ema=False), progress=False)
    assert not list(out.rglob("*.pdema"))
    assert result["models"]["best"]["pdema"] == "" and result["models"]["last_1"]["pdema"] == ""
    assert "EMA" not in (out / "train.log").read_text()
