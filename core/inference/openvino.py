"""The ``"openvino"`` engine: OpenVINO runs the same cached ONNX conversion as ONNX Runtime, in fp32 or bf16.

Everything before the session (exporting weights to the cache, converting to
ONNX once, checking the conversion against Paddle, falling back for models
that do not convert) is :func:`segzoo.inference.onnx.make_onnx_engine`'s; this
module only loads the ``.onnx`` file into OpenVINO's CPU plugin.

``precision="bf16"`` sets OpenVINO's ``INFERENCE_PRECISION_HINT`` to bf16:
on CPUs with AVX512-BF16 or AMX it runs convolutions and matrix products in
bfloat16 (PP-LiteSeg-T at 512×512 on 2 cores: 37 ms against 71 ms in fp32);
on other CPUs OpenVINO keeps fp32. bf16 rounds the scores, so masks can
differ from fp32 where two classes are close: ``segzoo benchmark`` prints the
pixel agreement, and the default stays ``"fp32"``.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..device import parse_device
from ..errors import ConfigError, DependencyError, WeightsError
from .engine_table import Engine
from .onnx import OnnxRuntimeEngine, make_onnx_engine

#: precision option -> OpenVINO's INFERENCE_PRECISION_HINT
PRECISIONS = {"fp32": "f32", "bf16": "bf16"}


def bf16_supported() -> bool:
    """Whether OpenVINO's CPU plugin reports native bf16 on this machine."""
    try:
        import openvino as ov

        return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except Exception:  # noqa: BLE001 - no OpenVINO, no bf16
        return False


class _Input:
    name = "x"


class _Session:
    """An OpenVINO compiled model behind the ``run(None, feed)`` / ``get_inputs()`` calls of an ORT session."""

    def __init__(self, compiled):
        self.compiled = compiled
        self.request = compiled.create_infer_request()

    def get_inputs(self):
        return [_Input()]

    def run(self, _outputs, feed: dict):
        (batch,) = feed.values()
        self.request.infer({0: batch})
        return [self.request.get_output_tensor(0).data.copy()]


class OpenVinoEngine(OnnxRuntimeEngine):
    """OpenVINO (CPU plugin) on converted models; same arguments as :class:`OnnxRuntimeEngine`, plus ``precision``."""

    name = "openvino"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._lock = threading.RLock()  # run() holds it around the session lookup and the infer request

    def _check_runtime(self, device: Optional[str]) -> None:
        if self.precision not in PRECISIONS:
            raise ConfigError(f"engine_options precision {self.precision!r}: the openvino engine takes 'fp32' or 'bf16'")
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
            return _Session(core.compile_model(core.read_model(str(path)), "CPU", properties))
        except Exception as exc:
            text = str(exc).strip().splitlines()
            raise WeightsError(f"OpenVINO cannot load {path}: {text[0] if text else type(exc).__name__}") from exc

    def run(self, batch: np.ndarray) -> np.ndarray:
        with self._lock:  # one infer request per session: one batch at a time
            return super().run(batch)


def make_openvino_engine(model_name: str, config: Any, source: Any, device: Optional[str], options: dict) -> Engine:
    """``create_model(..., engine="openvino", engine_options={"precision": "bf16"})``."""
    return make_onnx_engine(model_name, config, source, device, options, engine_class=OpenVinoEngine)
