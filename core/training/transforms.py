"""Training augmentations on decoded ``(BGR uint8 H×W×3, label uint8 H×W)`` pairs.

The usual PaddleSeg recipe, in this order (each step skipped when its setting
turns it off):

1. :func:`random_scale` -- ResizeStepScaling: rescale by a factor drawn from
   ``min_scale, min_scale + step, ..., max_scale`` (continuous if ``step`` is 0);
   bilinear for the image, nearest for the label;
2. :func:`random_pad_crop` -- RandomPaddingCrop: pad to at least the crop size
   (image with grey 127, label with the ignore index), then crop a random
   window of exactly ``crop_size`` (W, H);
3. :func:`random_flip` -- horizontal flip;
4. :func:`random_distort` -- photometric distortion: brightness, contrast and
   saturation factors in ``1 ± range``, each applied with ``distort_prob``, in
   a random order.

Every random choice comes from the ``numpy.random.Generator`` passed in; the
trainer derives it from ``(seed, epoch, sample index)``, so augmentations do not
depend on the number of workers and a resumed run sees the same ones.
Normalisation is the model's ``preprocess`` hook, not a step here.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["Augment", "random_scale", "random_pad_crop", "random_flip", "random_distort"]

PAD_VALUE = 127


def random_scale(image, label, rng: np.random.Generator, min_scale: float, max_scale: float, step: float):
    """Rescale both by one random factor (ResizeStepScaling)."""
    if min_scale == max_scale == 1.0:
        return image, label
    if step > 0 and max_scale > min_scale:
        n = int(round((max_scale - min_scale) / step)) + 1
        factors = np.linspace(min_scale, max_scale, n)
        scale = float(factors[rng.integers(0, n)])
    else:
        scale = float(rng.uniform(min_scale, max_scale))
    h, w = label.shape[:2]
    nw, nh = max(1, int(round(w * scale))), max(1, int(round(h * scale)))
    if (nw, nh) == (w, h):
        return image, label
    image = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    label = cv2.resize(label, (nw, nh), interpolation=cv2.INTER_NEAREST)
    return image, label


def random_pad_crop(image, label, rng: np.random.Generator, crop_size: tuple[int, int], ignore_index: int = 255):
    """Pad to at least ``crop_size`` (W, H) and cut a random window of exactly that size."""
    cw, ch = crop_size
    h, w = label.shape[:2]
    pad_h, pad_w = max(ch - h, 0), max(cw - w, 0)
    if pad_h or pad_w:
        image = cv2.copyMakeBorder(image, 0, pad_h, 0, pad_w, cv2.BORDER_CONSTANT, value=(PAD_VALUE,) * 3)
        label = cv2.copyMakeBorder(label, 0, pad_h, 0, pad_w, cv2.BORDER_CONSTANT, value=ignore_index)
        h, w = label.shape[:2]
    y = int(rng.integers(0, h - ch + 1))
    x = int(rng.integers(0, w - cw + 1))
    return image[y : y + ch, x : x + cw], label[y : y + ch, x : x + cw]


def random_flip(image, label, rng: np.random.Generator, prob: float):
    """Mirror both left-right with probability ``prob``."""
    if prob > 0 and rng.random() < prob:
        return image[:, ::-1], label[:, ::-1]
    return image, label


def random_distort(image, rng: np.random.Generator, prob: float, brightness: float, contrast: float, saturation: float):
    """Brightness, contrast and saturation jitter (each with ``prob``, random order); returns uint8."""
    if prob <= 0 or not (brightness or contrast or saturation):
        return image
    ops = [("b", brightness), ("c", contrast), ("s", saturation)]
    order = rng.permutation(len(ops))
    out = None
    for i in order:
        kind, amount = ops[int(i)]
        # draw both numbers always, so the stream of draws does not depend on earlier outcomes
        apply, factor = rng.random() < prob, rng.uniform(1.0 - amount, 1.0 + amount)
        if not amount or not apply:
            continue
        if out is None:
            out = image.astype(np.float32)
        if kind == "b":
            out *= factor
        elif kind == "c":
            gray_mean = float(cv2.cvtColor(np.clip(out, 0, 255).astype(np.uint8), cv2.COLOR_BGR2GRAY).mean())
            out = (out - gray_mean) * factor + gray_mean
        else:
            gray = cv2.cvtColor(np.clip(out, 0, 255).astype(np.uint8), cv2.COLOR_BGR2GRAY).astype(np.float32)
            out = gray[..., None] + (out - gray[..., None]) * factor
    if out is None:
        return image
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class Augment:
    """The whole training pipeline for one sample; built from ``Train.augment`` and the crop size."""

    crop_size: tuple[int, int]
    ignore_index: int = 255
    min_scale: float = 0.5
    max_scale: float = 2.0
    scale_step: float = 0.25
    flip_prob: float = 0.5
    distort_prob: float = 0.5
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4

    @classmethod
    def from_config(cls, augment, crop_size, ignore_index: int = 255) -> "Augment":
        """From a :class:`segzoo.config.AugmentConfig` (or a dict of its fields)."""
        values = augment.model_dump() if hasattr(augment, "model_dump") else dict(augment)
        return cls(crop_size=tuple(crop_size), ignore_index=ignore_index, **values)

    def __call__(self, image: np.ndarray, label: np.ndarray, rng: np.random.Generator):
        image, label = random_scale(image, label, rng, self.min_scale, self.max_scale, self.scale_step)
        image, label = random_pad_crop(image, label, rng, self.crop_size, self.ignore_index)
        image, label = random_flip(image, label, rng, self.flip_prob)
        image = random_distort(image, rng, self.distort_prob, self.brightness, self.contrast, self.saturation)
        return np.ascontiguousarray(image), np.ascontiguousarray(label)
