"""Segmentation metrics from a confusion matrix accumulated over a dataset.

:class:`ConfusionMatrix` streams: each prediction/label pair adds its counts
(``matrix[true, predicted]``), pixels labelled ``ignore_index`` are left out,
and nothing else is kept, so memory does not grow with the dataset.

:func:`compute_metrics` turns the matrix into the numbers users know from
PaddleSeg and MMSegmentation. With ``TP``, ``FP``, ``FN`` per class ``c``:

* ``IoU[c] = TP / (TP + FP + FN)``; ``Dice[c] = 2TP / (2TP + FP + FN)``;
* ``Acc[c] = Recall[c] = TP / (TP + FN)`` (MMSegmentation's per-class "Acc");
  ``Precision[c] = TP / (TP + FP)``;
* ``Acc`` (overall pixel accuracy) ``= ΣTP / Σmatrix``;
* ``Kappa = (p_o - p_e) / (1 - p_e)`` with ``p_o`` the pixel accuracy and
  ``p_e = Σ_c rows[c]·cols[c] / total²`` (1.0 when ``p_e`` is 1 and the
  prediction is perfect);
* ``mIoU``, ``mAcc``, ``Dice`` (mean Dice) are means over classes.

**Classes without data.** A ratio whose denominator is 0 is undefined and is
``NaN``: a class absent from both the labels and the predictions has ``NaN``
IoU and Dice; a class absent from the labels has ``NaN`` Acc/Recall; a class
never predicted has ``NaN`` Precision. Means skip ``NaN`` (``numpy.nanmean``),
as MMSegmentation does -- so a class that appears nowhere does not pull mIoU
down, while a class predicted but absent from the labels counts with IoU 0.
(PaddleSeg instead counts an absent class as IoU 0.) In JSON, ``NaN`` is
written as ``null``; :func:`format_table` prints it as ``–`` and says why under the table.
"""

from __future__ import annotations

import math
import warnings
from typing import Optional, Sequence

import numpy as np

__all__ = ["ConfusionMatrix", "compute_metrics", "format_table", "to_jsonable"]


class ConfusionMatrix:
    """A ``num_classes × num_classes`` count matrix: rows are true classes, columns predictions."""

    def __init__(self, num_classes: int, ignore_index: int = 255):
        if num_classes <= 0:
            raise ValueError("num_classes must be > 0")
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.matrix = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)
        self.out_of_range = 0  # labelled pixels whose label is >= num_classes (and not ignored)

    def update(self, pred, label) -> None:
        """Add one prediction (``H×W`` class ids, or ``N×H×W``) and its label of the same shape."""
        pred = np.asarray(pred)
        label = np.asarray(label)
        if pred.shape != label.shape:
            raise ValueError(f"prediction {pred.shape} and label {label.shape} differ in shape")
        label = label.astype(np.int64).ravel()
        pred = pred.astype(np.int64).ravel()
        keep = label != self.ignore_index
        bad = keep & ((label < 0) | (label >= self.num_classes))
        if bad.any():
            self.out_of_range += int(bad.sum())
            keep &= ~bad
        pred = np.clip(pred[keep], 0, self.num_classes - 1)
        n = self.num_classes
        self.matrix += np.bincount(label[keep] * n + pred, minlength=n * n).reshape(n, n)

    def merge(self, other: "ConfusionMatrix") -> None:
        """Add the counts of ``other`` (e.g. from another process)."""
        self.matrix += other.matrix
        self.out_of_range += other.out_of_range

    def compute(self) -> dict:
        """:func:`compute_metrics` of the counts so far."""
        return compute_metrics(self.matrix)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num = num.astype(np.float64)
    den = den.astype(np.float64)
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _nanmean(values: np.ndarray) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(np.nanmean(values)) if values.size else float("nan")


def compute_metrics(matrix) -> dict:
    """Metrics of a confusion matrix (``matrix[true, predicted]``); see the module docstring.

    Returns ``mIoU``, ``Acc``, ``mAcc``, ``Kappa``, ``Dice`` (floats, ``NaN``
    when undefined) and per-class lists ``class_IoU``, ``class_Acc``,
    ``class_Precision``, ``class_Recall``, ``class_Dice``.
    """
    m = np.asarray(matrix, dtype=np.int64)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"a confusion matrix is square, got shape {m.shape}")
    tp = np.diag(m)
    rows = m.sum(axis=1)  # pixels of each true class
    cols = m.sum(axis=0)  # pixels predicted as each class
    fn = rows - tp
    fp = cols - tp
    total = int(m.sum())
    iou = _ratio(tp, tp + fp + fn)
    dice = _ratio(2 * tp, 2 * tp + fp + fn)
    recall = _ratio(tp, rows)
    precision = _ratio(tp, cols)
    if total:
        po = float(tp.sum()) / total
        pe = float((rows.astype(np.float64) * cols.astype(np.float64)).sum()) / float(total) ** 2
        kappa = (po - pe) / (1.0 - pe) if pe < 1.0 else (1.0 if po == 1.0 else 0.0)
    else:
        po = kappa = float("nan")
    return {
        "mIoU": _nanmean(iou),
        "Acc": po,
        "mAcc": _nanmean(recall),
        "Kappa": kappa,
        "Dice": _nanmean(dice),
        "class_IoU": iou.tolist(),
        "class_Acc": recall.tolist(),
        "class_Precision": precision.tolist(),
        "class_Recall": recall.tolist(),
        "class_Dice": dice.tolist(),
        "pixels": total,
    }


def to_jsonable(value):
    """``value`` with every ``NaN``/``inf`` float replaced by ``None`` (valid JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    return value


#: what the table prints for an undefined value (a ratio 0/0), and why, per column
UNDEFINED = "–"
_WHY_UNDEFINED = {
    "Precision": "Precision of a class never predicted",
    "Acc": "Acc and Recall of a class absent from the labels",
    "IoU": "IoU and Dice of a class absent from both",
}


def _pct(value) -> str:
    return UNDEFINED if value is None or not math.isfinite(value) else f"{100 * value:.2f}"


def _undefined_note(metrics: dict, n: int) -> str:
    """One line under the table saying why a cell holds ``–``; empty when none does."""
    reasons = [why for key, why in _WHY_UNDEFINED.items() if any(_pct(v) == UNDEFINED for v in metrics[f"class_{key}"][:n])]
    if not reasons:
        return ""
    return f"\n{UNDEFINED}: undefined (a ratio 0/0): {'; '.join(reasons)}. Means leave these out."


def format_table(metrics: dict, class_names: Optional[Sequence[str]] = None) -> str:
    """The summary line and the per-class table under it (MMSegmentation style), in %."""
    from prettytable import PrettyTable

    n = len(metrics["class_IoU"])
    names = list(class_names or [])
    names = [names[i] if i < len(names) and names[i] else str(i) for i in range(n)]
    summary = (
        f"mIoU: {_pct(metrics['mIoU'])}  Acc: {_pct(metrics['Acc'])}  mAcc: {_pct(metrics['mAcc'])}  "
        f"Kappa: {metrics['Kappa'] if metrics['Kappa'] is None else round(metrics['Kappa'], 4)}  "
        f"Dice: {_pct(metrics['Dice'])}"
    )
    table = PrettyTable(["Class", "IoU", "Acc", "Precision", "Recall", "Dice"])
    for i in range(n):
        table.add_row(
            [
                names[i],
                _pct(metrics["class_IoU"][i]),
                _pct(metrics["class_Acc"][i]),
                _pct(metrics["class_Precision"][i]),
                _pct(metrics["class_Recall"][i]),
                _pct(metrics["class_Dice"][i]),
            ]
        )
    table.align = "r"
    table.align["Class"] = "l"
    return summary + "\nper-class results (%):\n" + table.get_string() + _undefined_note(metrics, n)
