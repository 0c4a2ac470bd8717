"""A model name gives the masks of PaddleX's program, on a real photo at its own size.

This is the path a PaddleX user takes: ``segzoo.create_model(NAME)`` downloads
PaddleX's official inference program and predicts with the default engine. A
stand-in for the official host on 127.0.0.1 serves, in the official layout, a
program built the way PaddleX builds its official ones: paddleseg's own
network from PaddleX's config (``tests/plugins/paddleseg_reference.py``) with
seeded weights, paddleseg's ``WrappedModel(argmax)``, ``paddle.jit.save`` with
a dynamic H×W, and PaddleX's ``inference.yml``. The masks of segzoo's default
engine (which converts PP-LiteSeg's and SegFormer's programs through segzoo's
own network) and of Paddle Inference must equal paddleseg's network fed each
image at its own size: the real VOC photo at 500×375, at 131×97 and cut to
83×61, in one batch (on >= 99.9 % of the pixels, or differing only at argmax
ties). OpenVINO runs fp32 here: bf16, where it is the default, is held to its
own agreement gate (``segzoo.inference.precision``). Padding to 32, as segzoo did before, gave 73–97 % here.

SeaFormer_tiny has no paddleseg network: its program is exported from segzoo's
own layer (checked against the official fixture in ``tests/plugins/seaformer``).
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

import segzoo
from segzoo import official

from ..core.official_server import OfficialServer, tar_folder
from ..plugins.paddleseg_reference import assert_agrees, paddlex_program, reference_scores, seeded_peer
from .test_engines_agreement import photos

MODELS = [
    pytest.param("PP-LiteSeg-T"),
    pytest.param("SegFormer-B0"),
    pytest.param("SeaFormer_tiny"),
    # a program converted as it is (no rebuild); PaddleX's own predictor checks it in benchmarks/paddlex_parity.py
    pytest.param("OCRNet_HRNet-W18", marks=[pytest.mark.slow, pytest.mark.skipif(
        os.environ.get("SEGZOO_TEST_ALL_MODELS") != "1", reason="a large program: set SEGZOO_TEST_ALL_MODELS=1")]),
]


@pytest.fixture(scope="module", params=MODELS)
def served(request, tmp_path_factory):
    """``(name, server, photos, paddleseg's scores)`` for one model's PaddleX-style program."""
    name = request.param
    root = tmp_path_factory.mktemp("paddlex_program")
    config, _, peer, traced = seeded_peer(name)
    folder = paddlex_program(name, traced, root / "program", config.mean, config.std)
    server = OfficialServer()
    server.put(f"official_inference_model/{official.INFERENCE_VERSION}/{name}_infer.tar",
               tar_folder(folder, top=f"{name}_infer"))
    images = photos(full=True)
    scores = [reference_scores(peer, img, config.mean, config.std) for img in images]
    assert all(len(np.unique(s.argmax(0))) > 1 for s in scores), "the reference masks must not be one class"
    yield name, server, images, scores
    server.close()


@pytest.mark.parametrize("engine", [None, "paddle"], ids=["default-engine", "paddle"])
def test_a_model_name_gives_paddlexs_masks_at_the_photos_own_size(served, engine, tmp_path, monkeypatch):
    name, server, images, scores = served
    monkeypatch.setenv("SEGZOO_MODEL_BASE_URL", server.base_url)
    monkeypatch.setenv("SEGZOO_HOME", str(tmp_path / "segzoo_home"))
    monkeypatch.setenv("PADDLE_PDX_CACHE_HOME", str(tmp_path / "paddlex_home"))
    monkeypatch.setenv("SEGZOO_PRECISION", "fp32")  # bf16, where it is the default, has its own agreement gate
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = segzoo.create_model(name, engine=engine)
    if engine is None:
        assert model.engine.name in ("openvino", "onnxruntime"), model.engine.name
    masks = [r.pred for r in model.predict(images, batch_size=len(images))]
    for image, mask, image_scores in zip(images, masks, scores):
        h, w = image.shape[:2]
        assert_agrees(mask, image_scores, f"{name} ({model.engine.name}) at {w}×{h}, against PaddleX's program")
