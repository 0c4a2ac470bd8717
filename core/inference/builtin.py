"""The built-in engines, registered in the engine table: dygraph, paddle, onnxruntime, openvino, auto.

Importing this module fills :data:`segzoo.inference.engine_table.ENGINES`
(the predictor imports it). Each engine lives in its own module and imports
only the table; this is the one place that knows them all.
"""

from __future__ import annotations

from .auto import make_auto_engine
from .engine_table import ENGINES, engine_help, register_engine
from .engines import make_dygraph_engine, make_paddle_engine
from .onnx import make_onnx_engine
from .openvino import make_openvino_engine

__all__ = ["ENGINES", "engine_help"]  # the table, filled, and the --engine help text it gives

#: name, factory, the model sources it runs, its options, what it is
BUILTIN_ENGINES = (
    ("dygraph", make_dygraph_engine, ("weights", "layer", "random"), (),
     "the plugin's paddle.nn.Layer (dygraph weights or random init)"),
    ("paddle", make_paddle_engine, ("inference", "weights", "random"),
     ("onednn", "cpu_threads", "gpu_memory_mb", "tensorrt", "precision", "trt_opt_hw", "trt_max_hw", "output_op"),
     "Paddle Inference on an exported directory (weights are exported to the cache first)"),
    ("onnxruntime", make_onnx_engine, ("inference", "weights", "random"), ("cpu_threads", "output_op", "precision"),
     "ONNX Runtime on a paddle2onnx conversion (cached)"),
    ("openvino", make_openvino_engine, ("inference", "weights", "random"), ("cpu_threads", "output_op", "precision"),
     "OpenVINO on the same ONNX conversion; precision='bf16' on CPUs with bf16 support"),
    ("auto", make_auto_engine, ("inference", "weights", "random"), ("cpu_threads", "candidates", "reprobe"),
     "the fastest engine measured for this model on this machine (cached probe)"),
)

for _name, _factory, _sources, _options, _description in BUILTIN_ENGINES:
    register_engine(_name, _factory, sources=_sources, options=_options, description=_description)
