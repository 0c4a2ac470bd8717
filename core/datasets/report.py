"""The checker's report pictures: the class histogram and the demo overlays.

``histogram.png`` shows images per class and pixel share per class, train vs
val; ``demo_img/<split>_NNN_<name>.png`` blends a sample with its mask in the
VOC palette. matplotlib is imported only when the histogram is drawn.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from ..fileio import write_bytes
from .palette import overlay

__all__ = ["HISTOGRAM_FILE", "DEMO_DIR"]

HISTOGRAM_FILE = "histogram.png"
DEMO_DIR = "demo_img"


def _safe_stem(path: Path) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", path.stem)[:60] or "sample"



def _clear_demos(out: Path) -> None:
    """Drop our own stale overlays from an earlier run (other files are kept)."""
    demo = out / DEMO_DIR
    if demo.is_dir():
        for old in demo.glob("*.png"):
            if re.match(r"^(train|val)_\d{3}_", old.name):
                old.unlink()


def _write_demo(out: Path, split: str, index: int, image_path: Path, image: np.ndarray, label: np.ndarray) -> Optional[str]:
    """Write one overlay; its path relative to ``out``, or None if it cannot be encoded."""
    name = f"{split}_{index:03d}_{_safe_stem(image_path)}.png"
    ok, buf = cv2.imencode(".png", overlay(image, label, alpha=0.5))
    if not ok:
        return None
    write_bytes(out / DEMO_DIR / name, buf.tobytes())
    return f"{DEMO_DIR}/{name}"


def _histogram_png(stats: list[dict], path: Path, title: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ids = [s["class_id"] for s in stats]
    labels = [f"{s['class_id']} {s['name']}" if s.get("name") else str(s["class_id"]) for s in stats]
    x = np.arange(len(ids))
    width = 0.4
    n = max(len(ids), 1)
    fig = Figure(figsize=(min(4 + 0.45 * n, 40), 7.5), dpi=100)
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.subplots(2, 1)
    ax1.bar(x - width / 2, [s["train_images"] for s in stats], width, label="train", color="#1f77b4")
    ax1.bar(x + width / 2, [s["val_images"] for s in stats], width, label="val", color="#ff7f0e")
    ax1.set_ylabel("images containing the class")
    ax1.set_title(title)
    ax2.bar(x - width / 2, [100 * s["train_pixel_share"] for s in stats], width, label="train", color="#1f77b4")
    ax2.bar(x + width / 2, [100 * s["val_pixel_share"] for s in stats], width, label="val", color="#ff7f0e")
    ax2.set_ylabel("share of labelled pixels (%)")
    ax2.set_xlabel("class")
    from matplotlib.ticker import MaxNLocator

    ax1.yaxis.set_major_locator(MaxNLocator(integer=True))
    rotate = n > 8 or any(len(t) > 6 for t in labels)
    for ax in (ax1, ax2):
        ax.set_xticks(x)
        if rotate:
            ax.set_xticklabels(labels, rotation=45, ha="right", rotation_mode="anchor", fontsize=8)
        else:
            ax.set_xticklabels(labels, fontsize=8)
        ax.legend()
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    write_bytes(path, buf.getvalue())
