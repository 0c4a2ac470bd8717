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

Colours are random per shape, so a model must learn the shapes, not the
colours. By default shapes may overlap and may be close in colour to the
background (the built-in demo model was trained so); ``overlap=False`` and
``min_contrast`` draw them apart and visible, which is what the training
real check (``examples/shapes_real_check.py``) and its CI test use. It needs
only numpy and OpenCV, is fully determined by its seed, and is what segzoo's
convergence tests, the demo model and the examples train on.
"""

from __future__ import annotations

from pathlib import Path
import cv2
import numpy as np

CLASS_NAMES = ("background", "circle", "rectangle", "triangle")


GAP = 3  #: pixels kept free between shapes when ``overlap=False``
PLACEMENT_TRIES = 30  #: positions tried for a shape before it is left out (``overlap=False``)


def _shape_mask(rng: np.random.Generator, cls: int, w: int, h: int, lo: int, hi: int) -> np.ndarray:
    """A uint8 0/1 mask of one shape of class ``cls`` with a random centre and a radius in ``lo..hi``."""
    mask = np.zeros((h, w), np.uint8)
    cx, cy = int(rng.integers(w // 10, w - w // 10)), int(rng.integers(h // 10, h - h // 10))
    extent = int(rng.integers(lo, hi + 1))
    if cls == 1:
        cv2.circle(mask, (cx, cy), extent, 1, thickness=-1)
    elif cls == 2:
        ex, ey = extent, int(extent * rng.uniform(0.5, 1.5))
        cv2.rectangle(mask, (cx - ex, cy - ey), (cx + ex, cy + ey), 1, thickness=-1)
    else:
        angles = rng.uniform(0, 2 * np.pi) + np.array([0, 2 * np.pi / 3, 4 * np.pi / 3])
        pts = np.stack([cx + extent * 1.3 * np.cos(angles), cy + extent * 1.3 * np.sin(angles)], 1)
        cv2.fillPoly(mask, [pts.round().astype(np.int32)], 1)
    return mask


def _contrasting(colour: tuple, background: np.ndarray, min_distance: float) -> tuple:
    """``colour``, or the colour-cube corner farthest from ``background`` when it is closer than ``min_distance``."""
    if np.linalg.norm(np.asarray(colour, np.float64) - background) >= min_distance:
        return colour
    return tuple(255 if v < 128 else 0 for v in background)


def draw_sample(
    rng: np.random.Generator,
    size: tuple[int, int] = (128, 128),
    max_shapes: int = 4,
    min_shapes: int = 1,
    *,
    overlap: bool = True,
    min_contrast: float = 0.0,
    extent: tuple[float, float] = (0.1, 0.25),
):
    """One ``(image BGR uint8 H×W×3, label uint8 H×W)`` pair; ``size`` is ``(W, H)``.

    ``overlap=False`` keeps every shape at least :data:`GAP` pixels away from
    the others (a shape that finds no room in :data:`PLACEMENT_TRIES` tries is
    left out, so an image may have fewer than ``min_shapes``; the first one is
    always drawn). ``min_contrast`` is the least Euclidean distance, in BGR
    units (0..441), between a shape's colour and the mean background under it;
    a colour drawn closer is replaced by the corner of the colour cube farthest
    from that background. ``extent`` is the range of a shape's radius (half
    side) as a fraction of the image's short side. The defaults keep the
    original generator: overlapping shapes, any colour, extents 0.1..0.25.
    """
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
    taken = np.zeros((h, w), np.uint8)  # shapes drawn so far, grown by GAP (overlap=False)
    lo, hi = max(int(short * extent[0]), 3), max(int(short * extent[1]), 4)
    for _ in range(int(rng.integers(min_shapes, max_shapes + 1))):
        cls = int(rng.integers(1, len(CLASS_NAMES)))
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        for _ in range(PLACEMENT_TRIES):  # `taken` stays empty with overlap: the first try fits
            mask = _shape_mask(rng, cls, w, h, lo, hi)
            if not (mask & taken).any():
                break
        else:
            continue  # no room left for this shape
        inside = mask.astype(bool)
        if min_contrast > 0:
            colour = _contrasting(colour, image[inside].reshape(-1, 3).mean(0), min_contrast)
        image[inside] = colour
        label[inside] = cls
        if not overlap:
            taken |= cv2.dilate(mask, np.ones((2 * GAP + 1, 2 * GAP + 1), np.uint8))
    return image, label


def make_shapes_dataset(
    root,
    num_train: int = 64,
    num_val: int = 16,
    size: tuple[int, int] = (128, 128),
    seed: int = 0,
    image_ext: str = ".jpg",
    **draw_options,
) -> Path:
    """Write a SegDataset of drawn shapes under ``root`` and return ``root``.

    Layout: ``images/``, ``annotations/``, ``train.txt``, ``val.txt`` and
    ``class_name.txt``, as :class:`segzoo.datasets.SegDataset` reads it.
    ``draw_options`` (``max_shapes``, ``min_shapes``, ``overlap``,
    ``min_contrast``, ``extent``) go to :func:`draw_sample` for every image,
    train and val alike.
    """
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    lines: dict[str, list[str]] = {"train": [], "val": []}
    for split, count in (("train", num_train), ("val", num_val)):
        for i in range(count):
            image, label = draw_sample(rng, size, **draw_options)
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
