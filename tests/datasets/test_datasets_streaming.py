"""The checker streams: its peak memory does not grow with the number of samples."""

from __future__ import annotations

import time
import tracemalloc

import cv2
import numpy as np

from segzoo.datasets import check_dataset

# Per-sample state the checker may keep: 20 bytes per list line for duplicate
# detection (plus sort temporaries at the end). 1,500 extra lines -> well under
# 100 kB; anything that keeps images, arrays or path strings per sample would
# add over a megabyte. Measured: 500, 2,000 and 8,000 samples peak at 1.56,
# 1.67 and 1.63 MB (the peak is the histogram drawing, not the samples).
ALLOWED_GROWTH = 256 * 1024


def _tiny_dataset(root, n: int):
    (root / "images").mkdir(parents=True)
    (root / "annotations").mkdir()
    rng = np.random.default_rng(n)
    img = cv2.imencode(".png", rng.integers(0, 255, (12, 12, 3), dtype=np.uint8))[1].tobytes()
    masks = [cv2.imencode(".png", np.full((12, 12), c, np.uint8))[1].tobytes() for c in range(3)]
    lines = []
    for i in range(n):
        (root / "images" / f"{i:05d}.png").write_bytes(img)
        (root / "annotations" / f"{i:05d}.png").write_bytes(masks[i % 3])
        lines.append(f"images/{i:05d}.png annotations/{i:05d}.png\n")
    cut = n * 4 // 5
    (root / "train.txt").write_text("".join(lines[:cut]))
    (root / "val.txt").write_text("".join(lines[cut:]))
    return root


def _peak(root, out) -> int:
    tracemalloc.start()
    try:
        result = check_dataset(root, out, progress=False, sample_num=2)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result["check_pass"], result["errors"][:3]
    return peak


def test_peak_memory_does_not_grow_with_sample_count(tmp_path):
    small = _tiny_dataset(tmp_path / "small", 500)
    large = _tiny_dataset(tmp_path / "large", 2000)
    check_dataset(small, tmp_path / "warm", progress=False, sample_num=2)  # imports, font cache
    t = time.perf_counter()
    peak_small = _peak(small, tmp_path / "o1")
    peak_large = _peak(large, tmp_path / "o2")
    elapsed = time.perf_counter() - t
    assert peak_large - peak_small < ALLOWED_GROWTH, (peak_small, peak_large)
    assert elapsed < 60
