"""The training loop on tiny drawn shapes: one model of each family, outputs, resume, user errors."""

from __future__ import annotations

import json

import numpy as np
import paddle
import pytest
import yaml

from segzoo.config import load_config
from segzoo.errors import ConfigError, DatasetError
from segzoo.training import checkpoint as ckpt
from segzoo.training import train


def _weights(path):
    return {k: v.numpy() for k, v in paddle.load(str(path)).items()}


@pytest.mark.parametrize(
    "model, crop",
    [
        ("PP-LiteSeg-T", 64),
        ("SegFormer-B0", 64),
        ("SeaFormer_tiny", 64),
    ],
)
def test_a_few_iterations_write_the_paddlex_layout(model, crop, shapes64, tmp_path, tiny_train):
    out = tmp_path / "out"
    result = train(tiny_train(model, shapes64, out, crop_size=[crop, crop], keep_checkpoints=1, save_interval=1),
                   progress=False)
    on_disk = json.loads((out / "train_result.json").read_text())
    assert on_disk == result
    assert result["model_name"] == model and result["done_flag"] is True
    assert result["last_iter"] == 3 and result["total_iters"] == 3
    # evaluations at iterations 2 and 3; best_model follows the best mIoU
    assert result["best_iter"] in (2, 3)
    assert 0.0 <= result["best_score"] <= 1.0
    # only the newest checkpoint is kept; every file of it is readable
    assert sorted(p.name for p in out.iterdir() if p.name.startswith("iter_")) == ["iter_3"]
    for name in (ckpt.WEIGHTS, ckpt.OPTIMIZER, ckpt.STATES):
        assert (out / "iter_3" / name).is_file() and (out / "best_model" / name).is_file()
    assert result["models"]["last_1"]["pdparams"] == "iter_3/model.pdparams"
    assert result["models"]["best"]["pdparams"] == "best_model/model.pdparams"
    assert result["models"]["best"]["score"] == result["best_score"]
    states = ckpt.read_states(out / "iter_3")
    assert states["iter"] == 3 and states["model_name"] == model and states["num_classes"] == 4
    assert states["mIoU"] == pytest.approx(states["metrics"]["mIoU"])
    # the weights file loads into a freshly built model exactly
    from segzoo import build_model
    from segzoo.weights import load_weights

    net = build_model(model, num_classes=4)
    assert load_weights(net, out / "best_model" / ckpt.WEIGHTS, strict=True).complete
    # config.yaml is the config as used, every default written out, and loads back
    used = load_config(out / "config.yaml")
    assert used.Train.num_classes == 4 and used.Train.epochs_iters == 3 and used.Model
    log = (out / "train.log").read_text()
    assert "[TRAIN] iter: 3/3" in log and "[EVAL] iter 2/3" in log and "per-class results" in log
    assert (out / "training_curves.png").read_bytes()[:4] == b"\x89PNG"


def test_resume_continues_exactly(shapes64, tmp_path, tiny_train):
    """10 iterations straight == resume at iteration 5 of the same run + 5 more (CPU, deterministic)."""
    base = dict(epochs_iters=10, save_interval=5, eval_interval=5, warmup_steps=2, keep_checkpoints=5)
    straight = tmp_path / "straight"
    train(tiny_train("SeaFormer_tiny", shapes64, straight, **base), progress=False)
    resumed = tmp_path / "resumed"
    cfg = tiny_train("SeaFormer_tiny", shapes64, resumed, resume_path=str(straight / "iter_5"), **base)
    result = train(cfg, progress=False)
    assert result["last_iter"] == 10
    a = _weights(straight / "iter_10" / ckpt.WEIGHTS)
    b = _weights(resumed / "iter_10" / ckpt.WEIGHTS)
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    # the optimizer moments and the schedule position are identical too
    oa = paddle.load(str(straight / "iter_10" / ckpt.OPTIMIZER))
    ob = paddle.load(str(resumed / "iter_10" / ckpt.OPTIMIZER))
    assert oa["LR_Scheduler"] == ob["LR_Scheduler"]
    moments = [k for k in oa if "moment1" in k]
    assert moments
    for key in moments:
        np.testing.assert_array_equal(oa[key].numpy(), ob[key].numpy())
    # the EMA of the weights (Train.ema, on by default) continues exactly too
    ea, eb = _weights(straight / "iter_10" / ckpt.EMA), _weights(resumed / "iter_10" / ckpt.EMA)
    assert ea.keys() == a.keys() == eb.keys()
    for key in ea:
        np.testing.assert_array_equal(ea[key], eb[key], err_msg=key)
    # and the resumed run knows the history before the resume point
    sa, sb = ckpt.read_states(straight / "iter_10"), ckpt.read_states(resumed / "iter_10")
    assert sa["history"]["iters"] == sb["history"]["iters"] == list(range(1, 11))
    assert sa["history"]["loss"] == pytest.approx(sb["history"]["loss"])


def test_labels_beyond_num_classes_name_the_file(shapes64, tmp_path, tiny_train):
    cfg = tiny_train("SeaFormer_tiny", shapes64, tmp_path / "o", num_classes=2, epochs_iters=1)
    with pytest.raises(DatasetError, match=r"annotations/train_\d+\.png .*>= num_classes \(2\)"):
        train(cfg, progress=False)


def test_resume_from_another_model_or_a_finished_run_is_refused(shapes64, tmp_path, tiny_train):
    out = tmp_path / "o"
    train(tiny_train("SeaFormer_tiny", shapes64, out, epochs_iters=2, eval_interval=5), progress=False)
    wrong = tiny_train("PP-LiteSeg-T", shapes64, tmp_path / "p", resume_path=str(out / "iter_2"))
    with pytest.raises(ConfigError, match="checkpoint of SeaFormer_tiny, not PP-LiteSeg-T"):
        train(wrong, progress=False)
    done = tiny_train("SeaFormer_tiny", shapes64, tmp_path / "q", epochs_iters=2, resume_path=str(out / "iter_2"))
    with pytest.raises(ConfigError, match="raise Train.epochs_iters"):
        train(done, progress=False)


def test_overrides_and_yaml_file_drive_the_same_run(shapes64, tmp_path, tiny_train):
    cfg = tiny_train("SeaFormer_tiny", shapes64, tmp_path / "y", epochs_iters=50)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    result = train(path, overrides=["Train.epochs_iters=1", f"Global.output={tmp_path / 'z'}"], progress=False)
    assert result["last_iter"] == 1
    assert (tmp_path / "z" / "train_result.json").is_file() and not (tmp_path / "y").exists()


def test_a_fresh_run_replaces_an_earlier_runs_checkpoints(shapes64, tmp_path, tiny_train):
    out = tmp_path / "o"
    train(tiny_train("SeaFormer_tiny", shapes64, out, epochs_iters=4, save_interval=2, eval_interval=10),
          progress=False)
    assert sorted(p.name for p in out.glob("iter_*")) == ["iter_2", "iter_4"]
    result = train(tiny_train("SeaFormer_tiny", shapes64, out, epochs_iters=1), progress=False)
    assert sorted(p.name for p in out.glob("iter_*")) == ["iter_1"]
    assert list(result["models"]) == ["last_1", "best"]
    assert "holds checkpoints of an earlier run (iter_2, iter_4); removing them" in (out / "train.log").read_text()
