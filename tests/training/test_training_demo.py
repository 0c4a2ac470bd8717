"""The shipped demo model (core/assets/demo, made by scripts/make_demo_model.py) segments fresh shapes, and its
shipped ONNX conversion is that of its weights, so the first `segzoo predict` converts nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2

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
    assert (DEMO / "demo.onnx").stat().st_size < 4 * 2**20  # float16 storage
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


def test_the_shipped_onnx_is_the_conversion_of_the_shipped_weights(demo, tmp_path, monkeypatch):
    """demo.onnx names the network of demo.pdparams and gives its masks at any size; it runs in place, and the
    labels graph an argmax engine asks for is made from it without converting."""
    from segzoo.inference import create_model
    from segzoo.inference.export_cache import exports_cache
    from segzoo.inference.netid import layer_digest, network_id

    monkeypatch.setenv("SEGZOO_HOME", str(tmp_path / "home"))
    args = dict(model_name=demo["model_name"], model_dir=DEMO / demo["weights"], device="cpu",
                num_classes=demo["num_classes"])
    dygraph = create_model(**args, engine="dygraph")
    meta = json.loads((DEMO / "demo.onnx.json").read_text(encoding="utf-8"))
    assert meta["outputs"] == "scores"
    assert meta["network"] == network_id(demo["model_name"], dygraph.config, layer_digest(dygraph.layer)), (
        "demo.onnx is not the conversion of demo.pdparams: run `python scripts/make_demo_model.py --onnx-only`")
    image = cv2.imread(str(DEMO / demo["image"]))
    images = [image, image[:101, :117], cv2.resize(image, (211, 150))]  # its own size, and two odd ones
    want = dygraph.predict_arrays(images)
    default = create_model(**args)  # the engine `segzoo predict` runs: scores, from demo.onnx in place
    assert default.engine.outputs == "scores" and default.engine.model_for(None) == DEMO / "demo.onnx"
    labels = create_model(**args, engine="onnxruntime")  # an explicit engine outputs labels
    assert labels.engine.model_for(None).name.endswith(".onnx.argmax")
    for model in (default, labels):
        for got, ref in zip(model.predict_arrays(images), want):
            assert got.shape == ref.shape and float((got == ref).mean()) >= 0.9999
    assert not list(exports_cache().glob("*.onnx"))  # nothing converted


def test_the_first_segzoo_predict_on_a_fresh_machine_converts_nothing(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("SEGZOO_DEMO_DIR", "SEGZOO_ENGINE")}
    env["SEGZOO_HOME"] = str(tmp_path / "home")
    cmd = [sys.executable, "-c", "import sys; from segzoo.cli import main; sys.exit(main())",
           "predict", "--output", str(tmp_path / "out")]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["demo_overlay.png", "demo_res.json", "demo_res.png"]
    exports = tmp_path / "home" / "exports"
    made = [p.name for p in (exports.iterdir() if exports.is_dir() else ())
            if not p.name.startswith(".") and not p.name.endswith(".lock")]
    assert made == [], made  # no export, no conversion
    assert "converting" not in done.stderr.lower()
