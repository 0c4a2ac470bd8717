"""Inference: ``create_model(...).predict(...)``, result objects, engines, export, the demo.

>>> import segzoo
>>> model = segzoo.create_model("PP-LiteSeg-T", model_dir="output/best_model/inference")
>>> for res in model.predict("images/", batch_size=4):
...     res.print()
...     res.save_to_img("output/")

Modules: :mod:`.predictor` (``create_model``, ``Predictor``), :mod:`.inputs`
(what ``predict`` reads), :mod:`.sizes` (``target_size``, padding, windows),
:mod:`.result` (``SegResult``), :mod:`.engines` (dygraph, Paddle Inference,
``register_engine``), :mod:`.onnx` (ONNX Runtime and the export cache),
:mod:`.auto` (``engine="auto"``), :mod:`.pipeline` (read-ahead),
:mod:`.bench` (``segzoo benchmark``), :mod:`.modeldir` (``model_dir`` and ``inference.yml``),
:mod:`.export` (``export_model``), :mod:`.demo` (``load_demo``), :mod:`.run`
(``run_predict``). Importing this package does not import paddle.
"""

from __future__ import annotations

from .._lazy import lazy_exports

_EXPORTS = {
    "create_model": ".predictor",
    "Predictor": ".predictor",
    "RandomWeightsWarning": ".predictor",
    "SegResult": ".result",
    "Engine": ".engines",
    "DygraphEngine": ".engines",
    "PaddleInferenceEngine": ".engines",
    "ENGINES": ".engines",
    "register_engine": ".engines",
    "OnnxRuntimeEngine": ".onnx",
    "EngineFallbackWarning": ".onnx",
    "export_model": ".export",
    "load_demo": ".demo",
    "run_predict": ".run",
    "iter_inputs": ".inputs",
    "IMAGE_EXTENSIONS": ".inputs",
    "resolve_model_dir": ".modeldir",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
