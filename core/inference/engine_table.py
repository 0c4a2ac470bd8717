"""The engine table: the ``Engine`` interface, the registry of engines and the fallback rule.

An engine takes a batch ``N×3×H×W`` ``float32`` (normalised, padded to the
model's ``size_divisor``) and returns either class scores ``N×C×H×W`` or
labels ``N×H×W`` (an exported model with ``output_op: argmax``). Everything
around it (reading, resizing, normalising, padding, cropping back, sliding
windows, results) is the predictor's, so a new engine is one small class.

More engines register a factory with :func:`register_engine`::

    def make_onnx(model_name, config, source, device, options):
        return OnnxEngine(source.deploy, **options)

    register_engine("onnxruntime", make_onnx, sources=("inference",), options=("providers",))

A factory receives the model name, its validated config, the
:class:`~segzoo.inference.modeldir.ModelSource` (``kind`` is
``"inference"``, ``"weights"``, ``"layer"`` or ``"random"``), the device
string (or ``None``) and the ``engine_options`` dict, and returns an
:class:`Engine`. A factory that cannot run the model raises
:class:`EngineFallback`; the table then warns once
(:class:`EngineFallbackWarning`) and builds the fallback engine instead
(:func:`fall_back`), so no engine module needs another one's factory.

This module imports no engine: the built-in ones are registered by
:mod:`segzoo.inference.builtin`.
"""

from __future__ import annotations

import functools
import os
import warnings
from dataclasses import dataclass
from importlib.util import find_spec
from typing import Any, Callable, Optional

import numpy as np

from ..device import parse_device
from ..errors import ConfigError
from ..registry import get_registry

#: what an exported graph ends with, and what the engine then outputs
OUTPUT_OPS = {"argmax": "labels", "none": "scores"}


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

    #: independent images worth handing to :meth:`run_many` at once (1: the engine runs one at a time)
    requests: int = 1

    def run_many(self, images: list) -> list:
        """Independent ``3×H×W`` images, of any sizes; their outputs (``C×H×W`` or ``H×W``), in order.

        The same bytes as :meth:`run` of each image alone. This default runs
        them one by one; an engine that can run several at once (OpenVINO's
        parallel infer requests) overrides it and sets :attr:`requests`.
        """
        return [self.run(np.ascontiguousarray(image, dtype=np.float32)[None])[0] for image in images]

    def _seen(self, out: np.ndarray) -> np.ndarray:
        """Record what an output holds (4-D scores, 3-D labels) and return it."""
        if out.ndim == 4:
            self.outputs = "scores"
        elif out.ndim == 3:
            self.outputs = "labels"
        return out

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} outputs={self.outputs}>"


class EngineFallbackWarning(UserWarning):
    """The engine asked for cannot run this model; another one runs it (the message says which and why)."""


class EngineFallback(Exception):
    """Raised by a factory that cannot run a model: ``why``, and the engine to run it instead (``None``: the source's)."""

    def __init__(self, why: str, engine: Optional[str] = None):
        super().__init__(why)
        self.why = why
        self.engine = engine


def default_cpu_threads() -> int:
    """Threads for an engine on the CPU: the cores, at most 8 (PaddleX's default)."""
    return max(1, min(os.cpu_count() or 1, 8))


def engine_outputs(output_op: Optional[str], check: bool = False) -> str:
    """What an export ending with ``output_op`` outputs: ``"labels"`` for ``argmax``, else ``"scores"``.

    With ``check``, an ``output_op`` an engine cannot export to (not ``argmax`` or ``none``) is a :class:`ConfigError`.
    """
    if check and output_op not in OUTPUT_OPS:
        raise ConfigError(f"engine_options output_op {output_op!r}: use 'argmax' (labels) or 'none' (scores)")
    return "labels" if output_op == "argmax" else "scores"


# -- the table -------------------------------------------------------------------------------------
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


def with_fallback(factory: EngineFactory) -> EngineFactory:
    """``factory`` that turns its :class:`EngineFallback` into the fallback engine (see :func:`fall_back`)."""
    if getattr(factory, "_segzoo_fallback", False):
        return factory

    @functools.wraps(factory)
    def build(model_name, config, source, device, options, *args, **kwargs):
        try:
            return factory(model_name, config, source, device, options, *args, **kwargs)
        except EngineFallback as fb:
            return fall_back(model_name, config, source, device, options, fb.why, engine=fb.engine)

    build._segzoo_fallback = True  # type: ignore[attr-defined]
    return build


def register_engine(
    name: str,
    factory: EngineFactory,
    sources: tuple[str, ...] = ("inference",),
    options: tuple[str, ...] = (),
    description: str = "",
) -> None:
    """Add (or replace) an engine under ``name`` (see the module docstring)."""
    ENGINES[name] = EngineSpec(name, with_fallback(factory), tuple(sources), tuple(options), description)


def fall_back(model_name: str, config: Any, source: Any, device: Optional[str], options: dict, why: str,
              engine: Optional[str] = None, stacklevel: int = 4) -> Engine:
    """Warn once (:class:`EngineFallbackWarning`) and build ``engine`` (default: the source's fallback) instead."""
    name = engine or fallback_engine(source.kind)
    spec = ENGINES[name]
    warnings.warn(EngineFallbackWarning(f"{model_name}: {why}; running it on the {name} engine instead"), stacklevel=stacklevel)
    kept = {k: v for k, v in options.items() if k in spec.options or k == "layer"}
    return spec.factory(model_name, config, source, device, kept)


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


def check_options(spec: EngineSpec, options: dict) -> dict:
    """``options`` as a new dict, after checking that ``spec`` takes each of them."""
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        valid = ", ".join(spec.options) or "none"
        raise ConfigError(f"engine_options {unknown} are not options of engine {spec.name!r} (valid: {valid})")
    return dict(options)


# -- the default rule ------------------------------------------------------------------------------
#: the CPU default for a model that exports with a dynamic H×W and converts to ONNX: the first of these installed
CPU_DEFAULTS = ("openvino", "onnxruntime")
#: the default on a GPU
GPU_DEFAULT = "paddle"


def fallback_engine(source_kind: str) -> str:
    """The engine that runs every model of a source: ``"paddle"`` for exported directories, else ``"dygraph"``."""
    return "paddle" if source_kind == "inference" else "dygraph"


def default_engine(source_kind: str, model_name: Optional[str] = None, device: Optional[str] = None) -> str:
    """The engine ``create_model`` uses when none is asked for: the fastest whose masks agree with dygraph.

    A cheap rule, no probe (measured on 2 CPU cores, 512×512, see benchmarks/):

    * on the CPU, when the model's card says it exports with a dynamic H×W and
      converts to ONNX (one conversion per model, cached; a conversion that
      does not match Paddle falls back to ``"paddle"``): ``"openvino"``, which
      compiles the ONNX model for each input shape (as fast as ONNX Runtime on
      PP-LiteSeg-T, 1.1–1.9× faster on SegFormer, SeaFormer, OCRNet and
      DeepLab at 512×512 on 2 cores), or ``"onnxruntime"`` when OpenVINO is
      not installed; both are 2–3× faster than Paddle Inference with oneDNN;
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
    export = get_registry().card(model_name).export
    if not (export.static and export.dynamic_shape):
        return fallback_engine(source_kind)
    if parse_device(device)[0] == "gpu":  # None: a GPU when this paddle build sees one
        return GPU_DEFAULT
    if export.onnx and not export.onnx_static_hw:
        return cpu_default_engine() or "paddle"
    return "paddle"


def cpu_default_engine() -> Optional[str]:
    """The first of :data:`CPU_DEFAULTS` installed here (the conversion needs paddle2onnx and onnxruntime), or ``None``."""
    if not (_importable("paddle2onnx") and _importable("onnxruntime")):
        return None
    return next((name for name in CPU_DEFAULTS if _importable(name)), None)


def engine_help() -> str:
    """The ``--engine`` help of every command: the registered engines and the default rule, naming this machine's pick."""
    names = list(ENGINES)
    listed = ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else "".join(names)
    here = cpu_default_engine() or "paddle"
    text = (
        f"{listed}; default: the fastest whose masks agree with dygraph: {here} on this CPU (the first installed "
        f"of {', '.join(CPU_DEFAULTS)}) for every model that exports with a dynamic H×W, converted once and cached; "
        f"{GPU_DEFAULT} on a GPU; else {fallback_engine('inference')} for an exported directory and "
        f"{fallback_engine('weights')} for weights"
    )
    forced = os.environ.get("SEGZOO_ENGINE")
    return f"{text} (now {forced}: $SEGZOO_ENGINE is set)" if forced else text


def _importable(module: str) -> bool:
    return find_spec(module) is not None
