"""The YAML config: PaddleX's sections, ``-o Section.key=value`` overrides, and the mode dispatch.

A config file has PaddleX's sections and key names, plus a ``Model`` section
for the model's own config fields (optimizer, weight decay, loss weights,
...)::

    Global:
      model: PP-LiteSeg-T
      mode: train              # check_dataset | train | evaluate | export | predict
      dataset_dir: dataset/shapes
      device: cpu              # cpu, gpu, gpu:0, gpu:0,1 (several GPUs: one process each)
      output: output
    Train:
      num_classes: 4
      epochs_iters: 1000       # iterations
      batch_size: 8
      learning_rate: 0.01
    Model:
      optimizer: sgd

Everything is validated before any work starts: unknown keys are errors that
name the closest valid key, values are type- and range-checked, and the
``Model`` section is checked against the model's own pydantic config class.
What the YAML leaves unset comes from the model's config class
(``get_registry().config(name)``): ``segzoo config MODEL`` prints the complete
file for a model with every default filled in and commented.

Overrides (``-o Train.epochs_iters=10``, ``-o CheckDataset.split.enable=True``)
parse their value with ``yaml.safe_load`` (so ``10`` is an int, ``True`` a
bool, ``[512, 256]`` a list, ``null`` None; ``1e-3`` is read as a float too),
and are applied in order on top of the file.

Importing this module does not import paddle.
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping, Optional, Sequence, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigError

__all__ = [
    "MODES",
    "GlobalConfig",
    "CheckDatasetConfig",
    "AugmentConfig",
    "TrainConfig",
    "EvaluateConfig",
    "ExportConfig",
    "PredictConfig",
    "SegzooConfig",
    "load_config",
    "parse_override",
    "apply_overrides",
    "model_config_for",
    "model_fields_for_weights",
    "explicit_model_fields",
    "resolve_num_classes",
    "default_config",
    "resolve_config",
    "render_config",
    "dump_config",
    "run_config",
]

MODES = ("check_dataset", "train", "evaluate", "export", "predict")

#: model-config fields that the ``Train`` section sets (PaddleX key -> model-config field)
TRAIN_TO_MODEL = {
    "num_classes": "num_classes",
    "learning_rate": "learning_rate",
    "warmup_steps": "warmup_iters",
    "crop_size": "crop_size",
}

#: model-config fields that a config sets in the ``Train`` section, never in ``Model`` (field -> Train key);
#: ``Train.pretrain_weight_path`` is read by the trainer (:mod:`segzoo.training.init_weights`), not the model config
TRAIN_OWNED = {**{v: k for k, v in TRAIN_TO_MODEL.items()}, "pretrained": "pretrain_weight_path"}

#: ``Train.pretrain_weight_path`` values that name PaddleX's published weights of ``Global.model``
PRETRAINED_KEYWORDS = ("official_backbone", "official")

_FLOAT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)$")


class _Section(BaseModel):
    # numbers given for text fields (``-o Global.dataset_dir=2024``) are read as text
    model_config = ConfigDict(
        extra="forbid", validate_assignment=True, protected_namespaces=(), coerce_numbers_to_str=True
    )


# ---------------------------------------------------------------------------------------------
# sections


class GlobalConfig(_Section):
    """``Global``: which model, what to do, on which data and device, where to write."""

    model: str = Field(..., description="model name (see `segzoo list-models`)")
    mode: Literal["check_dataset", "train", "evaluate", "export", "predict"] = Field(
        "check_dataset", description="check_dataset | train | evaluate | export | predict"
    )
    dataset_dir: Optional[str] = Field(None, description="SegDataset folder (images/, annotations/, train.txt, val.txt)")
    device: Optional[str] = Field(
        None, description="cpu, gpu, gpu:0 or gpu:0,1 (several GPUs train in one process each); null: GPU if any"
    )
    output: str = Field("output", description="output folder")

    @field_validator("device")
    @classmethod
    def _device(cls, v):
        if v is None:
            return v
        from .device import parse_device

        parse_device(str(v))  # raises ConfigError (a ValueError) with the accepted forms
        return str(v).strip().lower()


class ConvertConfig(_Section):
    """``CheckDataset.convert``: convert a LabelMe folder into a SegDataset first."""

    enable: bool = Field(False, description="convert src_dataset_dir into Global.dataset_dir before checking")
    src_dataset_type: Optional[str] = Field(None, description="format of the source; segmentation supports LabelMe")
    src_dataset_dir: Optional[str] = Field(None, description="the LabelMe folder (never converted in place)")
    overwrite: bool = Field(False, description="replace a dataset_dir that was not written by an earlier conversion")


class SplitConfig(_Section):
    """``CheckDataset.split``: re-split train/val (the old lists are kept as .bak)."""

    enable: bool = Field(False, description="re-split train.txt/val.txt")
    train_percent: Optional[int] = Field(None, ge=1, le=99, description="share of samples in train.txt (%)")
    val_percent: Optional[int] = Field(None, ge=1, le=99, description="share of samples in val.txt (%)")
    seed: int = Field(0, description="shuffle seed of the split")

    @model_validator(mode="after")
    def _sum(self):
        if self.enable:
            if self.train_percent is None or self.val_percent is None:
                raise ValueError("split.enable needs train_percent and val_percent (summing to 100)")
            if self.train_percent + self.val_percent != 100:
                raise ValueError(
                    f"train_percent + val_percent must be 100, got {self.train_percent} + {self.val_percent}"
                )
        return self


class CheckDatasetConfig(_Section):
    """``CheckDataset``: the dataset check of ``Global.mode=check_dataset``."""

    convert: ConvertConfig = ConvertConfig()
    split: SplitConfig = SplitConfig()


class AugmentConfig(_Section):
    """``Train.augment``: the training augmentations, in the order they run."""

    min_scale: float = Field(0.5, gt=0, description="random rescaling: smallest factor (ResizeStepScaling)")
    max_scale: float = Field(2.0, gt=0, description="random rescaling: largest factor")
    scale_step: float = Field(0.25, ge=0, description="random rescaling: step between factors (0: continuous)")
    flip_prob: float = Field(0.5, ge=0, le=1, description="probability of a horizontal flip")
    distort_prob: float = Field(0.5, ge=0, le=1, description="probability of each photometric distortion")
    brightness: float = Field(0.4, ge=0, lt=1, description="brightness factor range 1 ± this")
    contrast: float = Field(0.4, ge=0, lt=1, description="contrast factor range 1 ± this")
    saturation: float = Field(0.4, ge=0, lt=1, description="saturation factor range 1 ± this")

    @model_validator(mode="after")
    def _scales(self):
        if self.min_scale > self.max_scale:
            raise ValueError(f"min_scale ({self.min_scale}) must be <= max_scale ({self.max_scale})")
        return self


class TrainConfig(_Section):
    """``Train``: PaddleX's training keys plus segzoo's (augmentation, checkpoints, workers)."""

    num_classes: Optional[int] = Field(
        None, gt=0, le=255, description="classes in the dataset; null: class_name.txt's count, else the model's"
    )
    epochs_iters: int = Field(1000, gt=0, description="training iterations")
    batch_size: int = Field(2, gt=0, description="images per iteration per device")
    learning_rate: Optional[float] = Field(None, gt=0, description="base learning rate; null: the model's")
    pretrain_weight_path: Optional[str] = Field(
        "official_backbone",
        description="weights to start from: official_backbone (the model's official ImageNet backbone weights, "
        "PaddleX's default), official (the whole trained model), an http(s) URL or a .pdparams path; "
        "null: from scratch",
    )
    warmup_steps: Optional[int] = Field(None, ge=0, description="linear warm-up iterations; null: the model's")
    resume_path: Optional[str] = Field(None, description="an iter_N checkpoint folder to continue from")
    log_interval: int = Field(10, gt=0, description="iterations between log lines in train.log")
    eval_interval: int = Field(100, gt=0, description="iterations between evaluations on the val split")
    save_interval: Optional[int] = Field(None, gt=0, description="iterations between checkpoints; null: eval_interval")
    keep_checkpoints: int = Field(5, gt=0, description="how many iter_N checkpoints to keep (the newest)")
    seed: int = Field(0, ge=0, description="seed of weights, sample order and augmentation")
    num_workers: int = Field(0, ge=0, description="data-loading worker processes (0: in the training process)")
    amp: Optional[bool] = Field(None, description="mixed precision; null: on for GPU, off on the CPU")
    num_processes: int = Field(
        1, gt=0, description="data-parallel processes on the CPU (GPUs: one per id in Global.device)"
    )
    crop_size: Optional[tuple[int, int]] = Field(None, description="training crop (W, H); null: the model's")
    augment: AugmentConfig = AugmentConfig()
    export: bool = Field(True, description="export the best model to best_model/inference at the end")
    ema: bool = Field(
        True,
        description="keep an exponential moving average of the weights: model.pdema beside model.pdparams in "
        "iter_N/ and best_model/ (train_result.json's pdema), evaluated at every evaluation; false: none",
    )
    ema_decay: float = Field(0.999, gt=0, lt=1, description="EMA decay (ramped as min(decay, 1 - 1/(iter+1)))")

    @field_validator("crop_size")
    @classmethod
    def _crop(cls, v):
        if v is not None and any(s <= 0 for s in v):
            raise ValueError("crop sides must be > 0")
        return v

    @field_validator("pretrain_weight_path")
    @classmethod
    def _weights_spec(cls, v):
        m = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", str(v)) if v is not None else None
        if m and m.group(1).lower() not in ("http", "https"):
            raise ValueError(f"{v}: only http(s) URLs are fetched; give an http(s) URL or a local path")
        return v

    @field_validator("resume_path")
    @classmethod
    def _local(cls, v):
        if v is not None and re.match(r"^[a-z]+://", str(v)):
            raise ValueError(f"{v} is a URL; resume from a local iter_N folder")
        return v


class EvaluateConfig(_Section):
    """``Evaluate``: which weights ``Global.mode=evaluate`` measures on the val split."""

    weight_path: Optional[str] = Field(
        None, description="a .pdparams file or checkpoint folder; null: <output>/best_model/model.pdparams"
    )
    log_interval: int = Field(10, gt=0, description="images between progress updates")


class ExportConfig(_Section):
    """``Export``: which weights ``Global.mode=export`` writes as an inference model."""

    weight_path: Optional[str] = Field(
        None, description="a .pdparams file or checkpoint folder; null: <output>/best_model/model.pdparams"
    )


class PredictConfig(_Section):
    """``Predict``: ``Global.mode=predict``."""

    model_dir: Optional[str] = Field(None, description="an exported model folder; null: <output>/best_model/inference")
    input: Optional[Union[str, list[str]]] = Field(None, description="image, folder, PDF, URL, or a list of these")
    batch_size: int = Field(1, gt=0, description="images per batch")
    target_size: Optional[Union[int, tuple[int, int]]] = Field(
        None, description="-1: original size; n: (n, n); [W, H]; null: the model's"
    )


class SegzooConfig(_Section):
    """A whole config file. ``Model`` holds the model's own config fields (see ``segzoo config MODEL``)."""

    Global: GlobalConfig
    CheckDataset: CheckDatasetConfig = CheckDatasetConfig()
    Train: TrainConfig = TrainConfig()
    Evaluate: EvaluateConfig = EvaluateConfig()
    Export: ExportConfig = ExportConfig()
    Predict: PredictConfig = PredictConfig()
    Model: dict[str, Any] = Field(
        default_factory=dict, description="the model's config fields (optimizer, weight decay, loss weights, ...)"
    )

    @property
    def output_dir(self) -> Path:
        return Path(self.Global.output)


# ---------------------------------------------------------------------------------------------
# overrides


def _coerce(text: str) -> Any:
    """An override value: YAML, with ``1e-3`` read as a float (YAML 1.1 reads it as a string)."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str) and _FLOAT.match(value.strip()):
        return float(value)
    return value


def parse_override(item: str) -> tuple[list[str], Any]:
    """``"Train.epochs_iters=10"`` → ``(["Train", "epochs_iters"], 10)``."""
    if "=" not in item:
        raise ConfigError(f"-o {item!r}: expected Section.key=value, e.g. -o Train.epochs_iters=10")
    key, _, raw = item.partition("=")
    path = [p.strip() for p in key.strip().split(".")]
    if len(path) < 2 or not all(path):
        raise ConfigError(f"-o {item!r}: the key must be Section.key (e.g. Global.mode, CheckDataset.split.enable)")
    return path, _coerce(raw)


def apply_overrides(data: dict, overrides: Iterable[str]) -> dict:
    """Apply ``-o`` overrides to the raw config dict (in order); returns ``data``."""
    for item in overrides or ():
        path, value = parse_override(item)
        node = data
        for depth, part in enumerate(path[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                where = ".".join(path[: depth + 1])
                raise ConfigError(f"-o {item}: {where} is a value ({child!r}), not a section with keys")
            node = child
        node[path[-1]] = value
    return data


# ---------------------------------------------------------------------------------------------
# loading and validation


def _read_yaml(path: Union[str, os.PathLike]) -> dict:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} not found; print a complete one with `segzoo config MODEL > {p.name}`")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read the config ({exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{p}{where}: not valid YAML ({problem})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: a config must be a mapping of sections (Global, Train, ...), got {type(data).__name__}")
    return data


def _validate(data: dict, source: str = "", overrides: Sequence[str] = ()) -> SegzooConfig:
    from .registry import format_validation_error

    try:
        return SegzooConfig.model_validate(data)
    except ValidationError as exc:
        msg = format_validation_error(exc, SegzooConfig)
        # name where the bad value came from: the -o items when they hold every bad key, else the file
        keys = [".".join(parse_override(o)[0]) for o in overrides]
        locs = [".".join(str(p) for p in err["loc"]) for err in exc.errors()]
        from_o = bool(keys) and all(
            any(loc == k or loc.startswith(k + ".") or k.startswith(loc + ".") for k in keys) for loc in locs
        )
        if from_o:
            raise ConfigError(f"-o {msg}") from None
        raise ConfigError(f"{source}: {msg}" if source else msg) from None


def load_config(
    path: Union[str, os.PathLike, None] = None,
    overrides: Sequence[str] = (),
    data: Optional[Mapping] = None,
    check_model: bool = True,
) -> SegzooConfig:
    """Read, override and validate a config; nothing else happens before this succeeds.

    ``path`` is a YAML file, ``data`` a dict (both may be given: ``data`` is
    applied on top of the file), ``overrides`` are ``-o`` items. With
    ``check_model``, ``Global.model`` must be a registered model and the
    ``Model`` section must validate against its config class.
    Raises :class:`ConfigError` naming the field (and the closest valid key).
    """
    raw: dict = _read_yaml(path) if path is not None else {}
    if data:
        raw = _deep_merge(raw, copy.deepcopy(dict(data)))
    apply_overrides(raw, overrides)
    source = str(path) if path is not None else ""
    if "Global" not in raw or not isinstance(raw.get("Global"), dict) or "model" not in raw["Global"]:
        hint = "; add `Global: {model: NAME}` or -o Global.model=NAME"
        raise ConfigError(f"{source + ': ' if source else ''}Global.model: required, but missing{hint}")
    cfg = _validate(raw, source, overrides)
    if check_model:
        model_config_for(cfg)
    return cfg


def _deep_merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def resolve_num_classes(cfg: SegzooConfig) -> int:
    """``Train.num_classes``, else the number of lines in ``class_name.txt``, else the model card's."""
    if cfg.Train.num_classes is not None:
        return cfg.Train.num_classes
    if cfg.Global.dataset_dir:
        names = Path(cfg.Global.dataset_dir) / "class_name.txt"
        if names.is_file():
            lines = [ln.strip() for ln in names.read_text(encoding="utf-8-sig").splitlines()]
            while lines and not lines[-1]:
                lines.pop()
            if lines:
                return len(lines)
    from .registry import get_registry

    return get_registry().card(cfg.Global.model).num_classes


def model_config_for(cfg: SegzooConfig, **extra):
    """The model's validated config: its defaults, the ``Model`` section, then the ``Train`` keys.

    ``Train.num_classes``, ``learning_rate``, ``warmup_steps`` and ``crop_size``
    set the model fields ``num_classes``, ``learning_rate``, ``warmup_iters``
    and ``crop_size``; the ``Model`` section may not set those, nor
    ``pretrained`` (the trainer loads ``Train.pretrain_weight_path`` itself).
    """
    from .registry import format_validation_error, get_registry

    card = get_registry().card(cfg.Global.model)
    owned = TRAIN_OWNED
    values: dict[str, Any] = {}
    for key, value in cfg.Model.items():
        if key in owned:
            raise ConfigError(f"Model.{key}: set it as Train.{owned[key]} (PaddleX's key), not in the Model section")
        values[key] = value
    values["num_classes"] = resolve_num_classes(cfg)
    for train_key, model_key in TRAIN_TO_MODEL.items():
        value = getattr(cfg.Train, train_key)
        if train_key != "num_classes" and value is not None:
            values[model_key] = value
    values.update(extra)
    try:
        return card.config_class(**values)
    except ValidationError as exc:
        msg = format_validation_error(exc, card.config_class, prefix="Model")
        # the Train keys validated again by the model's class: name them as the user wrote them
        for train_key, model_key in TRAIN_TO_MODEL.items():
            msg = msg.replace(f"Model.{model_key}:", f"Train.{train_key}:")
        raise ConfigError(msg) from None


# ---------------------------------------------------------------------------------------------
# the complete, commented config of a model


def default_config(model_name: str, **global_values) -> SegzooConfig:
    """The complete config of ``model_name``: every key set, the model's defaults filled in."""
    from .registry import get_registry

    card = get_registry().card(model_name)
    mcfg = card.default_config()
    model_values = mcfg.model_dump(mode="json")
    train = {
        "num_classes": card.num_classes,
        "learning_rate": model_values.pop("learning_rate"),
        "warmup_steps": model_values.pop("warmup_iters"),
        "crop_size": model_values.pop("crop_size"),
    }
    model_values.pop("num_classes")
    model_values.pop("pretrained")
    glob = {"model": model_name, **global_values}
    return SegzooConfig.model_validate({"Global": glob, "Train": train, "Model": model_values})


def _scalar(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=10_000).strip()
    if text.endswith("\n...") or text.endswith("..."):
        text = text.rsplit("...", 1)[0].strip()
    return text


def _doc_line(cls) -> str:
    text = (cls.__doc__ or "").strip()
    return text.splitlines()[0].replace("``", "") if text else ""


def _emit(lines: list[str], model: BaseModel, values: Mapping, indent: int) -> None:
    pad = "  " * indent
    fields = type(model).model_fields
    for key, value in values.items():
        info = fields.get(key)
        desc = info.description if info is not None and info.description else ""
        sub = getattr(model, key, None)
        if isinstance(sub, BaseModel):
            doc = _doc_line(type(sub))
            lines.append(f"{pad}{key}:" + (f"  # {doc}" if doc else ""))
            _emit(lines, sub, value, indent + 1)
            continue
        comment = f"  # {desc}" if desc else ""
        lines.append(f"{pad}{key}: {_scalar(value)}{comment}")


def render_config(cfg: SegzooConfig) -> str:
    """``cfg`` as a commented YAML document that :func:`load_config` reads back to the same config."""
    from .registry import get_registry

    data = cfg.model_dump(mode="json")
    card = get_registry().card(cfg.Global.model)
    published = f", {card.figures.miou:.2f} % mIoU" if card.figures.miou is not None else ""
    lines = [
        f"# segzoo config for {cfg.Global.model}: PaddleX's sections and keys; the Model section holds",
        "# the model's own fields. Run: segzoo -c THIS.yaml -o Global.mode=train -o Global.dataset_dir=DIR",
        f"# {card.name}: {card.description or card.architecture} ({card.dataset}, {card.num_classes} classes"
        f"{published}; typical input {card.describe_input_size()})",
        "# Prediction runs at each image's own size (padded to the model's stride) unless Predict.target_size",
        "# (or an exported model's inference.yml) resizes it; the typical input sizes sliding windows and probes.",
    ]
    for section in ("Global", "CheckDataset", "Train", "Evaluate", "Export", "Predict"):
        sub = getattr(cfg, section)
        doc = _doc_line(type(sub))
        lines.append("")
        lines.append(f"{section}:  # {doc}")
        _emit(lines, sub, data[section], 1)
    lines.append("")
    cls = card.config_class
    lines.append(f"Model:  # {cls.__name__}: the model's own fields (Train sets num_classes, lr, warm-up, crop)")
    if not cfg.Model:
        lines[-1] = lines[-1] + "\n  {}"
    for key, value in data["Model"].items():
        info = cls.model_fields.get(key)
        desc = f"  # {info.description}" if info is not None and info.description else ""
        lines.append(f"  {key}: {_scalar(value)}{desc}")
    return "\n".join(lines) + "\n"


def resolve_config(cfg: SegzooConfig) -> SegzooConfig:
    """``cfg`` with every model default written out (what ``config.yaml`` in the output records)."""
    mcfg = model_config_for(cfg)
    values = mcfg.model_dump(mode="json")
    train = cfg.Train.model_dump()
    for train_key, model_key in TRAIN_TO_MODEL.items():
        train[train_key] = values.pop(model_key)
    values.pop("pretrained", None)
    model = {k: v for k, v in values.items()}
    return SegzooConfig.model_validate({**cfg.model_dump(), "Train": train, "Model": model})


def dump_config(cfg: SegzooConfig, path: Union[str, os.PathLike]) -> Path:
    """Write ``cfg`` to ``path`` atomically as commented YAML."""
    from .fileio import atomic_write

    with atomic_write(path) as fh:
        fh.write(render_config(cfg))
    return Path(path)


# ---------------------------------------------------------------------------------------------
# the mode dispatch (``segzoo -c cfg.yaml -o Global.mode=...``)


def model_fields_for_weights(cfg: SegzooConfig) -> dict:
    """The model fields to build a network for existing weights (evaluate, export).

    Like :func:`model_config_for`, without ``pretrained``. They are defaults:
    the run's config saved beside the weights and the weights' own class count
    win over them, except the fields that :func:`explicit_model_fields` names
    (see :mod:`segzoo.inference.runconfig`).
    """
    values = model_config_for(cfg).model_dump()
    values.pop("pretrained", None)
    return values


def explicit_model_fields(keys: Iterable[str]) -> set[str]:
    """Model-config fields that ``-o`` keys set: ``Train.num_classes`` → ``num_classes``, ``Model.width`` → ``width``."""
    found = set()
    for key in keys:
        parts = str(key).split(".")
        if len(parts) >= 2 and parts[0] == "Train" and parts[1] in TRAIN_TO_MODEL:
            found.add(TRAIN_TO_MODEL[parts[1]])
        elif len(parts) >= 2 and parts[0] == "Model":
            found.add(parts[1])
    return found


def _weights_or_best(value: Optional[str], cfg: SegzooConfig, what: str) -> Path:
    path = Path(value) if value else cfg.output_dir / "best_model" / "model.pdparams"
    if path.is_dir():
        path = path / "model.pdparams"
    if not path.is_file():
        raise ConfigError(
            f"{what}.weight_path: {path} does not exist; train first (Global.mode=train) or set "
            f"-o {what}.weight_path=PATH/model.pdparams"
        )
    return path


def _run_dataset_dir(weights: Path) -> str:
    """The dataset the weights were trained on (their run's config.yaml), for an evaluation that names none."""
    import sys

    from .inference.runconfig import read_saved_run

    saved = read_saved_run(weights)
    if saved is None or not saved.dataset_dir:
        raise ConfigError("Global.dataset_dir: required for mode evaluate; set -o Global.dataset_dir=DIR")
    print(f"evaluating on {saved.dataset_dir}, the dataset the weights were trained on ({saved.source})", file=sys.stderr)
    return saved.dataset_dir


def run_config(cfg: SegzooConfig, mode: Optional[str] = None, progress: bool = True, explicit: Iterable[str] = ()) -> Any:
    """Run ``Global.mode`` (or ``mode``) of a validated config; returns what that mode returns.

    ``explicit``: the ``Section.key`` names the caller set on purpose (the ``-o``
    keys). Evaluate and export build the network the weights were trained as
    (their run's ``config.yaml`` beside them): the model fields among
    ``explicit`` win over it, the config file's other values yield to it
    (see :mod:`segzoo.inference.runconfig`).
    """
    mode = mode or cfg.Global.mode
    if mode not in ("predict", "export", "evaluate") and not cfg.Global.dataset_dir:
        raise ConfigError(f"Global.dataset_dir: required for mode {mode}; set -o Global.dataset_dir=DIR")
    if mode == "check_dataset":
        from .datasets.check import check_dataset_from_config

        return check_dataset_from_config(
            cfg.CheckDataset.model_dump(),
            cfg.Global.dataset_dir,
            cfg.output_dir / "check_dataset",
            num_classes=cfg.Train.num_classes,
            progress=progress,
        )
    if mode == "train":
        from .training import train

        return train(cfg, progress=progress)
    if mode == "evaluate":
        from .training import evaluate

        weights = _weights_or_best(cfg.Evaluate.weight_path, cfg, "Evaluate")
        return evaluate(
            cfg.Global.model,
            cfg.Global.dataset_dir or _run_dataset_dir(weights),
            weights,
            config=model_fields_for_weights(cfg),
            explicit=explicit_model_fields(explicit),
            output_dir=cfg.output_dir,
            device=cfg.Global.device,
            progress=progress,
        )
    if mode == "export":
        from .inference import export_model

        weights = _weights_or_best(cfg.Export.weight_path, cfg, "Export")
        out = cfg.output_dir / "inference"
        return export_model(
            cfg.Global.model, out, config=model_fields_for_weights(cfg), weights=weights,
            explicit=explicit_model_fields(explicit),
        )
    if mode == "predict":
        from .inference import run_predict

        model_dir = cfg.Predict.model_dir or str(cfg.output_dir / "best_model" / "inference")
        if cfg.Predict.input is None:
            raise ConfigError("Predict.input: required for mode predict; set -o Predict.input=IMAGE_OR_FOLDER")
        return run_predict(
            cfg.Global.model,
            cfg.Predict.input,
            cfg.output_dir / "predict",
            model_dir=model_dir,
            batch_size=cfg.Predict.batch_size,
            target_size=cfg.Predict.target_size,
            device=cfg.Global.device,
        )
    raise ConfigError(f"Global.mode: {mode!r} is not one of {', '.join(MODES)}")  # pragma: no cover

