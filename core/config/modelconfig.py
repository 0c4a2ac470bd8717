"""The bridge from a config file to the model's own config: ``Train`` keys and the ``Model`` section.

The model's validated config comes from :meth:`segzoo.registry.Registry.config`
(the one way to get it); this module decides which values go in and names
errors as the user wrote them (``Train.learning_rate``, ``Model.optimizer``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterable, Optional

from ..errors import ConfigError
from ..registry import get_registry
from .schema import TRAIN_OWNED, TRAIN_TO_MODEL, SegzooConfig

__all__ = ["resolve_num_classes", "model_config_for", "model_fields_for_weights", "explicit_model_fields",
           "weights_path"]


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
    return get_registry().card(cfg.Global.model).num_classes


def model_config_for(cfg: SegzooConfig, **extra):
    """The model's validated config: its defaults, the ``Model`` section, then the ``Train`` keys.

    ``Train.num_classes``, ``learning_rate``, ``warmup_steps`` and ``crop_size``
    set the model fields ``num_classes``, ``learning_rate``, ``warmup_iters``
    and ``crop_size``; the ``Model`` section may not set those, nor
    ``pretrained`` (the trainer loads ``Train.pretrain_weight_path`` itself).
    """
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
    name = cfg.Global.model
    try:
        return get_registry().config(name, values)
    except ConfigError as exc:
        # the registry names a bad field after the model; here it is a key of the Model section ...
        msg = re.sub(rf"(^|; ){re.escape(name)}\.", r"\1Model.", str(exc))
        # ... or a Train key validated again by the model's class: name it as the user wrote it
        for train_key, model_key in TRAIN_TO_MODEL.items():
            msg = msg.replace(f"Model.{model_key}:", f"Train.{train_key}:")
        raise ConfigError(msg) from None


def model_fields_for_weights(cfg: SegzooConfig) -> dict:
    """The model fields to build a network for existing weights (evaluate, export).

    Like :func:`model_config_for`, without ``pretrained``. They are defaults:
    the run's config saved beside the weights and the weights' own class count
    win over them, except the fields that :func:`explicit_model_fields` names
    (see :mod:`segzoo.models`).
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


def weights_path(value: Optional[str], cfg: SegzooConfig, what: str) -> Path:
    """The weights ``{what}.weight_path`` names (``value``), else ``<output>/best_model/model.pdparams``."""
    path = Path(value) if value else cfg.output_dir / "best_model" / "model.pdparams"
    if path.is_dir():
        path = path / "model.pdparams"
    if not path.is_file():
        raise ConfigError(
            f"{what}.weight_path: {path} does not exist; train first (Global.mode=train) or set "
            f"-o {what}.weight_path=PATH/model.pdparams"
        )
    return path
