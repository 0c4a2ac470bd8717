"""Rendering a config: a model's complete config, and the commented YAML that ``segzoo config`` prints.

:func:`render_config` writes a document that :func:`segzoo.config.load_config`
reads back to the same config; :func:`resolve_config` writes every model
default out (the ``config.yaml`` a training run records).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Union

import yaml
from pydantic import BaseModel

from ..fileio import atomic_write
from ..registry import get_registry
from .modelconfig import model_config_for
from .schema import TRAIN_TO_MODEL, SegzooConfig

__all__ = ["default_config", "render_config", "resolve_config", "dump_config"]


def default_config(model_name: str, **global_values) -> SegzooConfig:
    """The complete config of ``model_name``: every key set, the model's defaults filled in."""
    registry = get_registry()
    card = registry.card(model_name)
    mcfg = registry.config(model_name)
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
    data = cfg.model_dump(mode="json")
    card = get_registry().card(cfg.Global.model)
    published = f", {card.figures.miou:.2f} % mIoU" if card.figures.miou is not None else ""
    lines = [
        f"# segzoo config for {cfg.Global.model}: PaddleX's sections and keys; the Model section holds",
        "# the model's own fields. Run: segzoo -c THIS.yaml -o Global.mode=train -o Global.dataset_dir=DIR",
        f"# {card.name}: {card.description or card.architecture} ({card.dataset}, {card.num_classes} classes"
        f"{published}; typical input {card.describe_input_size()})",
        "# Prediction runs at each image's own size, as in PaddleX (nothing padded) unless Predict.target_size",
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
    with atomic_write(path) as fh:
        fh.write(render_config(cfg))
    return Path(path)
