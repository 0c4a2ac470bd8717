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
  or ``inference.pdmodel`` + ``inference.pdiparams``).

Other engines (ONNX Runtime, ``"auto"``) register a factory with
:func:`register_engine`::

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


def default_cpu_threads() -> int:
    """Threads for Paddle Inference on the CPU: the cores, at most 8 (PaddleX's default)."""
    return max(1, min(os.cpu_count() or 1, 8))


class PaddleInferenceEngine(Engine):
    """Paddle Inference on an exported directory.

    On the CPU, oneDNN is enabled together with
    ``delete_pass("onednn_placement_pass")``: without that pass removed,
    Paddle 3.3's oneDNN executor crashes on bilinear ``interpolate``
    (``ConvertPirAttribute2RuntimeAttribute not support ...``). Paddle
    Inference turns oneDNN on by itself on the CPU, so ``onednn=False``
    disables it explicitly. ``onednn=None`` (the default) tries oneDNN and
    falls back to the plain CPU kernels, with a warning, for graphs oneDNN
    cannot run (MaskFormer's 6-D window transposes fail to load with it);
    ``onednn=True`` insists. ``cpu_threads`` defaults to
    :func:`default_cpu_threads`.
    """

    name = "paddle"

    def __init__(
        self,
        deploy,
        device: Optional[str] = None,
        onednn: Optional[bool] = None,
        cpu_threads: Optional[int] = None,
        gpu_memory_mb: int = 500,
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

        config = pi.Config(str(self.deploy.model_file), str(self.deploy.params_file))
        if self.kind == "gpu":
            config.enable_use_gpu(self.gpu_memory_mb, self.ids[0] if self.ids else 0)
        else:
            config.disable_gpu()
            config.set_cpu_math_library_num_threads(self.cpu_threads)
            if onednn:
                config.enable_onednn()
                config.delete_pass("onednn_placement_pass")
            else:
                config.disable_onednn()
        config.disable_glog_info()
        return pi.create_predictor(config)

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
    return PaddleInferenceEngine(source.deploy, device=device, **options)


register_engine(
    "dygraph",
    _make_dygraph,
    sources=("weights", "layer", "random"),
    description="the plugin's paddle.nn.Layer (dygraph weights or random init)",
)
register_engine(
    "paddle",
    _make_paddle,
    sources=("inference",),
    options=("onednn", "cpu_threads", "gpu_memory_mb"),
    description="Paddle Inference on an exported directory",
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


def default_engine(source_kind: str) -> str:
    """``"paddle"`` for exported directories, ``"dygraph"`` otherwise."""
    return "paddle" if source_kind == "inference" else "dygraph"


def check_options(spec: EngineSpec, options: dict) -> dict:
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        valid = ", ".join(spec.options) or "none"
        raise ConfigError(f"engine_options {unknown} are not options of engine {spec.name!r} (valid: {valid})")
    return dict(options)
