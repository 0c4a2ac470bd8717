"""``build_model``: a model from its name, its validated config and optional weights."""

from __future__ import annotations

from typing import Any, Optional

from .card import ModelConfig
from .registry import get_registry


def build_model(name: str, config: Optional[Any] = None, **config_overrides) -> Any:
    """Build the network ``name`` (a ``paddle.nn.Layer``).

    ``config`` is a dict or the model's config object; ``config_overrides`` are
    its fields (``num_classes=3``, ``pretrained="model.pdparams"``, ...), checked
    by the model's pydantic config before anything is built. With ``pretrained``,
    the weights are loaded and a report of missing / unexpected / mis-shaped
    entries is logged and kept as ``model.segzoo_load_report``.
    """
    registry = get_registry()
    cfg = registry.config(name, config, **config_overrides)
    return build_from_config(name, cfg)


def build_from_config(name: str, config: ModelConfig) -> Any:
    from .weights import load_weights

    model = get_registry().build_model(name, config)
    if config.pretrained is not None:
        model.segzoo_load_report = load_weights(model, config.pretrained)
    return model
