"""``train_result.json``: PaddleX's summary of a training run's outputs (scores and file paths).

PaddleX reads ``models.best`` and ``models.last_N`` (newest first), each with
its score and the paths, relative to the output folder, of ``pdparams``,
``pdema``, ``pdopt``, ``pdstates`` and the exported inference files; a path
is ``""`` where the file does not exist (``pdema`` without ``Train.ema``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from ..errors import SegzooError
from . import checkpoint as ckpt
from .metrics import to_jsonable

__all__ = ["RESULT_FILE", "LOG_FILE", "CONFIG_FILE", "CURVES_PNG", "train_result", "write_result"]

RESULT_FILE = "train_result.json"
LOG_FILE = "train.log"
CONFIG_FILE = "config.yaml"
CURVES_PNG = "training_curves.png"


def _entry(out: Path, folder: Path, score) -> dict:
    def rel(p: Path) -> str:
        return p.relative_to(out).as_posix() if p.exists() else ""

    inf = folder / "inference"
    return {
        "score": score,
        "pdparams": rel(folder / ckpt.WEIGHTS),
        "pdema": rel(folder / ckpt.EMA),
        "pdopt": rel(folder / ckpt.OPTIMIZER),
        "pdstates": rel(folder / ckpt.STATES),
        "inference_config": rel(inf / "inference.yml"),
        "pdmodel": rel(inf / "inference.json") or rel(inf / "inference.pdmodel"),
        "pdiparams": rel(inf / "inference.pdiparams"),
        "pdiparams.info": "",
    }


def train_result(
    out: Path,
    model_name: str,
    done: bool,
    last_iter: int,
    total_iters: int,
    best_score: Optional[float],
    best_iter: Optional[int],
    export_info: Optional[dict] = None,
) -> dict:
    """The ``train_result.json`` dict of the output folder ``out`` as it is on disk now."""
    models: dict[str, Any] = {}
    for i, (_, folder) in enumerate(reversed(ckpt.list_checkpoints(out)), start=1):
        try:
            score = ckpt.read_states(folder).get("mIoU")
        except SegzooError:
            score = None
        models[f"last_{i}"] = _entry(out, folder, score)
    best = out / "best_model"
    if (best / ckpt.WEIGHTS).exists():
        models["best"] = _entry(out, best, best_score)
    result = {
        "model_name": model_name,
        "done_flag": done,
        "config": CONFIG_FILE,
        "train_log": LOG_FILE,
        "label_dict": "",
        "visualdl_log": "",
        "best_score": best_score,
        "best_iter": best_iter,
        "last_iter": last_iter,
        "total_iters": total_iters,
        "metric": "mIoU",
        "models": models,
    }
    if export_info is not None:
        result["export"] = export_info
    if (out / CURVES_PNG).exists():
        result["curves"] = CURVES_PNG
    return result


def write_result(out: Path, model_name: str, done: bool, last_iter: int, total_iters: int,
                 best_score: Optional[float], best_iter: Optional[int], export_info: Optional[dict] = None,
                 **extra) -> dict:
    """Write ``out/train_result.json`` (:func:`train_result` plus ``extra``) atomically; returns its dict."""
    result = train_result(out, model_name, done, last_iter, total_iters, best_score, best_iter, export_info)
    result.update(extra)
    result = to_jsonable(result)
    ckpt.write_train_result(out / RESULT_FILE, result)
    return result
