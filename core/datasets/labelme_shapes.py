"""LabelMe shapes: check each shape of an annotation, and draw one into a mask.

The shape rules are written in :mod:`segzoo.datasets.labelme` (the converter
that uses them). Coordinates follow labelme (Qt: pixel ``i``'s centre at
``i + 0.5``) and are drawn with OpenCV at sub-pixel precision.
"""

from __future__ import annotations

import base64
import math
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

__all__ = ["AREA_TYPES", "SKIPPED_TYPES"]

AREA_TYPES = {None, "polygon", "rectangle", "oriented_rectangle", "circle", "mask"}
SKIPPED_TYPES = {"line", "linestrip", "point", "points"}
_SHIFT = 8  # sub-pixel bits for cv2 drawing (coordinates * 256)


class _Errors:
    """Problems of a conversion, each ``{file, shape, message}`` with ``file`` relative to ``src``."""

    def __init__(self, src: Path):
        self.src = src
        self.items: list[dict] = []

    def rel(self, path: Path) -> str:
        try:
            return path.relative_to(self.src).as_posix()
        except ValueError:
            return str(path)

    def add(self, path: Path, message: str, shape: Optional[int] = None):
        self.items.append({"file": self.rel(path), "shape": shape, "message": message})


def _points(shape: dict) -> Optional[np.ndarray]:
    pts = shape.get("points")
    try:
        arr = np.asarray(pts, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if arr.ndim != 2 or arr.shape[1] != 2 or not np.all(np.isfinite(arr)):
        return None
    return arr


def _fixed(pts: np.ndarray) -> np.ndarray:
    """LabelMe (Qt) coordinates put pixel i's centre at i + 0.5, OpenCV at i: shift by half a pixel."""
    return np.round((pts - 0.5) * (1 << _SHIFT)).astype(np.int32)


def _validate_shapes(path: Path, data: dict, errors: _Errors) -> list[tuple[int, dict, str]]:
    """Shapes to draw as (index, shape, label); errors and skips recorded."""
    good = []
    for i, shape in enumerate(data["shapes"]):
        if not isinstance(shape, dict):
            errors.add(path, f"shape #{i}: not an object", i)
            continue
        label = shape.get("label")
        if not isinstance(label, str) or not label.strip():
            errors.add(path, f"shape #{i}: missing or empty 'label'", i)
            continue
        stype = shape.get("shape_type")
        if stype in SKIPPED_TYPES:
            good.append((i, shape, label))  # skipped later (with a warning), but counted for class order
            continue
        if stype not in AREA_TYPES:
            errors.add(
                path,
                f"shape #{i} (label {label!r}): unsupported shape_type {stype!r}; "
                "supported: polygon, rectangle, oriented_rectangle, circle, mask",
                i,
            )
            continue
        pts = _points(shape)
        if pts is None:
            errors.add(path, f"shape #{i} (label {label!r}): 'points' must be a list of [x, y] numbers", i)
            continue
        if stype in (None, "polygon") and len(pts) < 3:
            errors.add(
                path,
                f"shape #{i} (label {label!r}): a polygon needs at least 3 points, it has {len(pts)}. "
                "Fix: redraw it in labelme or delete the shape",
                i,
            )
            continue
        if stype == "oriented_rectangle" and len(pts) != 4:
            errors.add(path, f"shape #{i} (label {label!r}): an oriented_rectangle needs 4 points, it has {len(pts)}", i)
            continue
        if stype in ("rectangle", "circle", "mask") and len(pts) != 2:
            errors.add(path, f"shape #{i} (label {label!r}): a {stype} needs 2 points, it has {len(pts)}", i)
            continue
        if stype == "mask" and not isinstance(shape.get("mask"), str):
            errors.add(path, f"shape #{i} (label {label!r}): a mask shape needs its base64 'mask' bitmap", i)
            continue
        good.append((i, shape, label))
    return good


def _draw(label_img: np.ndarray, shape: dict, value: int) -> None:
    stype = shape.get("shape_type")
    pts = _points(shape)
    if stype in (None, "polygon", "oriented_rectangle"):
        cv2.fillPoly(label_img, [_fixed(pts)], int(value), lineType=cv2.LINE_8, shift=_SHIFT)
    elif stype == "rectangle":
        (x0, y0), (x1, y1) = pts
        a = _fixed(np.array([min(x0, x1), min(y0, y1)], dtype=np.float64))
        b = _fixed(np.array([max(x0, x1), max(y0, y1)], dtype=np.float64))
        cv2.rectangle(label_img, tuple(int(v) for v in a), tuple(int(v) for v in b), int(value), -1, cv2.LINE_8, _SHIFT)
    elif stype == "circle":
        (cx, cy), (px, py) = pts
        r = math.hypot(px - cx, py - cy)
        c = _fixed(np.array([cx, cy], dtype=np.float64))
        cv2.circle(label_img, (int(c[0]), int(c[1])), int(round(r * (1 << _SHIFT))), int(value), -1, cv2.LINE_8, _SHIFT)
    elif stype == "mask":
        bits = cv2.imdecode(np.frombuffer(base64.b64decode(shape["mask"]), np.uint8), cv2.IMREAD_GRAYSCALE)
        if bits is None:
            raise ValueError("the base64 'mask' bitmap does not decode")
        x0, y0 = (int(v) for v in pts[0])
        h, w = label_img.shape
        bh, bw = bits.shape
        xa, ya = max(x0, 0), max(y0, 0)
        xb, yb = min(x0 + bw, w), min(y0 + bh, h)
        if xb > xa and yb > ya:
            sub = bits[ya - y0 : yb - y0, xa - x0 : xb - x0] > 0
            label_img[ya:yb, xa:xb][sub] = value
