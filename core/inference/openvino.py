"""The ``"openvino"`` engine: OpenVINO runs the same cached ONNX conversion as ONNX Runtime, in fp32 or bf16.

Everything before the session (exporting weights to the cache, converting to
ONNX once, checking the conversion against Paddle, falling back for models
that do not convert) is :func:`segzoo.inference.onnx.make_onnx_engine`'s; this
module only loads the ``.onnx`` file into OpenVINO's CPU plugin.

**One compiled model per input shape.** OpenVINO's CPU plugin runs a model
compiled for a static shape 1.1–2× faster than the same model with a dynamic
H×W (2 cores, fp32: SegFormer-B0 at 512×512 78 vs 159 ms, at 1024×512 170 vs
326 ms; PP-LiteSeg-T 45 vs 60 ms), and compiling takes 0.2–0.5 s. So the
engine reads the converted model once and compiles a copy reshaped to each
input size it meets (1×3×H×W, H and W padded to the card's divisor), keeping
the last :data:`MAX_SHAPES` (fewer for big models: :data:`SHAPES_WEIGHTS_MB`);
the ONNX file stays one conversion per model. A batch runs image by image:
compiling per batch size too would grow memory with every batch size a
server's dynamic batcher forms, and a dynamic batch dimension costs SegFormer-B0
1.7× (141 vs 82 ms at 512×512). Only the shape in use keeps its
intermediate buffers: switching shapes releases the last one's. A model that
cannot be reshaped runs dynamic.

``precision="bf16"`` sets OpenVINO's ``INFERENCE_PRECISION_HINT`` to bf16:
on CPUs with AVX512-BF16 or AMX it runs convolutions and matrix products in
bfloat16 (PP-LiteSeg-T at 512×512 on 2 cores: 13 ms against 45 ms in fp32).
On a CPU without native bf16 (OpenVINO would silently run fp32) asking for it
is a one-line error naming the CPU's capabilities. bf16 rounds the scores, so
masks can differ from fp32 where two classes are close: without ``precision``
the engine runs bf16 only where the CPU has it and the model's weights agree
with fp32 on >= 99.9 % of the pixels of real photos, measured once
(:mod:`segzoo.inference.precision`). ``precision="int8"`` runs the INT8 model
``segzoo quantize`` made of the same weights (:mod:`segzoo.inference.int8`).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..device import parse_device
from ..errors import ConfigError, DependencyError, WeightsError
from ..plugin import normalize_image
from ..registry import get_registry
from .engine_table import Engine
from .int8 import find_int8
from .onnx import OnnxRuntimeEngine, make_onnx_engine
from .ov_shapes import MAX_SHAPES, SHAPES_WEIGHTS_MB, CompiledShapes, bound_primitive_cache  # noqa: F401  (their old home)
from .precision import check_precision, cpu_capabilities, default_precision

log = logging.getLogger("segzoo")

#: precision option -> OpenVINO's INFERENCE_PRECISION_HINT (int8: a model quantized by `segzoo quantize`, whose
#: layers that stay in floating point run in fp32)
PRECISIONS = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}


def bf16_supported() -> bool:
    """Whether OpenVINO's CPU plugin reports native bf16 on this machine."""
    try:
        import openvino as ov

        return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except Exception:  # noqa: BLE001 - no OpenVINO, no bf16
        return False


class OpenVinoEngine(OnnxRuntimeEngine):
    """OpenVINO (CPU plugin) on converted models; same arguments as :class:`OnnxRuntimeEngine`, plus ``precision``."""

    name = "openvino"
    #: why the engine runs in its precision (asked for, or the default rule's verdict)
    precision_reason: str = ""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._lock = threading.RLock()  # run() holds it around the session lookup and the infer request

    def _check_runtime(self, device: Optional[str]) -> None:
        bound_primitive_cache()  # before OpenVINO's CPU plugin makes its first kernel
        check_precision(self.precision, cpu_capabilities())  # bf16 on a CPU without it: an error, not silent fp32
        kind = parse_device(device)[0] if device is not None else "cpu"
        if kind != "cpu":
            raise ConfigError(f"device {device!r}: segzoo runs the openvino engine on the CPU only")
        try:
            import openvino  # noqa: F401
        except ImportError as exc:
            raise DependencyError(f"openvino is not importable ({exc}); install it with `pip install openvino`") from exc
        self.device_kind = "cpu"

    def _load(self, path: Path):
        import openvino as ov

        core = ov.Core()
        properties = {
            "INFERENCE_NUM_THREADS": self.cpu_threads,
            "INFERENCE_PRECISION_HINT": PRECISIONS[self.precision],
            "PERFORMANCE_HINT": "LATENCY",
        }
        try:
            model = core.read_model(str(path))
        except Exception as exc:
            text = str(exc).strip().splitlines()
            raise WeightsError(f"OpenVINO cannot load {path}: {text[0] if text else type(exc).__name__}") from exc
        return CompiledShapes(core, model, properties, path, dynamic=self.precision == "fp32")

    def run(self, batch: np.ndarray) -> np.ndarray:
        with self._lock:  # one infer request per compiled model: one batch at a time
            return super().run(batch)

    @property
    def requests(self) -> int:
        """Images :meth:`run_many` runs at once (OpenVINO's optimal number of THROUGHPUT requests on this CPU)."""
        if self.per_size:
            return 1
        session = self._session(None)
        return session.requests if isinstance(session, CompiledShapes) else 1

    def run_many(self, images: list) -> list:
        """Outputs of independent ``3×H×W`` images, in order: :attr:`requests` of them in parallel (THROUGHPUT).

        The same bytes as :meth:`run` of each image alone (LATENCY, every core on one image).
        """
        if len(images) < 2 or self.per_size:
            return super().run_many(images)
        with self._lock:
            session = self._session(None)
            if not isinstance(session, CompiledShapes):  # pragma: no cover - a fallback engine in its place
                return super().run_many(images)
            outputs = session.run_many([np.ascontiguousarray(image, dtype=np.float32) for image in images])
        self._seen(outputs[0])  # 1×C×H×W scores or 1×H×W labels
        return [out[0] for out in outputs]


def make_openvino_engine(model_name: str, config: Any, source: Any, device: Optional[str], options: dict) -> Engine:
    """``create_model(..., engine="openvino", engine_options={"precision": "bf16"})``.

    ``precision="int8"`` runs the model ``segzoo quantize`` made of these weights
    (:mod:`segzoo.inference.int8`). Without ``precision``, bf16 where it is safe,
    else fp32 (:func:`segzoo.inference.precision.default_precision`); the
    engine's ``precision_reason`` says why.
    """
    if options.get("precision") == "int8":
        xml, meta = find_int8(model_name, source, options.get("layer"))
        engine = OpenVinoEngine(lambda hw: xml, outputs=meta.get("outputs", "scores"), device=device,
                                cpu_threads=options.get("cpu_threads"), precision="int8")
        engine.precision_reason = f"asked for; {xml.parent} (overflow fix {meta.get('overflow_fix')})"
        return engine
    engine = make_onnx_engine(model_name, config, source, device, options, engine_class=OpenVinoEngine)
    if options.get("precision") is not None or not isinstance(engine, OpenVinoEngine) or engine.per_size:
        if isinstance(engine, OpenVinoEngine):
            engine.precision_reason = "asked for" if options.get("precision") else "per-size conversions run fp32"
        return engine
    deploy = source.deploy if source.kind == "inference" else None
    registry = get_registry()

    def preprocess(image):
        if deploy is not None:
            return normalize_image(image, deploy.mean, deploy.std)
        return np.ascontiguousarray(registry.preprocess(model_name, config, image), dtype=np.float32)

    picked, why = default_precision(model_name, engine.model_for(None), preprocess,
                                    registry.card(model_name).size_divisor, engine.cpu_threads)
    log.info("%s on openvino runs %s by default: %s", model_name, picked, why)
    if picked != engine.precision:
        engine = make_onnx_engine(model_name, config, source, device, {**options, "precision": picked},
                                  engine_class=OpenVinoEngine)
    engine.precision_reason = why
    return engine
