"""MaskFormer's set-prediction loss, built from an ordinary semantic label map.

Every segzoo model trains on the same data: an ``N×H×W`` ``int64`` label map
with ``ignore_index`` (255) on unlabelled pixels. MaskFormer predicts a *set*
of ``Q`` (class, mask) pairs instead of per-pixel logits, so for each image
this module

1. turns the label map into one binary target mask per class present
   (:func:`semantic_targets`), remembering which pixels are labelled;
2. matches the ``Q`` predictions one-to-one to those targets with the
   Hungarian algorithm (:meth:`SetCriterion.match`,
   ``scipy.optimize.linear_sum_assignment``) on the cost
   ``class_weight·(−p(class)) + mask_weight·focal + dice_weight·dice``;
3. scores the matched set: cross entropy of every prediction's class (the
   unmatched ones against "no object", weighted ``no_object_weight``), plus a
   sigmoid focal loss and a dice loss of every matched mask against its target,
   the mask losses averaged over the number of target masks;

for the last decoder layer and, with deep supervision, for each of the five
earlier ones (each matched on its own). The weights are PaddleSeg's
(``MaskFormerLoss``: cross entropy 1, focal 20, dice 1, no-object 0.1, same
weights in the matching cost).

One deliberate difference from paddleseg's ``MaskFormerLoss`` (and the
original MaskFormer): pixels marked ``ignore_index`` take no part in the mask
losses nor in the matching cost. There, an ignored pixel counts as background
of every mask, so padding and unlabelled regions teach every mask to be off
there. Here the focal loss is averaged over the labelled pixels only and the
dice loss sees no ignored pixel. On a label map without ignored pixels both
give the same number.

paddleseg's own ``MaskFormerLoss`` is not used: it expects
``GenerateInstanceTargets``' padded ``num_classes×H×W`` target tensor per
image, and it fails on Paddle 3 / numpy 2 (``int()`` of a one-element array in
its ``forward``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import paddle
import paddle.nn.functional as F
from scipy.optimize import linear_sum_assignment

from segzoo import DatasetError


@dataclass
class Target:
    """The set-prediction target of one image.

    ``classes``: ``K`` class ids (``int64``), ascending; ``masks``: ``K×H×W``
    ``float32`` binary masks, one per class; ``valid``: ``H×W`` ``float32``,
    1 where the pixel is labelled.
    """

    classes: paddle.Tensor
    masks: paddle.Tensor
    valid: paddle.Tensor

    @property
    def num(self) -> int:
        return int(self.classes.shape[0])


def semantic_targets(label: np.ndarray, num_classes: int, ignore_index: int = 255) -> tuple:
    """Per-class binary masks of one ``H×W`` semantic label map.

    Returns ``(classes int64[K], masks bool[K,H,W], valid bool[H,W])`` for the
    ``K`` classes present (ascending); ignored pixels are in no mask and not
    ``valid``. Raises :class:`segzoo.DatasetError` for a label outside
    ``0..num_classes-1`` that is not ``ignore_index``.
    """
    label = np.asarray(label)
    valid = label != ignore_index
    present = np.unique(label[valid]).astype(np.int64)
    bad = present[(present < 0) | (present >= num_classes)]
    if bad.size:
        raise DatasetError(
            f"label value(s) {bad.tolist()} outside 0..{num_classes - 1} (num_classes={num_classes}) "
            f"and not the ignore value {ignore_index}: fix the annotation PNGs (run `segzoo "
            "check-dataset`) or set num_classes"
        )
    masks = label[None, :, :] == present[:, None, None]
    return present, masks, valid


def batch_focal_cost(logits, targets, valid, alpha: float = 0.25, gamma: float = 2.0):
    """Sigmoid focal loss of every prediction against every target: ``Q×K``.

    ``logits`` ``Q×P`` mask logits, ``targets`` ``K×P`` binary masks, ``valid``
    ``P`` (1 on labelled pixels); averaged over the labelled pixels.
    """
    prob = F.sigmoid(logits)
    pos = (1 - prob) ** gamma * F.binary_cross_entropy_with_logits(
        logits, paddle.ones_like(logits), reduction="none"
    )
    neg = prob**gamma * F.binary_cross_entropy_with_logits(
        logits, paddle.zeros_like(logits), reduction="none"
    )
    if alpha >= 0:
        pos, neg = pos * alpha, neg * (1 - alpha)
    pos, neg = pos * valid, neg * valid
    cost = paddle.matmul(pos, targets, transpose_y=True) + paddle.matmul(neg, 1 - targets, transpose_y=True)
    return cost / paddle.clip(valid.sum(), min=1.0)


def batch_dice_cost(logits, targets, valid):
    """Dice loss of every prediction against every target: ``Q×K`` (labelled pixels only)."""
    prob = F.sigmoid(logits) * valid
    numerator = 2 * paddle.matmul(prob, targets, transpose_y=True)
    denominator = prob.sum(-1, keepdim=True) + targets.sum(-1).unsqueeze(0)
    return 1 - (numerator + 1) / (denominator + 1)


class SetCriterion:
    """MaskFormer's set-prediction loss on semantic label maps.

    Args:
        num_classes: ``C``; the network predicts ``C + 1`` logits per query, the
            last being "no object".
        ignore_index: label value of unlabelled pixels.
        no_object_weight: weight of the "no object" class in the cross entropy.
        class_weight, mask_weight, dice_weight: weights of the cross entropy,
            focal and dice terms, in the loss and in the matching cost.
        focal_alpha, focal_gamma: of the sigmoid focal loss.
        deep_supervision: add the loss of every auxiliary decoder output.
    """

    def __init__(
        self,
        num_classes: int,
        ignore_index: int = 255,
        no_object_weight: float = 0.1,
        class_weight: float = 1.0,
        mask_weight: float = 20.0,
        dice_weight: float = 1.0,
        focal_alpha: float = 0.25,
        focal_gamma: float = 2.0,
        deep_supervision: bool = True,
    ):
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.no_object_weight = no_object_weight
        self.class_weight = class_weight
        self.mask_weight = mask_weight
        self.dice_weight = dice_weight
        self.focal_alpha = focal_alpha
        self.focal_gamma = focal_gamma
        self.deep_supervision = deep_supervision

    # -- targets ----------------------------------------------------------------------
    def targets(self, labels) -> list[Target]:
        """One :class:`Target` per image of an ``N×H×W`` label batch (tensor or array)."""
        array = labels.numpy() if isinstance(labels, paddle.Tensor) else np.asarray(labels)
        if array.ndim != 3:
            raise DatasetError(f"MaskFormer's loss needs N×H×W label maps, got shape {list(array.shape)}")
        result = []
        for label in array:
            classes, masks, valid = semantic_targets(label, self.num_classes, self.ignore_index)
            result.append(
                Target(
                    classes=paddle.to_tensor(classes, dtype="int64"),
                    masks=paddle.to_tensor(masks.astype(np.float32)),
                    valid=paddle.to_tensor(valid.astype(np.float32)),
                )
            )
        return result

    # -- matching ---------------------------------------------------------------------
    @paddle.no_grad()
    def match(self, pred_logits, pred_masks, targets: list[Target]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Hungarian matching of each image's ``Q`` predictions to its targets.

        ``pred_logits`` ``N×Q×(C+1)``, ``pred_masks`` ``N×Q×h×w`` (targets are
        resized to ``h×w`` with nearest-neighbour sampling for the cost).
        Returns per image ``(query indices, target indices)``, both ``int64``,
        ``min(Q, K)`` long, sorted by query.
        """
        indices = []
        h, w = pred_masks.shape[-2:]
        for b, target in enumerate(targets):
            if target.num == 0:
                empty = np.zeros([0], np.int64)
                indices.append((empty, empty))
                continue
            prob = F.softmax(pred_logits[b].detach().astype("float32"), axis=-1)
            cost_class = -paddle.gather(prob, target.classes, axis=1)  # Q×K
            small = F.interpolate(
                paddle.concat([target.masks, target.valid[None]], axis=0)[None],
                size=[h, w],
                mode="nearest",
            )[0]
            tgt = paddle.flatten(small[:-1], start_axis=1)
            valid = paddle.flatten(small[-1:], start_axis=0)
            out = paddle.flatten(pred_masks[b].detach().astype("float32"), start_axis=1)
            cost = (
                self.class_weight * cost_class
                + self.mask_weight * batch_focal_cost(out, tgt, valid, self.focal_alpha, self.focal_gamma)
                + self.dice_weight * batch_dice_cost(out, tgt, valid)
            )
            rows, cols = linear_sum_assignment(cost.numpy())
            indices.append((rows.astype(np.int64), cols.astype(np.int64)))
        return indices

    # -- losses -----------------------------------------------------------------------
    def class_loss(self, pred_logits, indices, targets: list[Target]):
        """Weighted cross entropy of every query's class; unmatched queries → no object."""
        n, q, c1 = pred_logits.shape
        target_classes = np.full([n, q], c1 - 1, np.int64)
        for b, ((rows, cols), target) in enumerate(zip(indices, targets)):
            if len(rows):
                target_classes[b, rows] = target.classes.numpy()[cols]
        target_classes = paddle.to_tensor(target_classes)
        class_weights = np.ones([c1], np.float32)
        class_weights[-1] = self.no_object_weight
        class_weights = paddle.to_tensor(class_weights)
        logp = F.log_softmax(pred_logits.astype("float32"), axis=-1)
        nll = -paddle.take_along_axis(logp, target_classes.unsqueeze(-1), axis=-1).squeeze(-1)
        weights = paddle.gather(class_weights, target_classes.flatten()).reshape([n, q])
        return (nll * weights).sum() / weights.sum()

    def mask_losses(self, pred_masks, indices, targets: list[Target], num_masks: float):
        """Sigmoid focal and dice losses of the matched masks at the label resolution."""
        src, tgt, valid = [], [], []
        for b, ((rows, cols), target) in enumerate(zip(indices, targets)):
            if not len(rows):
                continue
            src.append(paddle.gather(pred_masks[b], paddle.to_tensor(rows), axis=0))
            cols_t = paddle.to_tensor(cols)
            tgt.append(paddle.gather(target.masks, cols_t, axis=0))
            valid.append(target.valid.unsqueeze(0).expand([len(cols), -1, -1]))
        if not src:  # no labelled pixel in the batch: keep the graph, add nothing
            zero = pred_masks.sum() * 0.0
            return zero, zero
        src = paddle.concat(src).astype("float32")
        tgt = paddle.concat(tgt)
        valid = paddle.concat(valid)
        src = F.interpolate(src.unsqueeze(1), size=tgt.shape[-2:], mode="bilinear", align_corners=False)
        src = paddle.flatten(src.squeeze(1), start_axis=1)
        tgt = paddle.flatten(tgt, start_axis=1)
        valid = paddle.flatten(valid, start_axis=1)

        prob = F.sigmoid(src)
        bce = F.binary_cross_entropy_with_logits(src, tgt, reduction="none")
        p_t = prob * tgt + (1 - prob) * (1 - tgt)
        focal = bce * (1 - p_t) ** self.focal_gamma
        if self.focal_alpha >= 0:
            focal = focal * (self.focal_alpha * tgt + (1 - self.focal_alpha) * (1 - tgt))
        per_mask = (focal * valid).sum(-1) / paddle.clip(valid.sum(-1), min=1.0)
        loss_mask = per_mask.sum() / num_masks

        prob = prob * valid
        numerator = 2 * (prob * tgt).sum(-1)
        denominator = prob.sum(-1) + tgt.sum(-1)
        loss_dice = (1 - (numerator + 1) / (denominator + 1)).sum() / num_masks
        return loss_mask, loss_dice

    def layer_losses(self, outputs: dict, targets: list[Target], num_masks: float, indices=None) -> dict:
        """Unweighted ``loss_ce``, ``loss_mask``, ``loss_dice`` of one decoder layer's output."""
        if indices is None:
            indices = self.match(outputs["pred_logits"], outputs["pred_masks"], targets)
        loss_mask, loss_dice = self.mask_losses(outputs["pred_masks"], indices, targets, num_masks)
        return {
            "loss_ce": self.class_loss(outputs["pred_logits"], indices, targets),
            "loss_mask": loss_mask,
            "loss_dice": loss_dice,
        }

    def __call__(self, outputs: dict, labels, targets: Optional[list[Target]] = None) -> dict:
        """The total loss and its weighted terms, summed over the decoder layers.

        ``outputs``: the train-mode dict (``pred_logits``, ``pred_masks``,
        ``aux_outputs``); ``labels``: ``N×H×W`` label maps. Returns tensors
        ``{"loss", "loss_ce", "loss_mask", "loss_dice"}`` with
        ``loss == loss_ce + loss_mask + loss_dice``.
        """
        if targets is None:
            targets = self.targets(labels)
        num_masks = float(max(sum(t.num for t in targets), 1))
        layers = [outputs]
        if self.deep_supervision:
            layers += list(outputs.get("aux_outputs") or [])
        weights = {"loss_ce": self.class_weight, "loss_mask": self.mask_weight, "loss_dice": self.dice_weight}
        totals = {}
        for layer in layers:
            for key, value in self.layer_losses(layer, targets, num_masks).items():
                term = value * weights[key]
                totals[key] = term if key not in totals else totals[key] + term
        totals["loss"] = totals["loss_ce"] + totals["loss_mask"] + totals["loss_dice"]
        return totals
