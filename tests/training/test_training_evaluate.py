"""`evaluate` and `segzoo evaluate`: the confusion matrix equals one counted by hand from the network's output."""

from __future__ import annotations

import json

import numpy as np
import paddle
import pytest
import yaml

from segzoo import get_registry
from segzoo.cli import main
from segzoo.datasets import SegDataset
from segzoo.errors import ConfigError
from segzoo.training import evaluate
from segzoo.training.metrics import compute_metrics
from segzoo.weights import save_weights

MODEL = "SeaFormer_tiny"


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """Seeded SeaFormer_tiny weights for 4 classes, and the network they came from."""
    reg = get_registry()
    cfg = reg.config(MODEL, num_classes=4)
    paddle.seed(7)
    layer = reg.build_model(MODEL, cfg)
    layer.eval()
    path = tmp_path_factory.mktemp("w") / "model.pdparams"
    save_weights(layer, path)
    return path, layer, cfg


def _by_hand(layer, cfg, dataset) -> np.ndarray:
    """Run the network on each image at its own size, argmax, count (true, predicted) pairs."""
    reg = get_registry()
    m = np.zeros((4, 4), np.int64)
    with paddle.no_grad():
        for image, label in (dataset[i] for i in range(len(dataset))):
            x = reg.preprocess(MODEL, cfg, image)
            scores = reg.postprocess(MODEL, cfg, layer(paddle.to_tensor(x[None])))
            pred = scores.numpy()[0].argmax(axis=0)
            keep = label != 255
            np.add.at(m, (label[keep].astype(int), pred[keep]), 1)
    return m


def test_evaluate_counts_what_the_network_predicts(weights, shapes64, tmp_path, capsys):
    path, layer, cfg = weights
    out = tmp_path / "eval"
    result = evaluate(MODEL, shapes64, path, output_dir=out, progress=False)  # num_classes read from the weights
    expected = _by_hand(layer, cfg, SegDataset(shapes64, "val"))
    np.testing.assert_array_equal(np.array(result["confusion_matrix"]), expected)
    assert result["confusion_matrix"] and np.sum(expected) == 4 * 64 * 64
    ref = compute_metrics(expected)
    assert result["metrics"]["mIoU"] == pytest.approx(ref["mIoU"])
    assert result["metrics"]["Kappa"] == pytest.approx(ref["Kappa"])
    assert result["num_classes"] == 4 and result["samples"] == 4
    assert result["engine"] == "openvino"  # the fast default; the confusion matrix is dygraph's all the same
    on_disk = json.loads((out / "evaluate_result.json").read_text())
    assert on_disk["metrics"]["mIoU"] == pytest.approx(ref["mIoU"])
    assert set(on_disk["metrics"]) >= {"mIoU", "Acc", "Kappa", "Dice", "class_IoU", "class_Acc",
                                       "class_Precision", "class_Recall", "class_Dice"}
    assert (out / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    printed = capsys.readouterr().out
    assert "per-class results" in printed and "| triangle" in printed  # names from class_name.txt


def test_evaluate_from_a_config_and_the_cli(weights, shapes64, tmp_path, capsys):
    path, _, _ = weights
    cfg = {"Global": {"model": MODEL, "dataset_dir": str(shapes64), "device": "cpu", "output": str(tmp_path / "o")}}
    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    assert main(["evaluate", "-c", str(cfg_path), "-o", f"Evaluate.weight_path={path}", "--no-progress"]) == 0
    first = json.loads((tmp_path / "o" / "evaluate_result.json").read_text())
    assert main(["-c", str(cfg_path), "-o", "Global.mode=evaluate", "-o", f"Evaluate.weight_path={path.parent}"]) == 0
    second = json.loads((tmp_path / "o" / "evaluate_result.json").read_text())
    assert first["confusion_matrix"] == second["confusion_matrix"]
    capsys.readouterr()
    # no weights and no trained best_model: a clear error naming the key
    assert main(["evaluate", "-c", str(cfg_path), "--output", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert "Evaluate.weight_path:" in err and "best_model/model.pdparams does not exist" in err


def test_weights_of_another_class_count_are_refused(weights, shapes64):
    path, _, _ = weights
    with pytest.raises(Exception, match="holds a 4-class SeaFormer_tiny, but num_classes=3 was given; set num_classes=4"):
        evaluate(MODEL, shapes64, path, num_classes=3, progress=False, verbose=False)
    with pytest.raises(ConfigError, match="Evaluate.weight_path"):
        evaluate(MODEL, shapes64, None, progress=False)
