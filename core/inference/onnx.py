"""The ``"onnxruntime"`` engine: ONNX Runtime on the cached paddle2onnx conversion of a model.

ONNX Runtime runs a model converted by ``paddle2onnx`` from Paddle's
exported PIR program, from every model source; the export and the conversion
come from the exports cache (:mod:`segzoo.inference.export_cache`: converted
once, checked against Paddle, kept). **One conversion per network**: weights
(a layer, a ``.pdparams`` file or its folder) and the exports segzoo writes
of them (``best_model/inference``) share one cache entry keyed by the
weights' content (:mod:`segzoo.inference.netcache`), and the built-in demo's
ships with the package. Its names (``cached_export``,
``cached_onnx``, ``prune_cache``, ``CACHE_MAX_MB`` ...) are re-exported here,
their old home. A conversion that fails or differs from Paddle runs the model
on Paddle Inference instead, with an :class:`EngineFallbackWarning` saying why.

**Exported directories whose program converts only with a fixed H×W**
(PaddleX's official PP-LiteSeg, whose context module pools adaptively): the
card's ``export.program_rewrite`` rewrites those ops of the program shape-free,
and the rewritten program is converted, checked against the original
(:func:`~segzoo.inference.rebuild.program_rewrite`); without one, or where
it does not work, the export's weights are loaded once into the plugin's own
network, which pools shape-free, and that is converted instead, checked
against the program (:func:`~segzoo.inference.rebuild.network_rebuild`).
The conversion is cached under the directory's own key, so later runs load it
directly. A
card with ``export.rebuild_exports`` (PP-LiteSeg; SegFormer, whose exported
decoder is folded) has exports made elsewhere rebuilt that way first, without
trying the program's own conversion; segzoo's own exports convert as they are.

**Models that convert only with a fixed H×W** (a card with
``export.onnx_static_hw``; no built-in model since PP-LiteSeg pools
shape-free): the engine converts one model per input size (each image's own), on demand,
and keeps the last :data:`MAX_SESSIONS` sessions in memory (every converted
size stays in the disk cache). A size whose conversion fails the check against
Paddle runs on Paddle Inference, with one log line per size. From an exported
directory with a dynamic H×W this needs the dygraph network, which the
directory does not hold: the engine then falls back to Paddle Inference with a
warning (export with ``--input-shape -1,3,H,W``, or give the ``.pdparams``).

**Models whose card says** ``export.onnx`` **is False** (MaskFormer) fall back
to the source's default engine (dygraph for weights, ``paddle`` for exported
directories) with one :class:`EngineFallbackWarning`, never an error. The
factory raises :class:`~segzoo.inference.engine_table.EngineFallback`; the
engine table builds the other engine, so this module imports no other engine.

Devices: ``CPUExecutionProvider`` with ``cpu_threads`` intra-op threads
(default: the cores, at most 8) that do not spin while idle (spinning threads
halved the throughput on 2 cores shared with other work, and starved the
pipeline's reader thread); on ``device="gpu"`` the
``CUDAExecutionProvider`` of ``onnxruntime-gpu`` (untested here: no GPU).
"""

from __future__ import annotations

import logging
import sys
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from ..device import parse_device
from ..errors import ConfigError, DependencyError, ExportError, WeightsError
from ..registry import get_registry
from .engine_table import (  # noqa: F401  (EngineFallbackWarning and fall_back lived here; this old home keeps them)
    ENGINES,
    Engine,
    EngineFallback,
    EngineFallbackWarning,
    default_cpu_threads,
    engine_outputs,
    fall_back,
    with_fallback,
)
from .export_cache import (  # noqa: F401  (moved to the exports cache; this old home keeps them)
    CACHE_MAX_ENTRIES,
    CACHE_MAX_MB,
    CONVERT_TIMEOUT,
    OPSET,
    _convert_main,
    _entry_bytes,
    _key,
    _lock,
    _safe,
    _touch,
    _versions,
    cache_limit_bytes,
    cached_export,
    cached_onnx,
    convert_to_onnx,
    exports_cache,
    file_digest,
    layer_digest,
    prune_cache,
    validate_conversion,
)
from .modeldir import ModelSource
from .rebuild import network_rebuild, program_rewrite
from .netcache import network_onnx
from .netid import network_id, recorded_network

log = logging.getLogger("segzoo")

#: ONNX Runtime sessions of per-size conversions kept in memory at once
MAX_SESSIONS = 4


# -- the engine ------------------------------------------------------------------------------------
def onnx_providers(device: Optional[str]) -> tuple[list, str]:
    """ONNX Runtime providers for ``device`` and the device kind used (``"cpu"`` or ``"gpu"``)."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device is None:
        kind, ids = ("gpu", [0]) if "CUDAExecutionProvider" in available else ("cpu", [])
    else:
        kind, ids = parse_device(device)
    if kind == "cpu":
        return ["CPUExecutionProvider"], "cpu"
    if kind != "gpu":
        raise ConfigError(f"device {device!r}: the onnxruntime engine runs on cpu or gpu")
    if "CUDAExecutionProvider" not in available:
        raise DependencyError(
            f"device {device!r} asks for a GPU but this onnxruntime has no CUDAExecutionProvider "
            f"(it has {', '.join(available)}); install onnxruntime-gpu instead of onnxruntime, or use device='cpu'"
        )
    return [("CUDAExecutionProvider", {"device_id": ids[0] if ids else 0}), "CPUExecutionProvider"], "gpu"


class OnnxRuntimeEngine(Engine):
    """ONNX Runtime on converted models.

    Args:
        model_for: ``model_for(hw)`` returns the ``.onnx`` path to run for
            inputs of ``hw = (H, W)`` (``hw`` is ``None`` when one model
            takes every size).
        per_size: convert one model per input size (``export.onnx_static_hw``).
        outputs: ``"labels"`` or ``"scores"`` (what the model returns).
        device: ``"cpu"``, ``"gpu"``, ``"gpu:N"`` or ``None`` (a GPU when onnxruntime-gpu has one).
        cpu_threads: intra-op threads on the CPU (default :func:`default_cpu_threads`).
        input_hw, max_batch: as :class:`Engine` (a fixed-shape export).
        precision: ``"fp32"`` only (ONNX Runtime's CPU kernels).
    """

    name = "onnxruntime"

    def __init__(
        self,
        model_for: Callable[[Optional[tuple[int, int]]], Path],
        *,
        per_size: bool = False,
        outputs: str = "labels",
        device: Optional[str] = None,
        cpu_threads: Optional[int] = None,
        input_hw: Optional[tuple[int, int]] = None,
        max_batch: Optional[int] = None,
        precision: str = "fp32",
    ):
        self.precision = precision
        self._check_runtime(device)
        self.cpu_threads = int(cpu_threads or default_cpu_threads())
        self.model_for = model_for
        self.per_size = bool(per_size)
        self.outputs = outputs
        self.input_hw = input_hw
        self.max_batch = max_batch
        self._sessions: "OrderedDict[Any, Any]" = OrderedDict()
        self._lock = threading.Lock()
        if not self.per_size:
            self._session(None)  # load now: errors show at create_model(), not at the first image

    def _check_runtime(self, device: Optional[str]) -> None:
        """Check the precision and the runtime, and pick the providers (subclasses run other runtimes)."""
        if self.precision != "fp32":
            raise ConfigError(
                f"engine_options precision {self.precision!r}: the onnxruntime engine runs fp32 on the CPU; "
                "for bf16 use engine='openvino'"
            )
        try:
            import onnxruntime  # noqa: F401
        except ImportError as exc:
            raise DependencyError(f"onnxruntime is not importable ({exc}); pip install onnxruntime") from exc
        self.providers, self.device_kind = onnx_providers(device)

    def _session(self, hw: Optional[tuple[int, int]]):
        key = hw if self.per_size else None
        with self._lock:
            sess = self._sessions.get(key)
            if sess is not None:
                self._sessions.move_to_end(key)
                return sess
            found = self.model_for(key)
            sess = found if isinstance(found, Engine) else self._load(found)
            self._sessions[key] = sess
            while len(self._sessions) > MAX_SESSIONS:
                self._sessions.popitem(last=False)
            return sess

    def _load(self, path: Path):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.intra_op_num_threads = self.cpu_threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        # images of many sizes: no memory pattern planned (and kept) per input shape. SegFormer-B0 over 24
        # photos of 6 sizes up to 1920×1080: peak RSS 6.0 -> 3.5 GB at the same speed (24.3 vs 24.2 s); turning
        # the arena off too saves 0.8 GB more but is 2.6× slower
        opts.enable_mem_pattern = False
        # idle worker threads sleep instead of spinning: they leave the cores to the pipeline's reader
        # and to other processes (2 loaded cores: 0.27 -> 0.14 s per PP-LiteSeg-T 512×512 image)
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
        try:
            return ort.InferenceSession(str(path), sess_options=opts, providers=self.providers)
        except Exception as exc:
            text = str(exc).strip().splitlines()
            raise WeightsError(f"ONNX Runtime cannot load {path}: {text[0] if text else type(exc).__name__}") from exc

    def run(self, batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        sess = self._session(tuple(batch.shape[2:]))
        if isinstance(sess, Engine):  # a size ONNX cannot take exactly: Paddle Inference runs it
            out = sess.run(batch)
        else:
            out = sess.run(None, {sess.get_inputs()[0].name: batch})[0]
        return self._seen(out)


# -- the factory behind create_model(engine="onnxruntime") ---------------------------------------------
def export_onnx(model_name: str, config: Any, deploy) -> Path:
    """The ONNX model the ONNX engines run for an exported directory, converted once into the cache.

    A program that converts only at a fixed H×W (PaddleX's PP-LiteSeg) is
    rebuilt from the plugin's network, and one made elsewhere whose card says
    ``export.rebuild_exports`` (PP-LiteSeg, SegFormer) is rebuilt first; see
    :func:`~segzoo.inference.rebuild.network_rebuild`.
    """
    card = get_registry().card(model_name)
    rebuild = _rebuild(model_name, config, deploy) if card.export.dynamic_shape else None
    return cached_onnx(deploy, rebuild, rebuild_first=card.export.rebuild_exports and "segzoo" not in deploy.raw)


@with_fallback
def make_onnx_engine(model_name: str, config: Any, source: Any, device: Optional[str], options: dict,
                     engine_class: Optional[type] = None) -> Engine:
    """``create_model(..., engine="onnxruntime")``: see the module docstring.

    ``engine_class`` runs the ``.onnx`` files (default :class:`OnnxRuntimeEngine`;
    the OpenVINO engine passes its own); it takes the same arguments, plus the
    ``precision`` option when given. A model it cannot run raises
    :class:`~segzoo.inference.engine_table.EngineFallback`, which the table
    (:func:`~segzoo.inference.engine_table.with_fallback`) turns into the fallback engine.
    """
    OnnxEngine = engine_class or OnnxRuntimeEngine
    card = get_registry().card(model_name)
    output_op = options.get("output_op", "argmax")
    outputs = engine_outputs(output_op, check=True)
    common = {"device": device, "cpu_threads": options.get("cpu_threads")}
    if options.get("precision") is not None:
        common["precision"] = options["precision"]

    def from_export(deploy, outputs: str) -> Engine:
        """ONNX Runtime on the ONNX conversion of one export (Paddle Inference if it does not convert)."""
        try:
            path = cached_onnx(deploy)
        except ExportError as exc:
            raise EngineFallback(str(exc), engine="paddle") from exc
        return OnnxEngine(lambda hw: path, outputs=outputs, input_hw=deploy.fixed_hw,
                                 max_batch=deploy.fixed_batch, **common)

    if not card.export.onnx:
        note = card.export.note.split(". ")[0] if card.export.note else "its card says it does not convert to ONNX"
        raise EngineFallback(f"ONNX is not supported ({note})")
    if source.kind == "inference":
        deploy = source.deploy
        if card.export.onnx_static_hw and deploy.fixed_hw is None:
            raise EngineFallback(
                f"{deploy.path.parent} has a dynamic H×W, which this model converts to ONNX only when fixed; "
                "export it with --input-shape -1,3,H,W (or give its .pdparams) to run it on onnxruntime"
            )
        network = recorded_network(deploy)
        try:
            if network is not None:  # a segzoo export: one conversion with the same weights given as .pdparams
                made = engine_outputs(deploy.output_op)
                path = network_onnx(model_name, network, made, _program_conversion(model_name, config, deploy), made)
            else:
                path = export_onnx(model_name, config, deploy)
        except ExportError as exc:
            raise EngineFallback(str(exc), engine="paddle") from exc
        return OnnxEngine(lambda hw: path, outputs=engine_outputs(deploy.output_op), input_hw=deploy.fixed_hw,
                          max_batch=deploy.fixed_batch, **common)
    layer = options.get("layer")
    if layer is None:  # pragma: no cover - create_model always hands the layer over
        raise ConfigError("the onnxruntime engine needs the model's network or an exported directory")
    if not card.export.dynamic_shape:
        deploy = cached_export(model_name, config, layer, output_op)
        return from_export(deploy, outputs)
    if card.export.onnx_static_hw:
        def per_size(hw):
            deploy = cached_export(model_name, config, layer, output_op, input_shape=[None, 3, hw[0], hw[1]])
            try:
                return cached_onnx(deploy)
            except ExportError as exc:
                log.warning("%s: %s; inputs of %d×%d run on Paddle Inference instead", model_name, exc, hw[1], hw[0])
                paddle = ENGINES["paddle"]  # the table's Paddle Inference engine, on this size's export
                return paddle.factory(model_name, config, ModelSource("inference", path=deploy.path, deploy=deploy),
                                      device, {"cpu_threads": options.get("cpu_threads")})

        return OnnxEngine(per_size, per_size=True, outputs=outputs, **common)
    def convert(target: Path) -> None:  # the export the paddle engine shares; the other output is derived
        deploy = cached_export(model_name, config, layer, output_op)
        convert_to_onnx(deploy.model_file, deploy.params_file, target)

    network = network_id(model_name, config, layer_digest(layer))
    try:
        path = network_onnx(model_name, network, outputs, convert, outputs)
    except ExportError as exc:
        raise EngineFallback(str(exc), engine="paddle") from exc
    return OnnxEngine(lambda hw: path, outputs=outputs, **common)


def _rebuild(model_name: str, config: Any, deploy) -> Callable[[Path, str], None]:
    """``rebuild(target, reason)`` of an export whose program does not convert as it is: its program with the
    card's ``export.program_rewrite`` applied where it has one (:func:`program_rewrite`), else (or where
    that does not work) the plugin's network with its weights (:func:`network_rebuild`)."""
    rebuild = network_rebuild(model_name, config, deploy)
    rewrite = get_registry().card(model_name).export.program_rewrite
    return program_rewrite(model_name, rewrite, deploy, fallback=rebuild) if rewrite else rebuild


def _program_conversion(model_name: str, config: Any, deploy) -> Callable[[Path], None]:
    """``make(target)`` of :func:`~segzoo.inference.netcache.network_onnx` for a segzoo export: its program
    converted, or, where that fails, the plugin's network with its weights (:func:`network_rebuild`)."""
    card = get_registry().card(model_name)

    def convert(target: Path) -> None:
        try:
            convert_to_onnx(deploy.model_file, deploy.params_file, target)
        except ExportError as exc:
            if not card.export.dynamic_shape:
                raise
            _rebuild(model_name, config, deploy)(target, str(exc))

    return convert


if __name__ == "__main__":  # pragma: no cover - the conversion child of segzoo < the exports cache module
    sys.exit(_convert_main())
