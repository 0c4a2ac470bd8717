"""The hook specifications of segzoo: the contract between the core and every model plugin.

Each model is one plugin object, registered under the model's name through the
``segzoo.models`` entry-point group (see :mod:`segzoo.registry`). The core calls
the hooks below through :class:`segzoo.registry.Registry`; nothing else calls
``pm.hook`` directly.

Every per-model hook is ``firstresult`` and receives ``model_name``: the
implementation of the plugin that provides that model answers, every other
plugin returns ``None``. :class:`segzoo.plugin.ModelPlugin` does that dispatch
for you. A third-party plugin may also wrap a hook for *every* model with
``@hookimpl(wrapper=True)`` (for example test-time augmentation around
``postprocess``).

Rule for implementers: importing the module that defines the plugin object must
not import paddle or paddleseg. Import them inside ``build_model`` and friends.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:  # pragma: no cover - typing only
    import numpy as np

    from .card import ModelCard, ModelConfig

PROJECT = "segzoo"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def model_card() -> "ModelCard":
    """Describe the model this plugin provides, cheaply.

    Called by: the registry when it lists or looks up models (``segzoo
    list-models``, ``segzoo.list_models()``, ``segzoo.get_model_card()``).

    Returns: a :class:`segzoo.ModelCard`: the model's name (the entry-point
    name), family, dataset, published figures, evaluation protocol, export
    support and its pydantic config class (``card.config_class``). Must not
    import paddle.
    """


@hookspec(firstresult=True)
def build_model(model_name: str, config: "ModelConfig") -> Any:
    """Build the network of ``model_name``.

    Called by: ``segzoo.build_model()``, the predictor, the trainer and export.

    Args:
        model_name: the model to build; return ``None`` if it is not yours.
        config: the validated instance of the model's config class (its
            ``num_classes``, sizes, ``pretrained`` weights path, ...).

    Returns: a ``paddle.nn.Layer`` whose state-dict names follow PaddleSeg's,
    with random or pretrained weights (the core loads ``config.pretrained``
    afterwards, so plugins need not). In eval mode its forward returns what
    :func:`postprocess` turns into class scores.
    """


@hookspec(firstresult=True)
def preprocess(model_name: str, config: "ModelConfig", image: "np.ndarray") -> "np.ndarray":
    """Turn one decoded image into the network's input.

    Called by: the predictor, the evaluator and the trainer's data pipeline,
    once per image, after any resizing to ``target_size``.

    Args:
        model_name: return ``None`` if it is not yours.
        config: the model's config (``mean``, ``std``, ...).
        image: ``H×W×3`` ``uint8`` array in BGR order, as OpenCV reads it.

    Returns: a ``3×H×W`` ``float32`` array at the same ``H×W`` (the core feeds
    it to the network at that size; only a card with ``pad_to`` has it padded
    to a multiple of that, and the scores cropped back).
    """


@hookspec(firstresult=True)
def postprocess(model_name: str, config: "ModelConfig", outputs: Any) -> Any:
    """Turn the network's eval-mode output into per-pixel class scores.

    Called by: the predictor, the evaluator and export (it is traced into the
    exported graph, so use paddle operations only).

    Args:
        model_name: return ``None`` if it is not yours.
        config: the model's config.
        outputs: whatever the network returned in eval mode for an
            ``N×3×H×W`` batch.

    Returns: a ``paddle.Tensor`` ``N×C×H×W`` of class scores (logits or
    probabilities) at the input size ``H×W``; the core takes the argmax.
    """


@hookspec(firstresult=True)
def train_step(
    model_name: str, config: "ModelConfig", model: Any, images: Any, labels: Any
) -> dict[str, Any]:
    """Compute the training loss of one batch.

    Called by: the trainer, once per iteration, with the model in train mode;
    the trainer then runs backward, gradient clipping and the optimizer step,
    so this hook must not.

    Args:
        model_name: return ``None`` if it is not yours.
        config: the model's config (``loss_weights``, ``ignore_index``, ...).
        model: the network built by :func:`build_model`.
        images: ``float32`` ``N×3×H×W`` ``paddle.Tensor`` (preprocessed).
        labels: ``int64`` ``N×H×W`` ``paddle.Tensor``; ``config.ignore_index``
            marks pixels without a label.

    Returns: ``{"loss": scalar Tensor, ...}``; other entries (floats or
    scalar tensors) are loss terms that the trainer logs.
    """
