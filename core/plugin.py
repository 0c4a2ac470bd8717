"""``ModelPlugin``: the base class of a model plugin.

A model plugin is one object per model name. Subclass :class:`ModelPlugin`
(or instantiate it with a ``build`` function) and expose the instance through
the ``segzoo.models`` entry-point group under the model's name::

    # my_pkg/__init__.py -- importing it must not import paddle
    from segzoo import ModelCard, ModelConfig, ModelPlugin

    class TinyNetConfig(ModelConfig):
        width: int = 16

    def build(config):
        from my_pkg.network import TinyNet   # paddle is imported here, lazily
        return TinyNet(config.num_classes, config.width)

    TINYNET = ModelPlugin(
        ModelCard(name="TinyNet", family="tinynet", dataset="none", num_classes=2,
                  config_class=TinyNetConfig),
        build=build,
    )

    # pyproject.toml
    [project.entry-points."segzoo.models"]
    "TinyNet" = "my_pkg:TINYNET"

The hook implementations below answer only for the plugin's own model (they
return ``None`` for every other ``model_name``), so each hook call reaches
exactly one model's implementation while hook wrappers still see every call.
Override the plain methods (:meth:`build`, :meth:`normalize`, :meth:`scores`,
:meth:`loss`, :meth:`build_loss`) rather than the hooks.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np

from .card import ModelCard, ModelConfig
from .errors import ConfigError, PluginError
from .hookspecs import hookimpl


def normalize_image(image: np.ndarray, mean, std) -> np.ndarray:
    """BGR ``uint8`` H×W×3 → RGB, ``(x/255 - mean) / std``, ``float32`` 3×H×W (PaddleX's ``Normalize``).

    A ``uint8`` image has 256 values per channel: each channel's 256 results
    are computed once, with the same float32 operations, and looked up (the
    same bits as computing every pixel, 3–4× faster). Other dtypes compute.
    """
    mean = np.asarray(mean, np.float32)
    std = np.asarray(std, np.float32)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        rgb = image[:, :, ::-1].astype(np.float32) * (1.0 / 255.0)
        return np.ascontiguousarray(((rgb - mean) / std).transpose(2, 0, 1))
    table = (np.arange(256, dtype=np.float32)[:, None] * (1.0 / 255.0) - mean) / std  # 256 × 3 (RGB)
    out = np.empty((3,) + image.shape[:2], np.float32)
    for c in range(3):
        np.take(table[:, c], image[:, :, 2 - c], out=out[c])
    return out


class ModelPlugin:
    """One model's plugin: its card plus the four per-model hooks."""

    def __init__(self, card: ModelCard, build: Optional[Callable[[ModelConfig], Any]] = None):
        self.card = card
        self._build = build
        self._losses: dict = {}

    @property
    def name(self) -> str:
        return self.card.name

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.card.name}>"

    # -- hooks (dispatch on model_name) --------------------------------------------------
    @hookimpl
    def model_card(self) -> ModelCard:
        return self.card

    @hookimpl
    def build_model(self, model_name: str, config: ModelConfig):
        if model_name == self.card.name:
            return self.build(config)
        return None

    @hookimpl
    def preprocess(self, model_name: str, config: ModelConfig, image: np.ndarray):
        if model_name == self.card.name:
            return self.normalize(config, image)
        return None

    @hookimpl
    def postprocess(self, model_name: str, config: ModelConfig, outputs: Any):
        if model_name == self.card.name:
            return self.scores(config, outputs)
        return None

    @hookimpl
    def train_step(self, model_name: str, config: ModelConfig, model, images, labels):
        if model_name == self.card.name:
            return self.loss(config, model, images, labels)
        return None

    # -- what subclasses override --------------------------------------------------------
    def build(self, config: ModelConfig):
        """Return the ``paddle.nn.Layer`` for ``config``."""
        if self._build is None:
            raise PluginError(
                f"the plugin of {self.card.name} has no build function: pass build= or override build()"
            )
        return self._build(config)

    def normalize(self, config: ModelConfig, image: np.ndarray) -> np.ndarray:
        """BGR ``uint8`` H×W×3 → RGB, ``(x/255 - mean) / std``, ``float32`` 3×H×W."""
        return normalize_image(image, config.mean, config.std)

    def scores(self, config: ModelConfig, outputs: Any):
        """Eval-mode output → ``N×C×H×W`` scores: paddleseg models return ``[logits]``."""
        return outputs[0] if isinstance(outputs, (list, tuple)) else outputs

    def build_loss(self, config: ModelConfig) -> Callable:
        """The per-output loss ``f(logits N×C×H×W, labels N×H×W int64) -> scalar``.

        Default: cross entropy averaged over the pixels that are not ``ignore_index``;
        any other ``config.loss`` (``"ohem"``) is an error here, not a silent cross
        entropy: a plugin that offers it overrides this method.
        """
        import paddle.nn.functional as F

        if config.loss != "ce":
            raise ConfigError(
                f"Model.loss: {config.loss!r} is not implemented by the plugin of {self.card.name} "
                "(its loss is ModelPlugin's cross entropy); use loss: ce"
            )
        ignore = config.ignore_index

        def cross_entropy(logits, labels):
            return F.cross_entropy(logits, labels.unsqueeze(1), ignore_index=ignore, axis=1)

        return cross_entropy

    def loss(self, config: ModelConfig, model, images, labels) -> dict:
        """Train-mode forward; the outputs' losses weighted by ``config.loss_weights``."""
        outputs = model(images)
        if not isinstance(outputs, (list, tuple)):
            outputs = [outputs]
        weights = config.loss_weights
        if len(weights) != len(outputs):
            raise ConfigError(
                f"{self.card.name}: loss_weights has {len(weights)} entries but the network "
                f"returns {len(outputs)} outputs in train mode; give {len(outputs)} weights"
            )
        key = (config.loss, config.ignore_index)
        if key not in self._losses:
            self._losses[key] = self.build_loss(config)
        loss_fn = self._losses[key]
        terms = [loss_fn(out, labels) for out in outputs]
        total = terms[0] * weights[0]
        for w, t in zip(weights[1:], terms[1:]):
            total = total + t * w
        result = {"loss": total}
        if len(terms) > 1:
            result.update({f"loss_{i}": float(t) for i, t in enumerate(terms)})
        return result
