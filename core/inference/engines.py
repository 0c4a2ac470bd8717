"""Inference engines: what runs a preprocessed batch.

An engine takes a batch ``N×3×H×W`` ``float32`` (normalised, padded to the
model's ``size_divisor``) and returns either class scores ``N×C×H×W`` or
labels ``N×H×W`` (an exported model with ``output_op: argmax``). Everything
around it (reading, resizing, normalising, padding, cropping back, sliding
windows, results) is the predictor's, so a new engine is one small class.

Built-in engines:

* ``"dygraph"``: the plugin's ``paddle.nn.Layer`` in eval mode, then the
  model's ``postprocess`` hook (so hook wrappers such as test-time flipping
  apply).
* ``"paddle"``: Paddle Inference on an exported directory (``inference.json``
  or ``inference.pdmodel`` + ``inference.pdiparams``); from weights or a
  model name the network is exported to segzoo's cache first
  (:func:`segzoo.inference.onnx.cached_export`).
* ``"onnxruntime"``: ONNX Runtime on a paddle2onnx conversion (see
  :mod:`segzoo.inference.onnx`).
* ``"auto"``: the fastest of these measured for this model on this machine
  (see :mod:`segzoo.inference.auto`).

More engines register a factory with :func:`register_engine`::

    def make_onnx(model_name, config, source, device, options):
        return OnnxEngine(source.deploy, **options)

    register_engine("onnxruntime", make_onnx, sources=("inference",), options=("providers",))

A factory receives the model name, its validated config, the
:class:`~segzoo.inference.modeldir.ModelSource` (``kind`` is
``"inference"``, ``"weights"``, ``"layer"`` or ``"random"``), the device
string (or ``None``) and the ``engine_options`` dict, and returns an
:class:`Engine`.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np

from ..errors import ConfigError, DependencyError, WeightsError

log = logging.getLogger("segzoo")


class Engine:
    """Runs one preprocessed batch. Subclasses set the attributes and implement :meth:`run`.

    Attributes:
        name: the engine's registered name.
        outputs: ``"scores"`` (``N×C×H×W``) or ``"labels"`` (``N×H×W`` ints).
        input_hw: ``(H, W)`` when the engine takes only that input size
            (a model exported with a fixed shape), else ``None``.
        max_batch: the largest batch it takes, ``None`` for any.
    """

    name: str = "engine"
    outputs: str = "scores"
    input_hw: Optional[tuple[int, int]] = None
    max_batch: Optional[int] = None

    def run(self, batch: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        """``batch``: ``N×3×H×W`` ``float32``; returns scores ``N×C×H×W`` or labels ``N×H×W``."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} outputs={self.outputs}>"


class DygraphEngine(Engine):
    """A dygraph ``paddle.nn.Layer`` and the model's ``postprocess`` hook.

    The layer is switched to eval mode for each call and back to train mode
    afterwards if it was training (the trainer's model can be evaluated in
    place), and runs without gradients on paddle's current device.
    """

    name = "dygraph"
    outputs = "scores"

    def __init__(self, model_name: str, config: Any, layer: Any, registry: Any = None):
        from ..registry import get_registry

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


def default_cpu_threads() -> int:
    """Threads for Paddle Inference on the CPU: the cores, at most 8 (PaddleX's default)."""
    return max(1, min(os.cpu_count() or 1, 8))


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
        from ..device import parse_device

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
        self.outputs = "labels" if deploy.output_op == "argmax" else "scores"
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
        from ..paths import cache_dir
        from .onnx import _lock, file_digest

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
        if out.ndim == 4:
            self.outputs = "scores"
        elif out.ndim == 3:
            self.outputs = "labels"
        return out

    def _run(self, batch: np.ndarray) -> np.ndarray:
        handle = self.predictor.get_input_handle(self._input)
        handle.reshape(list(batch.shape))
        handle.copy_from_cpu(batch)
        self.predictor.run()
        return self.predictor.get_output_handle(self._output).copy_to_cpu()


# -- the engine table ------------------------------------------------------------------------------
EngineFactory = Callable[[str, Any, Any, Optional[str], dict], Engine]


@dataclass(frozen=True)
class EngineSpec:
    """A registered engine: its factory, the model sources it runs and the options it takes."""

    name: str
    factory: EngineFactory
    sources: tuple[str, ...]
    options: tuple[str, ...] = ()
    description: str = ""


ENGINES: dict[str, EngineSpec] = {}


def register_engine(
    name: str,
    factory: EngineFactory,
    sources: tuple[str, ...] = ("inference",),
    options: tuple[str, ...] = (),
    description: str = "",
) -> None:
    """Add (or replace) an engine under ``name`` (see the module docstring)."""
    ENGINES[name] = EngineSpec(name, factory, tuple(sources), tuple(options), description)


def _make_dygraph(model_name, config, source, device, options) -> Engine:
    # the predictor builds the layer (it knows about weights); the factory only wraps it
    return DygraphEngine(model_name, config, options["layer"])


def _make_paddle(model_name, config, source, device, options) -> Engine:
    options = dict(options)
    layer = options.pop("layer", None)
    output_op = options.pop("output_op", "argmax")
    deploy = source.deploy
    if deploy is None:  # weights or a model name: export the network to segzoo's cache first
        from .onnx import cached_export

        if output_op not in ("argmax", "none"):
            raise ConfigError(f"engine_options output_op {output_op!r}: use 'argmax' (labels) or 'none' (scores)")
        deploy = cached_export(model_name, config, layer, output_op)
    if "trt_opt_hw" not in options and options.get("tensorrt"):
        from ..registry import get_registry

        w, h = get_registry().card(model_name).input_size
        options["trt_opt_hw"] = (h, w)
    return PaddleInferenceEngine(deploy, device=device, **options)


def _make_onnx(model_name, config, source, device, options) -> Engine:
    from .onnx import make_onnx_engine

    return make_onnx_engine(model_name, config, source, device, options)


def _make_openvino(model_name, config, source, device, options) -> Engine:
    from .openvino import make_openvino_engine

    return make_openvino_engine(model_name, config, source, device, options)


def _make_auto(model_name, config, source, device, options) -> Engine:
    from .auto import make_auto_engine

    return make_auto_engine(model_name, config, source, device, options)


register_engine(
    "dygraph",
    _make_dygraph,
    sources=("weights", "layer", "random"),
    description="the plugin's paddle.nn.Layer (dygraph weights or random init)",
)
register_engine(
    "paddle",
    _make_paddle,
    sources=("inference", "weights", "random"),
    options=("onednn", "cpu_threads", "gpu_memory_mb", "tensorrt", "precision", "trt_opt_hw", "trt_max_hw", "output_op"),
    description="Paddle Inference on an exported directory (weights are exported to the cache first)",
)
register_engine(
    "onnxruntime",
    _make_onnx,
    sources=("inference", "weights", "random"),
    options=("cpu_threads", "output_op", "precision"),
    description="ONNX Runtime on a paddle2onnx conversion (cached)",
)
register_engine(
    "openvino",
    _make_openvino,
    sources=("inference", "weights", "random"),
    options=("cpu_threads", "output_op", "precision"),
    description="OpenVINO on the same ONNX conversion; precision='bf16' on CPUs with bf16 support",
)
register_engine(
    "auto",
    _make_auto,
    sources=("inference", "weights", "random"),
    options=("cpu_threads", "candidates", "reprobe"),
    description="the fastest engine measured for this model on this machine (cached probe)",
)


def engine_spec(name: str, source_kind: str) -> EngineSpec:
    """The engine ``name`` for a model source of ``source_kind``; errors list what fits."""
    if name not in ENGINES:
        raise ConfigError(f"engine {name!r} is unknown; choose one of {', '.join(sorted(ENGINES))}")
    spec = ENGINES[name]
    if source_kind not in spec.sources:
        fitting = sorted(n for n, s in ENGINES.items() if source_kind in s.sources)
        what = {
            "inference": "an exported inference directory",
            "weights": "dygraph weights (.pdparams)",
            "layer": "a model in memory",
            "random": "a randomly initialised model",
        }.get(source_kind, source_kind)
        extra = ""
        if source_kind in ("weights", "random", "layer") and "inference" in spec.sources:
            extra = "; export the model first (`segzoo export` or predictor.export(dir)) and pass that directory"
        raise ConfigError(
            f"engine {name!r} cannot run {what}; for it use {', '.join(fitting) or 'no engine'}{extra}"
        )
    return spec


def fallback_engine(source_kind: str) -> str:
    """The engine that runs every model of a source: ``"paddle"`` for exported directories, else ``"dygraph"``."""
    return "paddle" if source_kind == "inference" else "dygraph"


def default_engine(source_kind: str, model_name: Optional[str] = None, device: Optional[str] = None) -> str:
    """The engine ``create_model`` uses when none is asked for: the fastest whose masks agree with dygraph.

    A cheap rule, no probe (measured on 2 CPU cores, 512×512, see benchmarks/):

    * on the CPU, ``"onnxruntime"`` when the model's card says it exports with
      a dynamic H×W and converts to ONNX (2–3× faster than Paddle Inference
      with oneDNN, 5–8× faster than dygraph; one conversion per model, cached;
      a conversion that does not match Paddle falls back to ``"paddle"``);
    * on a GPU (a paddlepaddle-gpu build with a visible GPU, or ``device="gpu..."``),
      ``"paddle"``: Paddle Inference on CUDA;
    * otherwise (a fixed-shape export such as MaskFormer's, whose masks would
      change with the input size, or ONNX Runtime missing)
      :func:`fallback_engine`: ``"paddle"`` for exported directories,
      ``"dygraph"`` for weights.

    Without ``model_name`` (or for a model held in memory) it is :func:`fallback_engine`.
    ``$SEGZOO_ENGINE`` overrides the rule (e.g. ``dygraph`` to debug).
    """
    forced = os.environ.get("SEGZOO_ENGINE")
    if forced:
        return forced
    if model_name is None or source_kind == "layer":
        return fallback_engine(source_kind)
    from ..registry import get_registry

    export = get_registry().card(model_name).export
    if not (export.static and export.dynamic_shape):
        return fallback_engine(source_kind)
    from ..device import parse_device

    if parse_device(device)[0] == "gpu":  # None: a GPU when this paddle build sees one
        return "paddle"
    if export.onnx and not export.onnx_static_hw and _importable("onnxruntime") and _importable("paddle2onnx"):
        return "onnxruntime"
    return "paddle"


def _importable(module: str) -> bool:
    from importlib.util import find_spec

    return find_spec(module) is not None


def check_options(spec: EngineSpec, options: dict) -> dict:
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        valid = ", ".join(spec.options) or "none"
        raise ConfigError(f"engine_options {unknown} are not options of engine {spec.name!r} (valid: {valid})")
    return dict(options)
