"""Input sizes: ``target_size`` parsing and priority, sliding windows, scores resized back.

``target_size`` follows PaddleX:

* ``-1`` (or ``(-1, -1)``): the original size, no resizing;
* an int ``n``: ``(n, n)``;
* a pair ``(W, H)``: width first;
* ``None``: "not decided here", the next level decides.

The levels, highest first: the ``predict()`` argument, the ``create_model()``
argument, the model directory's ``inference.yml`` (a ``Resize`` in
``Deploy.transforms``), and at the bottom the original size.

A ``target_size`` given here resizes to exactly ``(W, H)``. (PaddleX's own
predictor keeps the aspect ratio inside the ``(W, H)`` box and rounds the
sides up to a multiple of 32; a ``Resize`` read from an ``inference.yml``
does the same here, with the ``keep_ratio`` / ``size_divisor`` it names.)
"""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np

from ..errors import ConfigError

ORIGINAL = (-1, -1)

#: the text forms of a size: ``N`` (``-1`` included), ``W,H`` or ``WxH``
_SIZE_TEXT = re.compile(r"(?P<n>[+-]?\d+)|(?P<w>\d+)\s*(?:,|x|X|×)\s*(?P<h>\d+)")

#: above this many pixels (after any resizing) an image is predicted window by window
DEFAULT_MAX_PIXELS = 4096 * 4096

#: the largest image (width × height, after resizing) ``predict`` accepts: Pillow's decompression-bomb
#: limit (2 × ``PIL.Image.MAX_IMAGE_PIXELS``), so the largest image segzoo decodes; a ``target_size``
#: above it is refused before any buffer is allocated. Raise it with ``pixel_limit=`` / ``--pixel-limit``
#: (the HTTP service has the same kind of limit, ``--max-pixels``).
DEFAULT_PIXEL_LIMIT = 2 * 89_478_485

PIXEL_LIMIT_HINT = "raise the limit with --pixel-limit N (pixel_limit=N in create_model)"


def parse_size(value: Any, what: str = "target_size", allow_original: bool = True) -> Optional[tuple[int, int]]:
    """Normalise a size to ``None``, ``(-1, -1)`` or ``(W, H)`` with positive sides.

    Accepts ints, pairs, and the strings the CLI passes: ``"-1"``, ``"512"``,
    ``"1024,512"`` and ``"1024x512"`` (width first), nothing else (``"10,x"``
    is an error, not 10×10). Raises :class:`ConfigError` naming ``what``.
    """
    if value is None:
        return None
    hint = "use -1 (original size), an int n for (n, n), or a pair (W, H) of positive ints"
    if not allow_original:
        hint = "use an int n for (n, n) or a pair (W, H) of positive ints"
    if isinstance(value, str):
        match = _SIZE_TEXT.fullmatch(value.strip())
        if match is None:
            forms = "-1 (original size), N for N×N, or W,H (WxH works too)" if allow_original else "N for N×N, or W,H"
            raise ConfigError(f"{what}: {value!r} is not a size; write {forms} with positive whole numbers")
        value = int(match["n"]) if match["n"] is not None else (int(match["w"]), int(match["h"]))
    if isinstance(value, bool):
        raise ConfigError(f"{what}: {value!r} is not a size; {hint}")
    if isinstance(value, numbers.Integral):
        n = int(value)
        if n == -1 and allow_original:
            return ORIGINAL
        if n <= 0:
            raise ConfigError(f"{what}: {n} is not a valid size; {hint}")
        return (n, n)
    if hasattr(value, "tolist") and not isinstance(value, numbers.Number):  # numpy arrays
        value = value.tolist()
    if isinstance(value, Sequence) and len(value) == 2:
        try:
            w, h = (int(v) for v in value)
        except (TypeError, ValueError):
            raise ConfigError(f"{what}: {value!r} is not a size; {hint}") from None
        if any(isinstance(v, float) and not float(v).is_integer() for v in value):
            raise ConfigError(f"{what}: {value!r} has non-integer sides; {hint}")
        if (w, h) == ORIGINAL and allow_original:
            return ORIGINAL
        if w <= 0 or h <= 0:
            raise ConfigError(f"{what}: {value!r} is not a valid size; {hint}")
        return (w, h)
    raise ConfigError(f"{what}: {value!r} is not a size; {hint}")


@dataclass(frozen=True)
class ResizePlan:
    """How to resize an image before the network: exact ``(W, H)``, or PaddleX's keep-ratio box."""

    size: tuple[int, int] = ORIGINAL
    keep_ratio: bool = False
    size_divisor: Optional[int] = None

    @property
    def is_original(self) -> bool:
        return self.size == ORIGINAL

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        """The ``(W, H)`` an image of ``width × height`` is resized to."""
        if self.is_original:
            return width, height
        tw, th = self.size
        if self.keep_ratio:
            scale = min(max(tw, th) / max(width, height), min(tw, th) / min(width, height))
            tw, th = max(1, round(width * scale)), max(1, round(height * scale))
        if self.size_divisor:
            d = self.size_divisor
            tw, th = ceil_to(tw, d), ceil_to(th, d)
        return tw, th


def resolve_target_size(*levels: Any) -> ResizePlan:
    """The first level that is not ``None`` decides (see the module docstring).

    Each level is ``None``, a size accepted by :func:`parse_size`, or a
    :class:`ResizePlan` (what an ``inference.yml`` contributes).
    """
    for level in levels:
        if level is None:
            continue
        if isinstance(level, ResizePlan):
            return level
        return ResizePlan(parse_size(level))
    return ResizePlan(ORIGINAL)


def ceil_to(n: int, divisor: int) -> int:
    """``n`` rounded up to a multiple of ``divisor``."""
    return int(math.ceil(n / divisor) * divisor)


def window_grid(height: int, width: int, window: tuple[int, int], stride: tuple[int, int]) -> list[tuple[int, int, int, int]]:
    """Sliding windows ``(y1, y2, x1, x2)`` covering ``height × width``.

    ``window`` and ``stride`` are ``(W, H)``. Windows start every ``stride``
    pixels; the last row/column is moved back to end at the image's edge, so
    every window has the same size (``min(window, image)``) and together they
    cover every pixel (PaddleSeg's ``slide_inference`` grid).
    """
    ww, wh = min(window[0], width), min(window[1], height)
    sw, sh = stride
    rows = max(int(math.ceil((height - wh) / sh)), 0) + 1
    cols = max(int(math.ceil((width - ww) / sw)), 0) + 1
    boxes = []
    for r in range(rows):
        for c in range(cols):
            y2 = min(r * sh + wh, height)
            x2 = min(c * sw + ww, width)
            y1, x1 = max(y2 - wh, 0), max(x2 - ww, 0)
            box = (y1, y2, x1, x2)
            if box not in boxes:
                boxes.append(box)
    return boxes


def check_pixel_limit(value: Any) -> Optional[int]:
    """Validate a ``pixel_limit``: a positive int, or ``None`` for no limit."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ConfigError(f"pixel_limit: {value!r} must be a positive int (width × height), or None for no limit")
    return int(value)


def check_size_pixels(size: Optional[tuple[int, int]], limit: Optional[int], what: str = "target_size") -> None:
    """Refuse a ``(W, H)`` above ``limit`` pixels (``-1`` sizes and ``None`` pass), naming ``what``."""
    if limit is None or size is None or size == ORIGINAL:
        return
    w, h = size
    if w * h > limit:
        raise ConfigError(
            f"{what} {w}×{h} = {w * h:,} pixels is above the limit of {limit:,} pixels per image; "
            f"choose a smaller size, or {PIXEL_LIMIT_HINT}"
        )


def parse_slide(window: Any, stride: Any) -> Optional[tuple[tuple[int, int], tuple[int, int]]]:
    """Validate ``slide_window`` / ``slide_stride`` (both ``(W, H)``; the stride defaults to 3/4 of the window)."""
    if window is None:
        if stride is not None:
            raise ConfigError("slide_stride is set but slide_window is not; give slide_window=(W, H) too")
        return None
    win = parse_size(window, "slide_window", allow_original=False)
    if stride is None:
        st = (max(1, win[0] * 3 // 4), max(1, win[1] * 3 // 4))
    else:
        st = parse_size(stride, "slide_stride", allow_original=False)
    if st[0] > win[0] or st[1] > win[1]:
        raise ConfigError(
            f"slide_stride {st} is larger than slide_window {win}: windows would leave gaps; "
            "use a stride no larger than the window"
        )
    return win, st


def slide_scores(run, chw: np.ndarray, slide, batch_size: int, pad_to: int = 1, model_name: str = "model") -> np.ndarray:
    """Scores of one image (``C×H×W`` normalised) from overlapping windows, averaged where they overlap.

    ``run`` is an engine's ``run``; ``slide`` is ``(window, stride)``. Each window is fed at its own size
    (every window has the same size), padded only to a multiple of ``pad_to`` (a card's ``pad_to``; 1: none).
    """
    (win, stride) = slide
    _, h, w = chw.shape
    boxes = window_grid(h, w, win, stride)
    wh, ww = boxes[0][1] - boxes[0][0], boxes[0][3] - boxes[0][2]
    hp, wp = ceil_to(wh, pad_to), ceil_to(ww, pad_to)
    total: Optional[np.ndarray] = None
    count = np.zeros((h, w), np.float32)
    for start in range(0, len(boxes), batch_size):
        chunk = boxes[start : start + batch_size]
        batch = np.zeros((len(chunk), 3, hp, wp), np.float32)
        for j, (y1, y2, x1, x2) in enumerate(chunk):
            batch[j, :, :wh, :ww] = chw[:, y1:y2, x1:x2]
        out = run(batch)
        if out.ndim != 4:
            raise ConfigError(f"{model_name}: sliding-window inference needs scores, the engine gave labels")
        if total is None:
            total = np.zeros((out.shape[1], h, w), np.float32)
        for j, (y1, y2, x1, x2) in enumerate(chunk):
            total[:, y1:y2, x1:x2] += out[j, :, :wh, :ww]
            count[y1:y2, x1:x2] += 1
    return total / count


def resize_scores(scores: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``C×H×W`` scores resized bilinearly (half-pixel centres, as paddle's default) to ``size = (W, H)``."""
    import cv2

    c = scores.shape[0]
    out = np.empty((c, size[1], size[0]), np.float32)
    for start in range(0, c, 512):  # OpenCV handles at most 512 channels at once
        part = np.ascontiguousarray(scores[start : start + 512].transpose(1, 2, 0), dtype=np.float32)
        resized = cv2.resize(part, size, interpolation=cv2.INTER_LINEAR)
        if resized.ndim == 2:
            resized = resized[:, :, None]
        out[start : start + 512] = resized.transpose(2, 0, 1)
    return out
