"""Model directories: what ``model_dir`` points at, and the ``inference.yml`` of PaddleX's layout.

``model_dir`` may be:

(a) a **PaddleX inference directory**: ``inference.yml`` beside
    ``inference.json`` (PIR, Paddle 3) or ``inference.pdmodel`` (the older
    program format), and ``inference.pdiparams``. It runs through Paddle
    Inference; its preprocessing follows ``Deploy.transforms``.
(b) **dygraph weights**: a ``.pdparams`` file, or a directory holding one
    (``model.pdparams`` preferred, e.g. a training ``best_model/``). The
    network is built by the model's plugin and the weights loaded by name.

``inference.yml`` as PaddleSeg's ``export.py`` and PaddleX write it::

    Global:
      model_name: PP-LiteSeg-T
    Deploy:
      model: inference.json
      params: inference.pdiparams
      transforms:
      - type: Normalize
        mean: [0.5, 0.5, 0.5]
        std: [0.5, 0.5, 0.5]
      input_shape: [null, 3, null, null]
      output_op: argmax
      output_dtype: int32

segzoo adds a ``segzoo:`` section (``num_classes``, the package version, and
``network`` + ``files_sha256``: the identity of the network the program was
exported from, so it shares one ONNX conversion with the same weights given as
a ``.pdparams``, see :mod:`segzoo.inference.netid`), which PaddleX ignores.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from ..errors import ConfigError, WeightsError
from .sizes import ResizePlan, parse_size

INFERENCE_YML = "inference.yml"
MODEL_FILES = ("inference.json", "inference.pdmodel")
PARAMS_FILE = "inference.pdiparams"

#: the transforms of ``Deploy.transforms`` segzoo applies (PaddleX's semantic-segmentation set)
KNOWN_TRANSFORMS = ("Normalize", "Resize")


@dataclass
class DeployInfo:
    """The parsed ``inference.yml`` of an inference directory."""

    path: Path
    model_name: Optional[str]
    model_file: Path
    params_file: Path
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    resize: Optional[ResizePlan] = None
    input_shape: Optional[list] = None
    output_op: str = "argmax"
    num_classes: Optional[int] = None
    raw: dict = field(default_factory=dict)

    @property
    def fixed_hw(self) -> Optional[tuple[int, int]]:
        """``(H, W)`` when the exported graph takes only one input size."""
        shape = self.input_shape
        if not shape or len(shape) != 4:
            return None
        h, w = shape[2], shape[3]
        if isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0:
            return (h, w)
        return None

    @property
    def fixed_batch(self) -> Optional[int]:
        shape = self.input_shape
        if shape and len(shape) == 4 and isinstance(shape[0], int) and shape[0] > 0:
            return shape[0]
        return None


@dataclass
class ModelSource:
    """Where a predictor's model comes from.

    ``kind`` is ``"inference"`` (an exported directory, :attr:`deploy` set),
    ``"weights"`` (a ``.pdparams`` file, :attr:`weights` set), ``"layer"`` (a
    built Layer handed over with :meth:`Predictor.from_model`) or ``"random"``.
    """

    kind: str
    path: Optional[Path] = None
    weights: Optional[Path] = None
    deploy: Optional[DeployInfo] = None


def _triple(value: Any, where: str) -> tuple[float, float, float]:
    if isinstance(value, (int, float)):
        return (float(value),) * 3
    try:
        values = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        values = ()
    if len(values) != 3:
        raise ConfigError(f"{where}: {value!r} must be a number or a list of 3 numbers")
    return values  # type: ignore[return-value]


def read_inference_yml(directory: Path) -> DeployInfo:
    """Parse ``directory/inference.yml`` (PaddleX / PaddleSeg layout); errors name the file and field."""
    import yaml

    path = directory / INFERENCE_YML
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping with Global and Deploy sections")
    deploy = data.get("Deploy")
    if not isinstance(deploy, dict):
        raise ConfigError(f"{path}: Deploy section is missing; is this a PaddleX / PaddleSeg inference directory?")
    glob = data.get("Global") or {}
    model_name = glob.get("model_name") if isinstance(glob, dict) else None

    model_file = _find_file(directory, deploy.get("model"), MODEL_FILES, path, "Deploy.model")
    params_file = _find_file(directory, deploy.get("params"), (PARAMS_FILE,), path, "Deploy.params")

    info = DeployInfo(path=path, model_name=model_name, model_file=model_file, params_file=params_file, raw=data)
    transforms = deploy.get("transforms") or []
    if not isinstance(transforms, list):
        raise ConfigError(f"{path}: Deploy.transforms must be a list of {{type: ...}} entries")
    for i, t in enumerate(transforms):
        where = f"{path}: Deploy.transforms[{i}]"
        if not isinstance(t, dict) or "type" not in t:
            raise ConfigError(f"{where} must be a mapping with a 'type'")
        kind = t["type"]
        if kind == "Normalize":
            info.mean = _triple(t.get("mean", 0.5), f"{where}.mean")
            info.std = _triple(t.get("std", 0.5), f"{where}.std")
            if any(s <= 0 for s in info.std):
                raise ConfigError(f"{where}.std: every std must be > 0")
        elif kind == "Resize":
            size = parse_size(t.get("target_size", -1), f"{where}.target_size")
            divisor = t.get("size_divisor", 32)
            if divisor is not None and (not isinstance(divisor, int) or divisor <= 0):
                raise ConfigError(f"{where}.size_divisor: {divisor!r} must be a positive int or null")
            info.resize = ResizePlan(size, keep_ratio=bool(t.get("keep_ratio", True)), size_divisor=divisor)
        else:
            raise ConfigError(
                f"{where}: transform type {kind!r} is not supported; semantic segmentation uses "
                f"{', '.join(KNOWN_TRANSFORMS)}"
            )
    shape = deploy.get("input_shape")
    if shape is not None:
        if not isinstance(shape, list) or len(shape) != 4:
            raise ConfigError(f"{path}: Deploy.input_shape must be [N, 3, H, W] (null or -1 for any), got {shape!r}")
        info.input_shape = [None if (s is None or s == -1) else int(s) for s in shape]
    info.output_op = str(deploy.get("output_op", "argmax"))
    extra = data.get("segzoo") or {}
    if isinstance(extra, dict) and isinstance(extra.get("num_classes"), int):
        info.num_classes = extra["num_classes"]
    return info


def _find_file(directory: Path, named: Any, defaults: tuple, yml: Path, field_name: str) -> Path:
    candidates = []
    if isinstance(named, str) and named:
        candidates.append(directory / named)
        # PaddleX's ymls often still say model.pdmodel / inference.pdmodel beside a PIR inference.json
        stem = Path(named).stem
        if field_name == "Deploy.model":
            candidates += [directory / f"{stem}{ext}" for ext in (".json", ".pdmodel")]
    candidates += [directory / d for d in defaults]
    for c in candidates:
        if c.is_file():
            return c
    raise ConfigError(
        f"{yml}: {field_name} names {named!r} but none of "
        f"{', '.join(sorted({c.name for c in candidates}))} exists in {directory}; export the model "
        "again (`segzoo export`) or copy the missing file"
    )


def _pick_pdparams(directory: Path) -> Optional[Path]:
    files = sorted(p for p in directory.glob("*.pdparams") if p.is_file())
    if not files:
        return None
    if (directory / "model.pdparams") in files:
        return directory / "model.pdparams"
    if len(files) == 1:
        return files[0]
    raise WeightsError(
        f"{directory} holds several .pdparams files ({', '.join(f.name for f in files)}); give "
        "model_dir the file to load"
    )


def resolve_model_dir(model_dir: os.PathLike | str) -> ModelSource:
    """Tell what ``model_dir`` is (see the module docstring); errors say what was expected."""
    path = Path(model_dir).expanduser()
    if not path.exists():
        raise ConfigError(
            f"model_dir {path} does not exist; give an exported inference directory (inference.yml + "
            "inference.json + inference.pdiparams) or a .pdparams weights file / a directory holding one"
        )
    if path.is_file():
        if path.suffix == ".pdparams":
            return ModelSource("weights", path=path, weights=path)
        if path.name == INFERENCE_YML:
            path = path.parent
        else:
            raise ConfigError(
                f"model_dir {path} is a {path.suffix or 'extension-less'} file; give a .pdparams file, "
                "or the directory that holds inference.yml"
            )
    if (path / INFERENCE_YML).is_file():
        return ModelSource("inference", path=path, deploy=read_inference_yml(path))
    weights = _pick_pdparams(path)
    if weights is not None:
        return ModelSource("weights", path=path, weights=weights)
    if (path / "inference" / INFERENCE_YML).is_file():
        return ModelSource("inference", path=path / "inference", deploy=read_inference_yml(path / "inference"))
    if any((path / f).is_file() for f in MODEL_FILES):
        raise ConfigError(
            f"{path} holds an exported model but no {INFERENCE_YML}; PaddleX's layout needs it "
            "(Global.model_name and Deploy.transforms). Export with `segzoo export` to get all three files"
        )
    raise ConfigError(
        f"model_dir {path} holds neither {INFERENCE_YML} (an exported model) nor a .pdparams file "
        "(dygraph weights); point it at one of these"
    )
