"""The ``"dygraph"`` and ``"paddle"`` (Paddle Inference) engines, and their factories.

* ``"dygraph"``: the plugin's ``paddle.nn.Layer`` in eval mode, then the
  model's ``postprocess`` hook (so hook wrappers such as test-time flipping
  apply).
* ``"paddle"``: Paddle Inference on an exported directory (``inference.json``
  or ``inference.pdmodel`` + ``inference.pdiparams``); from weights or a
  model name the network is exported to segzoo's cache first
  (:func:`segzoo.inference.export_cache.cached_export`).

The engine table (``Engine``, ``register_engine``, ``default_engine`` ...)
is :mod:`segzoo.inference.engine_table`; its names are re-exported here, their
old home. The ONNX Runtime, OpenVINO and ``auto`` engines are
:mod:`segzoo.inference.onnx`, :mod:`segzoo.inference.openvino` and
:mod:`segzoo.inference.auto`; :mod:`segzoo.inference.builtin` registers them all.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Optional

import numpy as np

from ..device import parse_device
from ..errors import ConfigError, DependencyError, WeightsError
from ..paths import cache_dir
from ..registry import get_registry
from .engine_table import (  # noqa: F401  (moved to the engine table; this old home keeps them)
    ENGINES,
    Engine,
    EngineFactory,
    EngineFallback,
    EngineFallbackWarning,
    EngineSpec,
    check_options,
    default_cpu_threads,
    default_engine,
    engine_outputs,
    engine_spec,
    fallback_engine,
    register_engine,
)
from .export_cache import _lock, cached_export, file_digest

log = logging.getLogger("segzoo")


class DygraphEngine(Engine):
    """A dygraph ``paddle.nn.Layer`` and the model's ``postprocess`` hook.

    The layer is switched to eval mode for each call and back to train mode
    afterwards if it was training (the trainer's model can be evaluated in
    place), and runs without gradients on paddle's current device.
    """

    name = "dygraph"
    outputs = "scores"

    def __init__(self, model_name: str, config: Any, layer: Any, registry: Any = None):
        self.model_name = model_name
        self.config = config
        self.layer = layer
        self.registry = registry or get_registry()
        self._lock = threading.Lock()

    def run(self, batch: np.ndarray) -> np.ndarray:
        import paddle

        with self._lock:  # train/eval switching and the forward pass are one step
            return self._run(paddle, batch)

    def _run(self, paddle, batch: np.ndarray) -> np.ndarray:
        was_training = bool(getattr(self.layer, "training", False))
        self.layer.eval()
        try:
            with paddle.no_grad():
                x = paddle.to_tensor(np.ascontiguousarray(batch, dtype=np.float32))
                scores = self.registry.postprocess(self.model_name, self.config, self.layer(x))
                if scores.dtype != paddle.float32:
                    scores = scores.astype("float32")
                return scores.numpy()
        finally:
            if was_training:
                self.layer.train()


#: passes removed when oneDNN is on (see :class:`PaddleInferenceEngine`)
ONEDNN_DELETED_PASSES = ("onednn_placement_pass", "operator_reshape_onednn_fuse_pass")
#: input shapes whose oneDNN kernels Paddle Inference keeps cached
ONEDNN_CACHE_SHAPES = 16


class PaddleInferenceEngine(Engine):
    """Paddle Inference on an exported directory.

    On the CPU, oneDNN is enabled together with
    ``delete_pass("onednn_placement_pass")``: without that pass removed,
    Paddle 3.3's oneDNN executor crashes on bilinear ``interpolate``
    (``ConvertPirAttribute2RuntimeAttribute not support ...``). The
    ``operator_reshape_onednn_fuse_pass`` is deleted too: it fuses
    MaskFormer's 6-D window transposes into reshapes oneDNN then rejects
    ("input tensor's dimension is 5, axis's size is 6"); without it MaskFormer
    runs on oneDNN (1.95 s → 1.20 s for MaskFormer_tiny at 512×512, as
    measured by its plugin's author) and the other models give the same
    outputs at the same speed (checked on PP-LiteSeg, SegFormer, SeaFormer,
    OCRNet; every model's masks are tested on oneDNN). Paddle Inference turns oneDNN on by itself on the CPU, so
    ``onednn=False`` disables it explicitly. ``onednn=None`` (the default)
    tries oneDNN and falls back to the plain CPU kernels, with a warning, for
    graphs oneDNN still cannot run; ``onednn=True`` insists. oneDNN's cache of
    kernels per input shape is capped at :data:`ONEDNN_CACHE_SHAPES` shapes
    (PaddleX caps it at 10), so a directory of many image sizes does not grow
    memory without bound. ``cpu_threads`` defaults to
    :func:`default_cpu_threads`.

    On a GPU (``device="gpu"``, a paddlepaddle-gpu build) the predictor runs
    on CUDA; ``tensorrt=True`` converts the program with
    ``paddle.tensorrt.export.convert`` (dynamic shapes from 1×3×32×32 up to
    ``trt_max_hw``, optimised for the card's ``input_size`` given as
    ``trt_opt_hw``), caching the converted program beside the export in
    ``_trt/``, and ``precision="fp16"`` runs it in half precision. Written
    from Paddle Inference's documentation and PaddleX's runner; untested
    here (no GPU on the machines segzoo is tested on).
    """

    name = "paddle"

    def __init__(
        self,
        deploy,
        device: Optional[str] = None,
        onednn: Optional[bool] = None,
        cpu_threads: Optional[int] = None,
        gpu_memory_mb: int = 500,
        tensorrt: bool = False,
        precision: str = "fp32",
        trt_opt_hw: Optional[tuple[int, int]] = None,
        trt_max_hw: tuple[int, int] = (2048, 2048),
    ):
        self.deploy = deploy
        self.device = device
        self.kind, self.ids = parse_device(device)
        if self.kind not in ("cpu", "gpu"):
            raise ConfigError(f"device {device!r}: the paddle engine runs on cpu or gpu here")
        if self.kind == "gpu":
            import paddle

            if not paddle.device.is_compiled_with_cuda():
                raise DependencyError(
                    f"device {device!r} asks for a GPU but this paddlepaddle is the CPU build; install "
                    "paddlepaddle-gpu (see the README) or use device='cpu'"
                )
        self.cpu_threads = int(cpu_threads or default_cpu_threads())
        self.gpu_memory_mb = int(gpu_memory_mb)
        if precision not in ("fp32", "fp16"):
            raise ConfigError(f"engine_options precision {precision!r}: use 'fp32' or 'fp16'")
        if (tensorrt or precision == "fp16") and self.kind != "gpu":
            raise ConfigError("engine_options tensorrt / precision='fp16' need device='gpu' (a paddlepaddle-gpu build)")
        self.tensorrt = bool(tensorrt)
        self.precision = precision
        self.trt_opt_hw = tuple(trt_opt_hw) if trt_opt_hw else None
        self.trt_max_hw = tuple(trt_max_hw)
        self._auto_onednn = onednn is None and self.kind == "cpu"
        self.onednn = self.kind == "cpu" and onednn is not False
        try:
            self.predictor = self._create(self.onednn)
        except Exception as exc:
            if not self._auto_onednn:
                raise self._load_error(exc) from exc
            self._fall_back(exc)
        self._input = self.predictor.get_input_names()[0]
        self._output = self.predictor.get_output_names()[0]
        self.outputs = engine_outputs(deploy.output_op)
        self.input_hw = deploy.fixed_hw
        self.max_batch = deploy.fixed_batch
        self._lock = threading.Lock()  # a Paddle predictor is not thread-safe

    def _create(self, onednn: bool):
        from paddle import inference as pi

        model_file, params_file = self.deploy.model_file, self.deploy.params_file
        if self.kind == "gpu" and self.tensorrt:
            model_file, params_file = self._tensorrt_program()
        config = pi.Config(str(model_file), str(params_file))
        if self.kind == "gpu":
            precision = pi.PrecisionType.Half if self.precision == "fp16" else pi.PrecisionType.Float32
            config.enable_use_gpu(self.gpu_memory_mb, self.ids[0] if self.ids else 0, precision)
            if hasattr(config, "exp_disable_mixed_precision_ops"):
                config.exp_disable_mixed_precision_ops({"feed", "fetch"})
            config.disable_onednn()
        else:
            config.disable_gpu()
            config.set_cpu_math_library_num_threads(self.cpu_threads)
            if onednn:
                config.enable_onednn()
                config.set_onednn_cache_capacity(ONEDNN_CACHE_SHAPES)
                for name in ONEDNN_DELETED_PASSES:
                    config.delete_pass(name)
            else:
                config.disable_onednn()
        config.disable_glog_info()
        return pi.create_predictor(config)

    def _tensorrt_program(self) -> tuple:
        """The program converted for TensorRT (``paddle.tensorrt.export.convert``), cached in ``_trt/``."""
        try:
            from paddle.tensorrt.export import Input, PrecisionMode, TensorRTConfig, convert
        except ImportError as exc:
            raise DependencyError(
                f"tensorrt=True needs a paddlepaddle-gpu build with TensorRT support ({exc}); "
                "install it and TensorRT, or leave tensorrt off"
            ) from exc
        key = file_digest(self.deploy.model_file, self.deploy.params_file)[:24]
        out = cache_dir() / "tensorrt" / f"{key}-{self.precision}-{self.trt_opt_hw}-{self.trt_max_hw}".replace(" ", "")
        model_file, params_file = out / "inference.json", out / "inference.pdiparams"
        with _lock(out):
            if not model_file.is_file():
                opt_h, opt_w = self.trt_opt_hw or (512, 512)
                max_h, max_w = self.trt_max_hw
                fixed = self.deploy.fixed_hw
                shapes = ((1, 3, *fixed),) * 3 if fixed else ((1, 3, 32, 32), (1, 3, opt_h, opt_w), (1, 3, max_h, max_w))
                trt_input = Input(min_input_shape=shapes[0], optim_input_shape=shapes[1], max_input_shape=shapes[2])
                trt_config = TensorRTConfig(inputs=[trt_input])
                trt_config.precision_mode = PrecisionMode.FP16 if self.precision == "fp16" else PrecisionMode.FP32
                trt_config.save_model_dir = str(out)
                convert(str(self.deploy.model_file.with_suffix("")), trt_config)
        return model_file, params_file

    def _load_error(self, exc: Exception) -> WeightsError:
        text = str(exc).strip()
        first = text.splitlines()[0] if text else ""
        mode = " with oneDNN (try onednn=False / --no-onednn)" if self.onednn else ""
        return WeightsError(
            f"Paddle Inference cannot load {self.deploy.model_file} + {self.deploy.params_file}{mode}: "
            f"{type(exc).__name__}: {first}"
        )

    def _fall_back(self, exc: Exception) -> None:
        text = str(exc).strip()
        log.warning(
            "Paddle Inference with oneDNN failed on %s (%s); using the plain CPU kernels",
            self.deploy.model_file,
            text.splitlines()[0] if text else type(exc).__name__,
        )
        self.onednn = False
        self._auto_onednn = False
        try:
            self.predictor = self._create(False)
        except Exception as exc2:
            raise self._load_error(exc2) from exc2

    def run(self, batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        with self._lock:
            try:
                out = self._run(batch)
            except Exception as exc:
                if not self._auto_onednn:
                    raise
                self._fall_back(exc)
                out = self._run(batch)
            else:
                self._auto_onednn = False  # oneDNN works for this graph
        return self._seen(out)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        handle = self.predictor.get_input_handle(self._input)
        handle.reshape(list(batch.shape))
        handle.copy_from_cpu(batch)
        self.predictor.run()
        return self.predictor.get_output_handle(self._output).copy_to_cpu()



# -- the factories ---------------------------------------------------------------------------------
def make_dygraph_engine(model_name, config, source, device, options) -> Engine:
    """``create_model(..., engine="dygraph")``: the built layer, as it is."""
    # the predictor builds the layer (it knows about weights); the factory only wraps it
    return DygraphEngine(model_name, config, options["layer"])


def make_paddle_engine(model_name, config, source, device, options) -> Engine:
    """``create_model(..., engine="paddle")``: an exported directory, or the network exported to the cache first."""
    options = dict(options)
    layer = options.pop("layer", None)
    output_op = options.pop("output_op", "argmax")
    deploy = source.deploy
    if deploy is None:  # weights or a model name: export the network to segzoo's cache first
        engine_outputs(output_op, check=True)
        deploy = cached_export(model_name, config, layer, output_op)
    if "trt_opt_hw" not in options and options.get("tensorrt"):
        w, h = get_registry().card(model_name).input_size
        options["trt_opt_hw"] = (h, w)
    return PaddleInferenceEngine(deploy, device=device, **options)
