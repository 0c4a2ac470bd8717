"""MaskFormer_tiny / MaskFormer_small: mask classification on Swin-T / Swin-S (paddleseg 2.8.0's classes).

MaskFormer predicts a set of 100 (class, binary mask) pairs instead of
per-pixel logits. In segzoo it behaves like every other model:

* ``build``: paddleseg's ``MaskFormer`` with PaddleSeg's state-dict names (so
  the official weights load by name), its eval forward made batch-safe
  (:mod:`segzoo_plugins.maskformer.network`);
* ``postprocess``: the semantic inference, ``Σ_q softmax(class)[c] · sigmoid(mask)``
  over the queries, giving ``N×C×H×W`` scores at the input size; paddle
  operations only, so it is part of the exported graph;
* ``train_step``: the set-prediction loss (Hungarian matching, cross entropy
  with a 0.1 no-object weight, focal and dice mask losses, on every decoder
  layer) computed from the usual ``N×H×W`` label maps
  (:mod:`segzoo_plugins.maskformer.loss`).

Trained with AdamW (lr 6e-5, weight decay 0.01), 1500 warm-up iterations and
polynomial decay (power 0.9) on 512×512 crops, as in PaddleSeg / PaddleX.
Export needs a fixed 1×3×512×512 input (see the cards' ``export`` note).

Importing this module does not import paddle.
"""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import Field, ValidationInfo, field_validator

from segzoo import (
    ConfigError,
    ExportSupport,
    Figures,
    ModelCard,
    ModelConfig,
    ModelPlugin,
    PluginError,
)

from .._datasets import ADE20K

ADE20K_MASKFORMER_PROTOCOL = (
    "ADE20K val (2,000 images, 150 classes; the 'other' label 0 is ignored and the rest shifted "
    "down by one), each image resized so that its short side is 512 keeping the aspect ratio "
    "(PaddleSeg's ResizeByShort short_size 512, no cap on the long side), ImageNet mean/std "
    "normalisation, whole-image inference, single scale, no flipping; mIoU averaged over the 150 "
    "classes (PaddleSeg config maskformer_swin_*_ade20k_512x512_160k.yml; PaddleX's training yaml "
    "validates on a plain 512×512 resize instead)"
)

EXPORT_NOTE = (
    "static graph at a fixed 1×3×512×512 input only: the Swin backbone computes its window padding "
    "(ceil(H / 7), ceil(W / 7)) in Python, so the graph is traced for one input shape; resize inputs "
    "to 512×512. ONNX is not supported: paddle2onnx converts only the fully static graph, and "
    "MaskFormer_small's ONNX Runtime output did not match Paddle's (max abs difference 4 on logits "
    "near 10, unexplained), so segzoo does not offer an ONNX export of MaskFormer"
)


class MaskFormerConfig(ModelConfig):
    """Config of the MaskFormer models (AdamW, warm-up, polynomial decay, set-prediction loss)."""

    num_classes: int = Field(150, gt=0, le=65535, description="number of classes (255 is the ignore label)")
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    crop_size: tuple[int, int] = Field((512, 512), description="training crop (W, H)")
    optimizer: Literal["sgd", "adamw"] = "adamw"
    learning_rate: float = Field(6e-5, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    warmup_iters: int = Field(1500, ge=0)
    lr_power: float = Field(0.9, gt=0, description="power of the polynomial decay")
    grad_clip: Optional[float] = Field(
        0.01,
        gt=0,
        description="gradient clip at norm 0.01 (the original MaskFormer clips the global norm, "
        "PaddleSeg each gradient's)",
    )
    no_object_weight: float = Field(
        0.1, ge=0, le=1, description="weight of the 'no object' class in the classification loss"
    )
    class_weight: float = Field(1.0, ge=0, description="weight of the classification loss and cost")
    mask_weight: float = Field(20.0, ge=0, description="weight of the sigmoid focal mask loss and cost")
    dice_weight: float = Field(1.0, ge=0, description="weight of the dice mask loss and cost")
    deep_supervision: bool = Field(True, description="add the losses of the 5 earlier decoder layers")

    @field_validator("loss")
    @classmethod
    def _set_loss_only(cls, v):
        if v != "ce":
            raise ValueError(
                f"MaskFormer trains with its set-prediction loss, {v!r} does not apply; remove the key "
                "(tune no_object_weight, mask_weight, dice_weight instead)"
            )
        return v

    @field_validator("loss_weights")
    @classmethod
    def _one_output(cls, v):
        if len(v) != 1:
            raise ValueError(
                "MaskFormer has one train-mode output (its set prediction); give one weight, e.g. [1.0] "
                "(the decoder layers are weighted by deep_supervision)"
            )
        return v

    @field_validator("dice_weight")
    @classmethod
    def _some_weight(cls, v, info: ValidationInfo):
        # fields validate in declaration order: class_weight and mask_weight are in info.data
        if v + info.data.get("class_weight", 1.0) + info.data.get("mask_weight", 1.0) <= 0:
            raise ValueError("class_weight, mask_weight and dice_weight cannot all be 0; give one a weight > 0")
        return v


class MaskFormerPlugin(ModelPlugin):
    """One MaskFormer variant: paddleseg's network, semantic inference, set-prediction loss."""

    def __init__(self, card: ModelCard, variant: str):
        super().__init__(card)
        self.variant = variant
        self._criteria: dict = {}

    def build(self, config: MaskFormerConfig):
        """paddleseg's ``MaskFormer`` on the Swin backbone, batch-safe in eval mode (random weights)."""
        from .network import build_maskformer

        return build_maskformer(self.variant, config.num_classes)

    def scores(self, config: MaskFormerConfig, outputs: Any):
        """``N×C×H×W`` class scores from the eval-mode set prediction (paddle operations only).

        ``outputs`` is the network's eval output ``{"pred_logits", "pred_masks"}``
        (masks already at the input size); a list holding such a dict, or a list
        holding a ready ``N×C×H×W`` score tensor (paddleseg's own ``MaskFormer``
        in eval mode), is accepted too. The scores are probabilities summed over
        queries, in ``[0, Q]``, not logits.
        """
        # absolute import: paddle.jit.to_static rewrites this function, and relative imports
        # fail in the rewritten code ("attempted relative import with no known parent package")
        from segzoo_plugins.maskformer.network import semantic_scores

        if isinstance(outputs, (list, tuple)) and len(outputs) == 1:
            outputs = outputs[0]
        if isinstance(outputs, dict) and "pred_logits" in outputs and "pred_masks" in outputs:
            return semantic_scores(outputs["pred_logits"], outputs["pred_masks"])
        if getattr(outputs, "ndim", None) == 4:
            return outputs
        raise PluginError(
            f"{self.card.name}: postprocess expects the network's eval output (a dict with pred_logits "
            f"and pred_masks), got {type(outputs).__name__}; call model.eval() before predicting"
        )

    def criterion(self, config: MaskFormerConfig):
        """The :class:`~segzoo_plugins.maskformer.loss.SetCriterion` for ``config`` (cached)."""
        from .loss import SetCriterion

        key = (
            config.num_classes,
            config.ignore_index,
            config.no_object_weight,
            config.class_weight,
            config.mask_weight,
            config.dice_weight,
            config.deep_supervision,
        )
        if key not in self._criteria:
            self._criteria[key] = SetCriterion(
                num_classes=config.num_classes,
                ignore_index=config.ignore_index,
                no_object_weight=config.no_object_weight,
                class_weight=config.class_weight,
                mask_weight=config.mask_weight,
                dice_weight=config.dice_weight,
                deep_supervision=config.deep_supervision,
            )
        return self._criteria[key]

    def loss(self, config: MaskFormerConfig, model, images, labels) -> dict:
        """Train-mode forward and the set-prediction loss of ``labels`` (``N×H×W``, ignore = 255).

        Returns ``{"loss": tensor, "loss_ce", "loss_mask", "loss_dice"}``: the
        weighted terms summed over the decoder layers (floats), ``loss`` being
        their sum times ``loss_weights[0]``.
        """
        outputs = model(images)
        if isinstance(outputs, (list, tuple)):
            outputs = outputs[0]
        if not isinstance(outputs, dict) or "pred_logits" not in outputs:
            raise PluginError(
                f"{self.card.name}: the network's train-mode output is not MaskFormer's set prediction "
                f"({type(outputs).__name__}); was it built by this plugin?"
            )
        if list(labels.shape[-2:]) != list(images.shape[-2:]):
            raise ConfigError(
                f"{self.card.name}: labels are {list(labels.shape[-2:])} but images "
                f"{list(images.shape[-2:])} (H, W); crop or pad both to the same size"
            )
        terms = self.criterion(config)(outputs, labels)
        result = {"loss": terms["loss"] * config.loss_weights[0]}
        result.update({k: float(terms[k]) for k in ("loss_ce", "loss_mask", "loss_dice")})
        return result


# variant: (model name, mIoU on ADE20k, Swin depths)
_VARIANTS = {
    "tiny": ("MaskFormer_tiny", 46.69, "[2, 2, 6, 2]", "Swin-T"),
    "small": ("MaskFormer_small", 49.70, "[2, 2, 18, 2]", "Swin-S"),
}


def _plugin(variant: str) -> MaskFormerPlugin:
    name, miou, depths, swin = _VARIANTS[variant]
    card = ModelCard(
        name=name,
        family="maskformer",
        **ADE20K.card_fields(eval_protocol=ADE20K_MASKFORMER_PROTOCOL),
        description=f"MaskFormer: 100 (class, mask) queries on a {swin} backbone and an FPN pixel decoder",
        architecture=(
            f"MaskFormer / SwinTransformer_{variant}_patch4_window7_224_maskformer (depths {depths}, "
            "window 7), 100 queries, 6 decoder layers"
        ),
        figures=Figures(miou=miou),
        size_divisor=32,
        export=ExportSupport(
            static=True,
            dynamic_shape=False,
            fixed_input_shape=(1, 3, 512, 512),
            onnx=False,
            note=EXPORT_NOTE,
        ),
        official={"name": name, "backbone": "model"},  # PaddleX trains MaskFormer from the whole model
        config_class=MaskFormerConfig.with_defaults(
            f"MaskFormer{variant.capitalize()}Config", doc=f"Config of {name}."
        ),
    )
    return MaskFormerPlugin(card, variant)


MASKFORMER_TINY = _plugin("tiny")
MASKFORMER_SMALL = _plugin("small")

__all__ = ["MASKFORMER_SMALL", "MASKFORMER_TINY", "MaskFormerConfig", "MaskFormerPlugin"]
