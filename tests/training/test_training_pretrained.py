"""Training starts from served official-layout weights: the backbone by default, the whole model on request.

The "official" weights served here are real pretrained weights: segzoo's shipped
demo model (SeaFormer_tiny trained by ``scripts/make_demo_model.py`` for 5000
iterations on 4-class drawn shapes, 88 % mIoU), stored as PaddleX names its files
(``official_pretrained_model/SeaFormer_tiny_pretrained.pdparams``; its backbone
alone, in the backbone's own names, as ``..._backbone_imagenet_pretrained.pdparams``).
The fine-tuning task is a related one with another class count: background,
round and angular shapes (3 classes).
"""

from __future__ import annotations

import logging
import shutil

import cv2
import numpy as np
import paddle
import pytest

import segzoo
from segzoo.datasets.shapes import make_shapes_dataset
from segzoo.errors import DownloadError
from segzoo.inference.demo import demo_dir
from segzoo.training import train
from segzoo.training.init_weights import load_initial_weights
from segzoo.weights import read_state_dict

MODEL = "SeaFormer_tiny"
DEMO = demo_dir() / "demo.pdparams"
WHOLE = f"official_pretrained_model/{MODEL}_pretrained.pdparams"
BACKBONE = f"official_pretrained_model/{MODEL}_backbone_imagenet_pretrained.pdparams"


def _demo_state() -> dict:
    """The demo weights in float32, as an official file stores them."""
    return {k: v.astype("float32") if v.dtype == paddle.float16 else v for k, v in read_state_dict(DEMO).items()}


def _serve_whole(server) -> dict:
    state = _demo_state()
    paddle.save(state, str(server.root / WHOLE))
    return state


def _serve_backbone(server) -> dict:
    """The demo's backbone in the backbone's own names (no ``backbone.`` prefix), as ImageNet backbone files are."""
    state = {k[len("backbone."):]: v for k, v in _demo_state().items() if k.startswith("backbone.")}
    paddle.save(state, str(server.root / BACKBONE))
    return state


def _gets(server, path: str) -> int:
    return sum(1 for r in server.requests if r == f"GET /{path}")


@pytest.fixture(scope="module")
def three_classes(tmp_path_factory):
    """Drawn shapes relabelled as background / round / angular: 100 train, 8 val images of 64×64."""
    root = make_shapes_dataset(tmp_path_factory.mktemp("shapes3"), num_train=100, num_val=8, size=(64, 64), seed=6)
    for path in (root / "annotations").glob("*.png"):
        label = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        cv2.imwrite(str(path), np.where(label == 1, 1, np.where(label > 1, 2, 0)).astype(np.uint8))
    (root / "class_name.txt").write_text("background\nround\nangular\n", encoding="utf-8")
    return root


def _config(data, out, **train_keys) -> dict:
    values = {"epochs_iters": 20, "batch_size": 4, "crop_size": [64, 64], "learning_rate": 2e-3, "warmup_steps": 2,
              "eval_interval": 20, "log_interval": 10, "export": False, "keep_checkpoints": 1,
              "augment": {"min_scale": 1.0, "max_scale": 1.0}}
    values.update(train_keys)
    return {"Global": {"model": MODEL, "mode": "train", "dataset_dir": str(data), "device": "cpu",
                       "output": str(out)}, "Train": values}


def test_finetuning_the_official_model_on_another_class_count_beats_scratch(three_classes, tmp_path, weights_server):
    _serve_whole(weights_server)
    scratch = train(_config(three_classes, tmp_path / "scratch", pretrain_weight_path=None), progress=False)
    assert weights_server.requests == []
    tuned = train(_config(three_classes, tmp_path / "tuned", pretrain_weight_path="official"), progress=False)
    assert _gets(weights_server, WHOLE) == 1

    # 20 iterations: the pretrained features carry over, the fresh classifier learns the 3 new classes
    assert tuned["best_score"] > scratch["best_score"] + 0.15, (tuned["best_score"], scratch["best_score"])
    log = (tmp_path / "tuned" / "train.log").read_text()
    assert f"{MODEL}_pretrained.pdparams: loaded 384 of the model's 386 tensors" in log
    assert ("skipped 1 classifier layer(s), which keep their fresh initialisation because the weights were trained "
            "for 4 classes and this model has 3 (Train.num_classes): cls_seg") in log
    assert "initial weights: none" in (tmp_path / "scratch" / "train.log").read_text()


def test_the_default_fetches_the_backbone_once_and_loads_it_into_the_backbone(shapes64, tmp_path, weights_server,
                                                                             tiny_train):
    served = _serve_backbone(weights_server)
    cfg = tiny_train(MODEL, shapes64, tmp_path / "out", epochs_iters=1, ema=False)
    del cfg["Train"]["pretrain_weight_path"]  # the default: PaddleX's official_backbone
    train(cfg, progress=False)
    assert weights_server.requests == [f"GET /{BACKBONE}"]
    log = (tmp_path / "out" / "train.log").read_text()
    n = len(served)
    assert f"loaded {n} of the {n} tensors of backbone (the file holds the backbone's own names)" in log
    assert "pretrain_weight_path: official_backbone" in (tmp_path / "out" / "config.yaml").read_text()

    # the cached file loads again without a request: every backbone tensor is the file's, the head stays as built
    paddle.seed(7)
    model = segzoo.build_model(MODEL, num_classes=4)
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    report = load_initial_weights(model, "official_backbone", MODEL, 4, logging.getLogger("test"))
    assert weights_server.requests == [f"GET /{BACKBONE}"]
    assert report.prefix == "backbone." and report.complete and report.outside == len(before) - n
    for key, value in model.state_dict().items():
        want = served[key[len("backbone."):]].numpy() if key.startswith("backbone.") else before[key]
        np.testing.assert_array_equal(value.numpy(), want, err_msg=key)


def test_null_trains_from_scratch_without_a_request(shapes64, tmp_path, weights_server, tiny_train):
    _serve_whole(weights_server)
    _serve_backbone(weights_server)
    cfg = tiny_train(MODEL, shapes64, tmp_path / "out", epochs_iters=1, ema=False)
    del cfg["Train"]["pretrain_weight_path"]
    train(cfg, overrides=["Train.pretrain_weight_path=null"], progress=False)
    assert weights_server.requests == []
    assert "initial weights: none (Train.pretrain_weight_path=null): training from scratch" in (
        tmp_path / "out" / "train.log").read_text()


def test_missing_official_weights_name_the_key_and_the_way_out(shapes64, tmp_path, weights_server, tiny_train):
    cfg = tiny_train(MODEL, shapes64, tmp_path / "out", epochs_iters=1, pretrain_weight_path="official")
    with pytest.raises(DownloadError) as err:
        train(cfg, progress=False)
    msg = str(err.value)
    assert msg.startswith("Train.pretrain_weight_path=official: ") and WHOLE in msg
    assert "Train.pretrain_weight_path=null to train from scratch" in msg
    assert not (tmp_path / "out" / "iter_1").exists()


def test_a_local_checkpoint_folder_or_url_starts_a_run(shapes64, tmp_path, weights_server, tiny_train):
    whole = _serve_whole(weights_server)
    folder = tmp_path / "given"
    folder.mkdir()
    shutil.copy(weights_server.root / WHOLE, folder / "model.pdparams")
    for spec in (str(folder), weights_server.url + WHOLE):
        model = segzoo.build_model(MODEL, num_classes=4)
        report = load_initial_weights(model, spec, MODEL, 4)
        assert report.complete and report.prefix == ""
        for key, value in model.state_dict().items():
            np.testing.assert_array_equal(value.numpy(), whole[key].numpy(), err_msg=key)
    assert weights_server.requests == [f"GET /{WHOLE}"]  # the URL; the folder is read in place
