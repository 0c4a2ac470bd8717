"""Drawn shapes: a procedurally generated segmentation dataset with exact labels.

Every image is a noisy, textured background with a few filled shapes drawn
on it; the label of a pixel is the class of the shape on top there:

====  ==========  ===========================
id    class       drawn as
====  ==========  ===========================
0     background  gradient + noise
1     circle      filled circle   
2     rectangle   filled axis-aligned box
3     triangle    filled triangle
====  ==========  ===========================

Colours are random per shape (so a model must learn the shapes, not the
colours), and shapes overlap. It needs only numpy and OpenCV, is fully
determined by its seed, and is what segzoo's convergence tests, the demo
model and the examples train on.
"""

from __future__ import annotations

from pathlib import Path
import cv2
import numpy as np

CLASS_NAMES = ("background", "circle", "rectangle", "triangle")


def draw_sample(
    rng: np.random.Generator, size: tuple[int, int] = (128, 128), max_shapes: int = 4, min_shapes: int = 1
):
    """One ``(image BGR uint8 H×W×3, label uint8 H×W)`` pair; ``size`` is ``(W, H)``."""
    w, h = size
    # background: a random linear gradient plus noise
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    direction = rng.uniform(-1, 1, size=2)
    grad = (xx / max(w, 1) * direction[0] + yy / max(h, 1) * direction[1])[..., None]
    base = rng.uniform(40, 200, size=3)
    image = base + 60 * grad * rng.uniform(-1, 1, size=3) + rng.normal(0, 12, size=(h, w, 3))
    image = np.clip(image, 0, 255).astype(np.uint8)
    label = np.zeros((h, w), np.uint8)

    short = min(w, h)
    for _ in range(int(rng.integers(min_shapes, max_shapes + 1))):
        cls = int(rng.integers(1, len(CLASS_NAMES)))
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        mask = np.zeros((h, w), np.uint8)
        cx, cy = int(rng.integers(w // 10, w - w // 10)), int(rng.integers(h // 10, h - h // 10))
        extent = int(rng.integers(max(short // 10, 3), max(short // 4, 4) + 1))
        if cls == 1:
            cv2.circle(mask, (cx, cy), extent, 1, thickness=-1)
        elif cls == 2:
            ex, ey = extent, int(extent * rng.uniform(0.5, 1.5))
            cv2.rectangle(mask, (cx - ex, cy - ey), (cx + ex, cy + ey), 1, thickness=-1)
        else:
            angles = rng.uniform(0, 2 * np.pi) + np.array([0, 2 * np.pi / 3, 4 * np.pi / 3])
            pts = np.stack([cx + extent * 1.3 * np.cos(angles), cy + extent * 1.3 * np.sin(angles)], 1)
            cv2.fillPoly(mask, [pts.round().astype(np.int32)], 1)
        inside = mask.astype(bool)
        image[inside] = colour
        label[inside] = cls
    return image, label


def make_shapes_dataset(
    root,
    num_train: int = 64,
    num_val: int = 16,
    size: tuple[int, int] = (128, 128),
    seed: int = 0,
    image_ext: str = ".jpg",
) -> Path:
    """Write a SegDataset of drawn shapes under ``root`` and return ``root``.

    Layout: ``images/``, ``annotations/``, ``train.txt``, ``val.txt`` and
    ``class_name.txt``, as :class:`segzoo.datasets.SegDataset` reads it.
    """
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    lines: dict[str, list[str]] = {"train": [], "val": []}
    for split, count in (("train", num_train), ("val", num_val)):
        for i in range(count):
            image, label = draw_sample(rng, size)
            stem = f"{split}_{i:05d}"
            image_rel, label_rel = f"images/{stem}{image_ext}", f"annotations/{stem}.png"
            params = [cv2.IMWRITE_JPEG_QUALITY, 95] if image_ext.lower() in (".jpg", ".jpeg") else []
            cv2.imwrite(str(root / image_rel), image, params)
            cv2.imwrite(str(root / label_rel), label)
            lines[split].append(f"{image_rel} {label_rel}")
    for split, entries in lines.items():
        (root / f"{split}.txt").write_text("\n".join(entries) + "\n", encoding="utf-8")
    (root / "class_name.txt").write_text("\n".join(CLASS_NAMES) + "\n", encoding="utf-8")
    return root


def shapes_image(seed: int = 2024, size: tuple[int, int] = (256, 192)) -> tuple:
    """One larger sample with 4 to 6 shapes, for demos: ``(image, label)``."""
    return draw_sample(np.random.default_rng(seed), size, max_shapes=6, min_shapes=4)
