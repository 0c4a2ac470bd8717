"""INT8 models: quantized with NNCF from a converted model, kept in the exports cache, and found again by their weights.

``segzoo quantize`` (:mod:`segzoo.training.quantize`) calls :func:`quantize_onnx`
on the ONNX file the openvino engine runs in fp32 and keeps the result with
:func:`keep_int8`:

* the INT8 model (OpenVINO IR, ``model.xml`` + ``model.bin``) and its report
  are one entry of the exports cache, ``<model>-int8-<key>/``, the key hashing
  the model's weights (:func:`weights_identity`), the calibration set's
  digest, the overflow fix and the versions of NNCF and OpenVINO; pruned with
  the other entries, least recently used first;
* a small pointer, ``exports/.int8/<weights identity>.json``, names the entry
  last kept for those weights: ``precision="int8"`` (``--precision int8``)
  looks it up with :func:`find_int8` whichever door the weights come in by
  (model name, exported directory, ``.pdparams``), because the identity is
  that of the weights, not of one ONNX conversion;
* an exported folder written by ``segzoo quantize --output DIR`` carries its
  INT8 model in ``DIR/int8/`` and is found there first.

Running a kept INT8 model needs only OpenVINO; NNCF is needed to make one
(``pip install "segzoo[int8]"``).
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Optional

import numpy as np

from ..errors import ConfigError, DependencyError
from ..fileio import replace_dir, write_json
from .engine_table import Engine
from .export_cache import _key, _lock, _safe, _touch, exports_cache, file_digest, layer_digest, prune_cache

log = logging.getLogger("segzoo")

#: the folder of an exported directory that carries its INT8 model (``segzoo quantize --output``)
CARRIED = "int8"
#: the files of an INT8 entry
MODEL_XML, META = "model.xml", "int8.json"


def weights_identity(model_name: str, source: Any, layer: Any = None) -> str:
    """A short hash of the weights a predictor runs: the exported files' bytes, or the network's tensors."""
    if source.kind == "inference":
        digest = file_digest(source.deploy.model_file, source.deploy.params_file)
    elif layer is not None:
        digest = layer_digest(layer)
    else:
        raise ConfigError(f"{model_name}: an INT8 model needs weights or an exported directory")
    return _key(kind="weights", model=model_name, digest=digest)


def pointer_path(identity: str) -> Path:
    """``exports/.int8/<identity>.json``: the INT8 entry kept last for these weights."""
    return exports_cache() / ".int8" / f"{identity}.json"


def entry_dir(model_name: str, identity: str, calibration: str, overflow_fix: str, subset: int) -> Path:
    """The cache entry of an INT8 model of these weights, this calibration set and these settings."""
    key = _key(kind="int8", weights=identity, calibration=calibration, overflow_fix=overflow_fix, subset=subset,
               tools=_tool_versions())
    return exports_cache() / f"{_safe(model_name)}-int8-{key}"


def _tool_versions() -> dict:
    out = {}
    for dist in ("nncf", "openvino"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def read_meta(folder: Path) -> Optional[dict]:
    """The ``int8.json`` of an INT8 folder, or ``None`` when the folder holds no complete INT8 model."""
    try:
        meta = json.loads((folder / META).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or not (folder / MODEL_XML).is_file() or not (folder / "model.bin").is_file():
        return None
    return meta


def find_int8(model_name: str, source: Any, layer: Any = None) -> tuple[Path, dict]:
    """``(model.xml, meta)`` of the INT8 model of these weights; a one-line :class:`ConfigError` naming
    ``segzoo quantize`` when there is none."""
    if source.kind == "inference":
        carried = source.deploy.model_file.parent / CARRIED
        meta = read_meta(carried)
        if meta is not None:
            return carried / MODEL_XML, meta
    identity = weights_identity(model_name, source, layer)
    pointer = pointer_path(identity)
    entry = None
    try:
        entry = exports_cache() / json.loads(pointer.read_text(encoding="utf-8"))["entry"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    meta = read_meta(entry) if entry is not None else None
    if meta is None:
        given = source.deploy.model_file.parent if source.kind == "inference" else source.weights
        where = f" --model-dir {given}" if given is not None else ""
        raise ConfigError(
            f"precision 'int8': no INT8 model of {model_name} with these weights yet; make one with "
            f"`segzoo quantize --model {model_name}{where} --dataset DIR` (or --images DIR)"
        )
    _touch(entry)
    return entry / MODEL_XML, meta


def keep_int8(identity: str, entry: Path) -> None:
    """Make ``entry`` the INT8 model that ``precision="int8"`` runs for the weights of ``identity``."""
    write_json(pointer_path(identity), {"entry": entry.name})


class _Captured(Exception):
    def __init__(self, batch):
        super().__init__("captured")
        self.batch = batch


class _Capture(Engine):
    """Stands in for the engine to catch the network input the predictor prepared."""

    def __init__(self, outputs: str):
        self.outputs = outputs

    def run(self, batch):
        raise _Captured(np.array(batch, dtype=np.float32, copy=True))


def network_input(predictor, image: np.ndarray) -> np.ndarray:
    """The ``1×3×H×W`` input ``predictor`` feeds its engine for ``image`` (resized, normalised, padded)."""
    engine = predictor.engine
    predictor.engine = _Capture(engine.outputs)
    try:
        predictor.predict_arrays([image])
    except _Captured as got:
        return got.batch
    finally:
        predictor.engine = engine
    raise ConfigError("the predictor fed no input to its engine")  # pragma: no cover


def import_nncf():
    """``nncf``, or a one-line :class:`DependencyError` naming the extra that brings it."""
    try:
        import nncf
    except ImportError as exc:
        raise DependencyError(
            f"segzoo quantize needs NNCF ({exc}); install it with `pip install \"segzoo[int8]\"`"
        ) from exc
    return nncf


def quantize_onnx(onnx_path: Path, samples: Iterable, count: int, overflow_fix: str, target: Path,
                  meta: dict) -> Path:
    """Quantize ``onnx_path`` to INT8 with NNCF, calibrated on ``samples`` (``1×3×H×W`` inputs); write ``target``.

    ``target`` (a folder) is written whole or not at all: ``model.xml``,
    ``model.bin`` and ``int8.json`` (``meta`` plus what was used).
    """
    nncf = import_nncf()
    import openvino as ov
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix

    samples = list(samples)
    if not samples:
        raise ConfigError("no calibration images: give --dataset DIR (its train split) or --images DIR")
    core = ov.Core()
    model = core.read_model(str(onnx_path))
    nncf.set_log_level(logging.ERROR)
    quantized = nncf.quantize(
        model,
        nncf.Dataset(samples),
        subset_size=len(samples),
        advanced_parameters=AdvancedQuantizationParameters(overflow_fix=OverflowFix(overflow_fix)),
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    with _lock(target):
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            ov.save_model(quantized, str(tmp / MODEL_XML), compress_to_fp16=False)
            write_json(tmp / META, {**meta, "overflow_fix": overflow_fix, "calibration_images": count,
                                    "tools": _tool_versions()})
            replace_dir(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    prune_cache()
    return target


def remove_entry(entry: Path) -> None:
    """Remove an INT8 entry that is not to be kept (the guard refused it)."""
    with _lock(entry):
        shutil.rmtree(entry, ignore_errors=True)
    Path(str(entry) + ".lock").unlink(missing_ok=True)


def carry(entry: Path, out_dir: Path) -> Path:
    """Copy the INT8 model of ``entry`` into ``out_dir/int8`` (an exported folder), atomically."""
    tmp = Path(tempfile.mkdtemp(prefix=".int8.", dir=out_dir))
    try:
        for name in (MODEL_XML, "model.bin", META):
            shutil.copy2(entry / name, tmp / name)
        replace_dir(tmp, out_dir / CARRIED)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir / CARRIED
