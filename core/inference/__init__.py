"""Inference: ``create_model(...).predict(...)``, result objects, engines, export, the demo.

>>> import segzoo
>>> model = segzoo.create_model("PP-LiteSeg-T", model_dir="output/best_model/inference")
>>> for res in model.predict("images/", batch_size=4):
...     res.print()
...     res.save_to_img("output/")

Modules: :mod:`.create` (``create_model``), :mod:`.predictor` (``Predictor``:
batching), :mod:`.inputs` (what ``predict`` reads), :mod:`.sizes`
(``target_size``, padding, windows), :mod:`.result` (``SegResult``),
:mod:`.engine_table` (``Engine``, ``register_engine``, the default and fallback
rules; imports no engine), :mod:`.engines` (dygraph, Paddle Inference),
:mod:`.onnx` (ONNX Runtime), :mod:`.openvino`, :mod:`.auto` (``engine="auto"``),
:mod:`.builtin` (registers those), :mod:`.export_cache` (exports and ONNX
conversions, cached), :mod:`.pipeline` (read-ahead),
:mod:`.bench` (``segzoo benchmark``), :mod:`.modeldir` (``model_dir`` and ``inference.yml``),
:mod:`.export` (``export_model``), :mod:`.demo` (``load_demo``), :mod:`.run`
(``run_predict``). Importing this package does not import paddle.
"""

from __future__ import annotations

from .._lazy import lazy_exports

_EXPORTS = {
    "create_model": ".create",
    "Predictor": ".predictor",
    "RandomWeightsWarning": ".predictor",
    "SegResult": ".result",
    "Engine": ".engine_table",
    "DygraphEngine": ".engines",
    "PaddleInferenceEngine": ".engines",
    "ENGINES": ".builtin",
    "register_engine": ".engine_table",
    "OnnxRuntimeEngine": ".onnx",
    "EngineFallbackWarning": ".engine_table",
    "export_model": ".export",
    "load_demo": ".demo",
    "run_predict": ".run",
    "iter_inputs": ".inputs",
    "IMAGE_EXTENSIONS": ".inputs",
    "resolve_model_dir": ".modeldir",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
