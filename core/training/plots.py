"""PNG pictures of evaluation and training: the confusion matrix and the loss / mIoU curves.

Drawn with matplotlib's Agg backend (no display needed) into memory and
written atomically.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from ..fileio import write_bytes
from ..paths import cache_dir

__all__ = ["confusion_matrix_png", "curves_png"]


def _pyplot():
    os.environ.setdefault("MPLCONFIGDIR", str(cache_dir() / "matplotlib"))
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path) -> Path:
    plt = _pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return write_bytes(path, buf.getvalue())


def confusion_matrix_png(
    matrix, path: Union[str, os.PathLike], class_names: Optional[Sequence[str]] = None, title: str = ""
) -> Path:
    """The row-normalised confusion matrix (each row: where the pixels of that true class went)."""
    plt = _pyplot()
    m = np.asarray(matrix, dtype=np.float64)
    n = m.shape[0]
    rows = m.sum(axis=1, keepdims=True)
    norm = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    names = [str(c) for c in (class_names or [])][:n]
    names += [str(i) for i in range(len(names), n)]
    side = min(2.0 + 0.5 * n, 20.0)
    fig, ax = plt.subplots(figsize=(side + 1.5, side))
    im = ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of the true class's pixels")
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_xticklabels(names, rotation=45 if n > 4 else 0, ha="right" if n > 4 else "center", fontsize=8)
    ax.set_yticklabels(names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 25:
        for i in range(n):
            for j in range(n):
                if m[i, j]:
                    ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=7,
                            color="white" if norm[i, j] > 0.5 else "black")
    ax.set_title(title or "confusion matrix (rows normalised)")
    fig.tight_layout()
    return _save(fig, path)


def curves_png(history: dict, path: Union[str, os.PathLike], title: str = "") -> Path:
    """Training loss and learning rate over iterations, and the val mIoU of each evaluation."""
    plt = _pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    iters, loss = history.get("iters", []), history.get("loss", [])
    ax1.plot(iters, loss, color="tab:blue", label="loss")
    ax1.set_xlabel("iteration")
    ax1.set_ylabel("training loss")
    ax1.grid(alpha=0.3)
    if history.get("lr"):
        lr_ax = ax1.twinx()
        lr_ax.plot(iters, history["lr"], color="tab:orange", alpha=0.6, label="learning rate")
        lr_ax.set_ylabel("learning rate")
    ax1.set_title("loss (blue) and learning rate (orange)")
    e_iters, miou = history.get("eval_iters", []), history.get("miou", [])
    ax2.plot(e_iters, [100 * v if v is not None else np.nan for v in miou], marker="o", color="tab:green")
    ax2.set_xlabel("iteration")
    ax2.set_ylabel("val mIoU (%)")
    ax2.set_ylim(0, 100)
    ax2.grid(alpha=0.3)
    ax2.set_title("val mIoU")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)
