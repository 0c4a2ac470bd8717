"""Export to the PaddleX layout and back through Paddle Inference, for every model that exports."""

from __future__ import annotations

import numpy as np
import paddle
import pytest
import yaml

import segzoo
from segzoo import ConfigError, ExportError
from segzoo.inference import Predictor, create_model, export_model

# the big ones: a few seconds to half a minute each on 2 CPU cores
SLOW = {
    "Deeplabv3-R101",
    "Deeplabv3_Plus-R101",
    "OCRNet_HRNet-W48",
    "SegFormer-B3",
    "SegFormer-B4",
    "SegFormer-B5",
    "SeaFormer_large",
    "MaskFormer_small",
}


def _exportable():
    params = []
    for card in segzoo.get_registry().cards():
        if not card.export.static or card.family == "inference-tests":
            continue
        marks = [pytest.mark.slow] if card.name in SLOW else []
        params.append(pytest.param(card.name, marks=marks, id=card.name))
    return params


@pytest.mark.parametrize("name", _exportable())
def test_export_round_trip(name, tmp_path, make_image, set_moderate_weights, caplog):
    """Dygraph vs the exported graph through Paddle Inference, on a 83×61 image (padded, cropped back).

    Exported with output_op="none" so the scores themselves are compared (relative error ≤ 1e-4),
    then the masks (identical on ≥ 99.9 % of pixels). The argmax export is the same graph plus
    one argmax, checked on its own below.
    """
    registry = segzoo.get_registry()
    card = registry.card(name)
    config = registry.config(name, num_classes=3)
    paddle.seed(0)
    layer = registry.build_model(name, config)
    set_moderate_weights(layer, seed=1)
    dygraph = Predictor.from_model(name, config, layer)
    image = make_image(50, (83, 61))
    target = None
    if not card.export.dynamic_shape:  # the exported graph takes one size: predict both at it
        n, c, h, w = card.export.fixed_input_shape
        target = (w, h)
    want = dygraph.predict_scores([image], target_size=target)[0]
    out = export_model(name, tmp_path / "inference", config=config, layer=layer, output_op="none")
    with caplog.at_level("WARNING", logger="segzoo"):
        exported = create_model(name, model_dir=out, engine="paddle")  # this test is about Paddle Inference
        got = exported.predict_scores([image])[0]
    assert exported.engine.name == "paddle" and exported.engine.outputs == "scores"
    # oneDNN is used unless the graph cannot run with it, and then the fallback is announced
    assert exported.engine.onednn or "using the plain CPU kernels" in caplog.text
    assert got.shape == want.shape == (3, 61, 83)
    rel = float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-12))
    assert rel <= 1e-4, f"{name}: scores differ by {rel:.2e} of their range"
    agree = float((got.argmax(0) == want.argmax(0)).mean())
    assert agree >= 0.999, f"{name}: masks agree on {agree:.4%} of pixels"


@pytest.mark.parametrize("name", ["PP-LiteSeg-T", "SeaFormer_tiny"])
def test_argmax_export_is_paddlex_layout(name, tmp_path, make_image, set_moderate_weights):
    registry = segzoo.get_registry()
    config = registry.config(name, num_classes=3, mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3))
    paddle.seed(0)
    layer = registry.build_model(name, config)
    set_moderate_weights(layer, seed=3, scale=2.0)  # a seed whose mask has several classes on the image below
    out = export_model(name, tmp_path / "exp", config=config, layer=layer)
    assert sorted(p.name for p in out.iterdir()) == ["inference.json", "inference.pdiparams", "inference.yml"]
    data = yaml.safe_load((out / "inference.yml").read_text())
    assert data["Global"] == {"model_name": name}
    deploy = data["Deploy"]
    assert deploy["transforms"] == [{"type": "Normalize", "mean": [0.4, 0.5, 0.6], "std": [0.2, 0.25, 0.3]}]
    assert deploy["output_op"] == "argmax" and deploy["output_dtype"] == "int32"
    assert deploy["input_shape"] == [-1, 3, -1, -1]
    assert deploy["model"] == "inference.json" and deploy["params"] == "inference.pdiparams"

    # the raw graph: int32 N×H×W labels
    from paddle import inference

    cfg = inference.Config(str(out / "inference.json"), str(out / "inference.pdiparams"))
    cfg.disable_gpu()
    cfg.disable_onednn()
    predictor = inference.create_predictor(cfg)
    x = np.random.default_rng(0).standard_normal((2, 3, 64, 96)).astype(np.float32)
    handle = predictor.get_input_handle(predictor.get_input_names()[0])
    handle.reshape(list(x.shape))
    handle.copy_from_cpu(x)
    predictor.run()
    labels = predictor.get_output_handle(predictor.get_output_names()[0]).copy_to_cpu()
    assert labels.dtype == np.int32 and labels.shape == (2, 64, 96)

    image = make_image(51, (83, 61))
    want = Predictor.from_model(name, config, layer).predict_arrays([image])[0]
    got = create_model(name, model_dir=out).predict_arrays([image])[0]
    assert len(np.unique(want)) >= 2, "the seeded weights must give a mask with several classes"
    assert (got == want).mean() >= 0.999


def test_fixed_input_shape_card(fixed_model, tmp_path, make_image):
    """A card without dynamic shapes exports at its fixed shape; every image is resized to it and back."""
    import warnings

    import cv2

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = create_model(fixed_model, device="cpu", pretrained=False)
    out = model.export(tmp_path / "fixed")
    data = yaml.safe_load((out / "inference.yml").read_text())
    assert data["Deploy"]["input_shape"] == [1, 3, 32, 32]
    exported = create_model(fixed_model, model_dir=out)
    assert exported.engine.input_hw == (32, 32) and exported.engine.max_batch == 1
    images = [make_image(52, (53, 37)), make_image(53, (90, 40))]
    got = [r.pred for r in exported.predict(images, batch_size=2)]
    assert [g.shape for g in got] == [(37, 53), (40, 90)]
    for g, img in zip(got, images):
        # the graph outputs labels at 32×32; they come back to the image's size by nearest resizing
        small = model.predict_arrays([cv2.resize(img, (32, 32), interpolation=cv2.INTER_LINEAR)])[0]
        want = cv2.resize(small, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_NEAREST)
        assert (g == want).mean() >= 0.999
    with pytest.raises(ConfigError, match="exported for 32×32 inputs only"):
        exported.predict(images[0], slide_window=(16, 16))


def test_export_errors_and_atomic_replace(tiny, noexport_model, tmp_path):
    with pytest.raises(ExportError, match="the test network refuses static graphs"):
        export_model(noexport_model, tmp_path / "x")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_bytes(b"keep me")
    with pytest.raises(ExportError, match="not empty and holds no earlier export"):
        export_model(tiny.name, foreign, config=tiny.config, layer=tiny.layer)
    assert (foreign / "holiday.jpg").read_bytes() == b"keep me"
    with pytest.raises(ConfigError, match="output_op 'max' is not one of argmax, softmax, none"):
        export_model(tiny.name, tmp_path / "y", config=tiny.config, layer=tiny.layer, output_op="max")
    with pytest.raises(ConfigError, match="input_shape"):
        export_model(tiny.name, tmp_path / "y", config=tiny.config, layer=tiny.layer, input_shape=[1, 4, 32, 32])
    # re-exporting over an earlier export replaces it, leaving no temporary directories behind
    target = tmp_path / "again"
    export_model(tiny.name, target, config=tiny.config, layer=tiny.layer, output_op="softmax")
    export_model(tiny.name, target, config=tiny.config, layer=tiny.layer)
    assert yaml.safe_load((target / "inference.yml").read_text())["Deploy"]["output_op"] == "argmax"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again", "foreign"]
    with pytest.raises(ExportError, match="runs an exported model already"):
        create_model(tiny.name, model_dir=tiny.export_dir).export(tmp_path / "z")


def test_export_from_weights_reads_the_class_count(tiny, tmp_path, make_image):
    out = export_model(tiny.name, tmp_path / "from_weights", weights=tiny.weights)
    data = yaml.safe_load((out / "inference.yml").read_text())
    assert data["segzoo"]["num_classes"] == 4
    image = make_image(54)
    got = create_model(model_dir=out).predict_arrays([image])[0]
    assert (got == tiny.predictor.predict_arrays([image])[0]).mean() >= 0.999

