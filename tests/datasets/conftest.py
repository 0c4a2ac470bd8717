"""Fixtures for the dataset tests: real files drawn with OpenCV, no mocks."""

from __future__ import annotations

import struct
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

CLASS_NAMES = ["background", "disc", "box", "triangle"]


def draw_sample(rng: np.random.Generator, size=(48, 64), classes=(1, 2, 3)):
    """A random-noise background with one shape per class; returns (BGR image, mask)."""
    h, w = size
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    image = cv2.GaussianBlur(image, (5, 5), 0)
    mask = np.zeros((h, w), np.uint8)
    colours = {1: (40, 40, 220), 2: (40, 200, 40), 3: (220, 60, 60), 4: (200, 200, 0), 5: (0, 200, 200)}
    for c in classes:
        colour = tuple(int(v) for v in (np.array(colours.get(c, (128, 128, 128))) + rng.integers(-20, 20, 3)).clip(0, 255))
        kind = c % 3
        if kind == 1:
            center = (int(rng.integers(w // 5, 4 * w // 5)), int(rng.integers(h // 5, 4 * h // 5)))
            r = int(rng.integers(max(3, h // 10), max(4, h // 5)))
            cv2.circle(image, center, r, colour, -1)
            cv2.circle(mask, center, r, int(c), -1)
        elif kind == 2:
            x0, y0 = int(rng.integers(0, w // 2)), int(rng.integers(0, h // 2))
            x1, y1 = x0 + int(rng.integers(4, w // 2)), y0 + int(rng.integers(4, h // 2))
            cv2.rectangle(image, (x0, y0), (x1, y1), colour, -1)
            cv2.rectangle(mask, (x0, y0), (x1, y1), int(c), -1)
        else:
            pts = np.stack([rng.integers(0, w, 3), rng.integers(0, h, 3)], axis=1).astype(np.int32)
            pts[0] = (w // 2, h // 4)
            cv2.fillPoly(image, [pts], colour)
            cv2.fillPoly(mask, [pts], int(c))
    return image, mask


def write_png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".png", array)
    assert ok
    path.write_bytes(buf.tobytes())
    return path


def write_jpg(path: Path, image: np.ndarray, quality: int = 95) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    path.write_bytes(buf.tobytes())
    return path


def jpeg_with_orientation(jpeg: bytes, orientation: int) -> bytes:
    """Insert an EXIF APP1 segment holding only the orientation tag (big-endian TIFF)."""
    tiff = b"MM\x00*" + struct.pack(">I", 8) + struct.pack(">H", 1)
    tiff += struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack(">I", 0)
    app1 = b"Exif\x00\x00" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + jpeg[2:]


def png_chunk(ctype: bytes, data: bytes) -> bytes:
    import zlib

    return struct.pack(">I", len(data)) + ctype + data + struct.pack(">I", zlib.crc32(ctype + data) & 0xFFFFFFFF)


def palette_png(indices: np.ndarray, palette: np.ndarray, filters=(0,)) -> bytes:
    """A hand-built 8-bit palette PNG whose rows cycle through the given PNG filter types."""
    import zlib

    h, w = indices.shape
    raw = bytearray()
    prev = np.zeros(w, np.int64)
    for y in range(h):
        f = filters[y % len(filters)]
        cur = indices[y].astype(np.int64)
        left = np.concatenate([[0], cur[:-1]])
        upleft = np.concatenate([[0], prev[:-1]])
        if f == 0:
            out = cur
        elif f == 1:
            out = cur - left
        elif f == 2:
            out = cur - prev
        elif f == 3:
            out = cur - (left + prev) // 2
        else:
            p = left + prev - upleft
            pa, pb, pc = np.abs(p - left), np.abs(p - prev), np.abs(p - upleft)
            pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prev, upleft))
            out = cur - pred
        raw.append(f)
        raw.extend((out % 256).astype(np.uint8).tobytes())
        prev = cur
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 3, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"PLTE", palette.astype(np.uint8).tobytes())
        + png_chunk(b"IDAT", zlib.compress(bytes(raw)))
        + png_chunk(b"IEND", b"")
    )


def make_segdataset(
    root: Path,
    n_train: int = 8,
    n_val: int = 4,
    size=(48, 64),
    classes=(1, 2, 3),
    seed: int = 0,
    jpeg: bool = True,
    class_names=True,
) -> Path:
    """Write a SegDataset with drawn shapes; every class is in every sample."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("val", n_val)):
        lines = []
        for i in range(n):
            image, mask = draw_sample(rng, size, classes)
            stem = f"{split}_{i:05d}"
            ext = ".jpg" if jpeg else ".png"
            (write_jpg if jpeg else write_png)(root / "images" / f"{stem}{ext}", image)
            write_png(root / "annotations" / f"{stem}.png", mask)
            lines.append(f"images/{stem}{ext} annotations/{stem}.png\n")
        (root / f"{split}.txt").write_text("".join(lines), encoding="utf-8")
    if class_names:
        (root / "class_name.txt").write_text("\n".join(CLASS_NAMES[: max(classes) + 1]) + "\n", encoding="utf-8")
    return root


@pytest.fixture
def dsutil():
    """Helpers shared by the dataset tests."""
    return SimpleNamespace(
        draw_sample=draw_sample,
        write_png=write_png,
        write_jpg=write_jpg,
        jpeg_with_orientation=jpeg_with_orientation,
        palette_png=palette_png,
        make_segdataset=make_segdataset,
        CLASS_NAMES=CLASS_NAMES,
    )


@pytest.fixture
def good_dataset(tmp_path):
    return make_segdataset(tmp_path / "good")
