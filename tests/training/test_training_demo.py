"""The shipped demo model (core/assets/demo, made by scripts/make_demo_model.py) segments fresh shapes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import paddle
import pytest
import yaml

from segzoo.datasets.shapes import CLASS_NAMES, draw_sample
from segzoo.training.metrics import ConfusionMatrix

DEMO = Path(__file__).resolve().parents[2] / "core" / "assets" / "demo"
FRESH_SEED = 424242  # never used by make_demo_model.py (its data seed is 20240601, the image seed 777)


@pytest.fixture(scope="module")
def demo():
    path = DEMO / "demo.yml"
    if not path.is_file():
        pytest.fail(f"{path} is missing: run `python scripts/make_demo_model.py`")
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def test_demo_files_are_small_and_described(demo):
    assert demo["model_name"] == "SeaFormer_tiny" and demo["num_classes"] == len(CLASS_NAMES)
    assert demo["class_names"] == list(CLASS_NAMES)
    weights = DEMO / demo["weights"]
    assert weights.stat().st_size < 4 * 2**20
    state = paddle.load(str(weights))
    assert {str(v.dtype) for v in state.values() if v.ndim > 1} == {"paddle.float16"}
    assert (DEMO / demo["image"]).read_bytes()[:4] == b"\x89PNG"
    made = demo["made_by"]
    for key in ("command", "seed", "iterations", "date", "versions"):
        assert key in made
    assert demo["miou"] >= 80.0


def test_demo_weights_segment_freshly_drawn_shapes(demo):
    from segzoo.inference import create_model

    predictor = create_model(demo["model_name"], model_dir=DEMO / demo["weights"], device="cpu",
                             num_classes=demo["num_classes"])
    rng = np.random.default_rng(FRESH_SEED)
    samples = [draw_sample(rng, (128, 128)) for _ in range(100)]
    preds = predictor.predict_arrays([img for img, _ in samples], batch_size=16)
    cm = ConfusionMatrix(demo["num_classes"])
    background_only = ConfusionMatrix(demo["num_classes"])
    for pred, (_, label) in zip(preds, samples):
        cm.update(pred, label)
        background_only.update(np.zeros_like(label), label)
    miou = cm.compute()["mIoU"]
    assert miou >= 0.8, f"demo mIoU on fresh shapes: {miou:.3f}"
    assert background_only.compute()["mIoU"] < 0.3  # what a model that learned nothing gets
