"""Every engine's masks agree with dygraph on every registered model.

Each model is built once with seeded moderate weights (random init makes some
logits tiny or huge, so argmax ties would decide); its dygraph masks on a
drawn image are the reference; the ``paddle``, ``onnxruntime`` and
``openvino`` engines then run the same weights through segzoo's export cache
(Paddle Inference with oneDNN, and one paddle2onnx conversion that both ONNX
Runtime and OpenVINO run, in fp32) and must give identical masks on
at least 99.9 % of the pixels. The big models are marked slow (they still run
in CI): one per family by default, all of them with
``SEGZOO_TEST_ALL_MODELS=1``. Models whose card says ``onnx=False`` must fall
back to dygraph with an :class:`EngineFallbackWarning`, not fail.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

import segzoo
from segzoo.inference import Predictor
from segzoo.inference.engines import ENGINES, Engine
from segzoo.inference.modeldir import ModelSource
from segzoo.inference.onnx import EngineFallbackWarning

from .conftest import moderate_weights, shapes

MODELS = segzoo.list_models()
#: one large model per family runs by default (marked slow); the small ones all run
LARGE_TESTED = {"Deeplabv3_Plus-R50", "SegFormer-B2", "SeaFormer_large"}
#: the other large models run with SEGZOO_TEST_ALL_MODELS=1 (8.6 min for all 40 cases on 2 loaded cores)
LARGE_OPTIONAL = {
    "Deeplabv3-R50", "Deeplabv3-R101", "Deeplabv3_Plus-R101", "OCRNet_HRNet-W48",
    "SegFormer-B3", "SegFormer-B4", "SegFormer-B5", "MaskFormer_small",
}
ALL = os.environ.get("SEGZOO_TEST_ALL_MODELS") == "1"


def _param(name: str):
    if name in LARGE_OPTIONAL:
        marks = [pytest.mark.slow, pytest.mark.skipif(not ALL, reason="a large model: set SEGZOO_TEST_ALL_MODELS=1")]
    elif name in LARGE_TESTED:
        marks = [pytest.mark.slow]
    else:
        marks = []
    return pytest.param(name, marks=marks)


ENGINE_NAMES = ("paddle", "onnxruntime", "openvino")
ONNX_ENGINES = ("onnxruntime", "openvino")  # both run the cached paddle2onnx conversion


@pytest.fixture(scope="module")
def cache_home(tmp_path_factory):
    """segzoo's cache (exports, conversions) in a temporary directory for these tests."""
    old = os.environ.get("SEGZOO_HOME")
    os.environ["SEGZOO_HOME"] = str(tmp_path_factory.mktemp("segzoo_home"))
    yield os.environ["SEGZOO_HOME"]
    if old is None:
        os.environ.pop("SEGZOO_HOME", None)
    else:
        os.environ["SEGZOO_HOME"] = old


class Reference:
    def __init__(self, name: str, root):
        import paddle

        from segzoo.weights import save_weights

        registry = segzoo.get_registry()
        self.name = name
        self.card = registry.card(name)
        self.config = registry.config(name)
        paddle.seed(0)
        self.layer = registry.build_model(name, self.config)
        moderate_weights(self.layer, seed=0, scale=2.0)
        self.layer.eval()
        self.weights = save_weights(self.layer, root / "model.pdparams")
        if self.card.export.onnx_static_hw:
            # ONNX's pooling equals the adaptive pooling when the 1/32 map is a multiple of the bins (1, 2, 4)
            self.image = shapes(11, (250, 120))  # padded to 256×128
        elif self.card.export.dynamic_shape:
            self.image = shapes(11, (83, 61))  # padded to 96×64: the crop back is exercised too
        else:
            n, c, h, w = self.card.export.fixed_input_shape
            self.image = shapes(11, (w, h))
        self.dygraph = Predictor.from_model(name, self.config, self.layer)
        self.mask = self.dygraph.predict_arrays([self.image])[0]
        # some random-weight masks are one class everywhere (MaskFormer's query class scores dominate,
        # Deeplabv3-R101's and OCRNet_HRNet-W48's deep heads saturate): then the engines export scores,
        # which are compared instead, so the check is never blind
        self.one_class = len(np.unique(self.mask)) < 2
        self.scores = self.dygraph.predict_scores([self.image])[0] if self.one_class else None


@pytest.fixture(scope="module", params=[_param(n) for n in MODELS])
def reference(request, tmp_path_factory, cache_home):
    ref = Reference(request.param, tmp_path_factory.mktemp("ref"))
    yield ref
    del ref.layer


@pytest.mark.parametrize("engine_name", ENGINE_NAMES)
def test_engine_masks_agree_with_dygraph(reference, engine_name):
    ref = reference
    source = ModelSource("weights", path=ref.weights, weights=ref.weights)
    options = {"layer": ref.layer, "cpu_threads": 2}
    if ref.one_class:
        options["output_op"] = "none"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        engine = ENGINES[engine_name].factory(ref.name, ref.config, source, "cpu", options)
    fallbacks = [w for w in caught if issubclass(w.category, EngineFallbackWarning)]
    if engine_name in ONNX_ENGINES and not ref.card.export.onnx:
        assert engine.name == "dygraph" and len(fallbacks) == 1, "a model without ONNX must fall back, once"
        assert "ONNX is not supported" in str(fallbacks[0].message) and "dygraph engine instead" in str(fallbacks[0].message)
    else:
        assert engine.name == engine_name and not fallbacks
    if engine.name == "paddle":
        # oneDNN loads every model (MaskFormer needs operator_reshape_onednn_fuse_pass deleted too)
        assert engine.onednn, f"{ref.name}: Paddle Inference fell back to the plain CPU kernels"
    if engine.name == "dygraph":
        return  # the fallback runs the reference's own layer
    predictor = Predictor(ref.name, ref.config, engine, source, layer=ref.layer)
    mask = predictor.predict_arrays([ref.image])[0]
    if engine.name in ONNX_ENGINES:  # the ONNX model ran it, not the per-size Paddle Inference fallback
        assert engine._sessions and not any(isinstance(s, Engine) for s in engine._sessions.values())
    assert mask.shape == ref.mask.shape == ref.image.shape[:2]
    if ref.one_class:
        scores = predictor.predict_scores([ref.image])[0]
        rel = float(np.abs(scores - ref.scores).max() / np.abs(ref.scores).max())
        assert rel <= 1e-3, f"{ref.name} on {engine.name}: scores differ by {rel:.2e} of their range"
    agree = float((mask == ref.mask).mean())
    assert agree >= 0.999, f"{ref.name} on {engine.name}: masks agree on {agree:.4%} of the pixels"
