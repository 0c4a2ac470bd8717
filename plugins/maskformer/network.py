"""The MaskFormer network: paddleseg 2.8.0's ``MaskFormer`` with a batch-safe eval forward.

Importing this module imports paddle and paddleseg; the plugin imports it only
inside its hooks.

Why a subclass: in eval mode paddleseg's ``MaskFormer.forward`` runs the
semantic inference image by image but returns only the *last* image's result
(``r[None, ...]`` after the loop), so a batch of N images gives one score map.
:class:`SegzooMaskFormer` keeps every layer, parameter name and the train-mode
output of paddleseg's class (official weights load by name, and
``isinstance(model, paddleseg.models.MaskFormer)`` holds) and changes only the
eval-mode output: the raw set prediction for the whole batch, with the masks
upsampled to the input size. The plugin's ``scores`` turns that into per-pixel
class scores (see :func:`semantic_scores`).
"""

from __future__ import annotations

import paddle
import paddle.nn.functional as F

from ..paddleseg_compat import import_paddleseg

import_paddleseg()

from paddleseg.models import MaskFormer  # noqa: E402  (after segzoo's fixes)
from paddleseg.models.backbones import swin_transformer  # noqa: E402

#: variant → paddleseg backbone class name (Swin, patch 4, window 7, 224 pre-training size)
BACKBONES = {
    "tiny": "SwinTransformer_tiny_patch4_window7_224_maskformer",
    "small": "SwinTransformer_small_patch4_window7_224_maskformer",
}


class SegzooMaskFormer(MaskFormer):
    """paddleseg's ``MaskFormer`` whose eval forward keeps the batch.

    Train mode (unchanged): ``[{"pred_logits": N×Q×(C+1), "pred_masks": N×Q×H/4×W/4,
    "aux_outputs": [5 such dicts, one per earlier decoder layer]}]``.

    Eval mode: ``{"pred_logits": N×Q×(C+1), "pred_masks": N×Q×H×W}``, the mask
    logits bilinearly resized to the input size (as paddleseg does before its
    semantic inference).
    """

    def forward(self, x):
        features = self.backbone(x)
        outputs = self.seghead(features)
        if self.training:
            return [outputs]
        masks = F.interpolate(
            outputs["pred_masks"], size=x.shape[-2:], mode="bilinear", align_corners=False
        )
        return {"pred_logits": outputs["pred_logits"], "pred_masks": masks}


def build_maskformer(variant: str, num_classes: int) -> SegzooMaskFormer:
    """MaskFormer with the Swin-``variant`` backbone (``"tiny"`` or ``"small"``), random weights.

    The state-dict names are those of ``paddleseg.models.MaskFormer(num_classes,
    backbone=SwinTransformer_<variant>_patch4_window7_224_maskformer())``.
    """
    if variant not in BACKBONES:
        raise ValueError(f"unknown MaskFormer variant {variant!r}; use one of {sorted(BACKBONES)}")
    backbone = getattr(swin_transformer, BACKBONES[variant])()
    return SegzooMaskFormer(num_classes=num_classes, backbone=backbone)


def semantic_scores(pred_logits, pred_masks):
    """Per-pixel class scores from a set prediction (MaskFormer's semantic inference).

    ``score[n, c, h, w] = Σ_q softmax(pred_logits[n, q])[c] · sigmoid(pred_masks[n, q, h, w])``,
    the no-object class (the last one) dropped after the softmax. Args are
    ``N×Q×(C+1)`` class logits and ``N×Q×H×W`` mask logits; returns ``N×C×H×W``.
    Paddle operations only (it is traced into exported graphs).
    """
    probs = F.softmax(pred_logits, axis=-1)[:, :, :-1]  # N×Q×C
    masks = F.sigmoid(pred_masks)  # N×Q×H×W
    h, w = masks.shape[-2], masks.shape[-1]
    flat = paddle.flatten(masks, start_axis=2)  # N×Q×HW
    scores = paddle.matmul(probs, flat, transpose_x=True)  # N×C×HW
    return paddle.reshape(scores, [0, 0, h, w])
