"""The checker's problems: the codes, their capped record, and the whole-dataset checks.

:class:`_Problems` records every problem a check finds (at most
``MAX_DETAILS_PER_CODE`` detailed entries per code; the count stays exact).
:class:`_WholeDatasetChecks` is mixed into the scanner
(:class:`segzoo.datasets.scan._Checker`): once both splits are scanned it finds
repeated lines, images shared by train and val, 0/255 binary masks and classes
that only val has. The codes are listed in :mod:`segzoo.datasets.check`.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Optional, Union

import numpy as np

PathLike = Union[str, os.PathLike]

__all__ = ["PROBLEM_CODES", "MAX_DETAILS_PER_CODE"]

MAX_DETAILS_PER_CODE = 1000

PROBLEM_CODES = (
    "missing_list_file",
    "unreadable_list_file",
    "empty_split",
    "bad_line",
    "outside_root",
    "missing_image",
    "missing_label",
    "empty_file",
    "unreadable_file",
    "corrupt_image",
    "corrupt_label",
    "label_jpeg",
    "label_not_single_channel",
    "label_not_8bit",
    "label_0_255",
    "label_out_of_range",
    "size_mismatch",
    "exif_orientation",
    "duplicate_entry",
    "train_val_overlap",
    "class_missing_in_train",
)


class _Problems:
    def __init__(self, root: Path):
        self.root = root
        self.items: list[dict] = []
        self.counts: Counter = Counter()
        self.warnings: list[dict] = []

    def rel(self, path: PathLike) -> str:
        p = os.path.abspath(path)
        r = os.path.abspath(self.root)
        try:
            if os.path.commonpath([p, r]) == r:
                return Path(os.path.relpath(p, r)).as_posix()
        except ValueError:
            pass
        return str(path)

    def add(self, code: str, file: PathLike, line: Optional[int], message: str, list_file: Optional[str] = None):
        self.counts[code] += 1
        if self.counts[code] <= MAX_DETAILS_PER_CODE:
            self.items.append(
                {"file": self.rel(file), "line": line, "code": code, "message": message, "list_file": list_file}
            )

    def warn(self, code: str, file: Optional[PathLike], message: str):
        self.warnings.append(
            {"file": self.rel(file) if file else None, "line": None, "code": code, "message": message}
        )



def _fmt_values(values) -> str:
    values = [int(v) for v in values]
    shown = ", ".join(str(v) for v in values[:12])
    return shown + (f" ... ({len(values)} values)" if len(values) > 12 else "")



class _WholeDatasetChecks:
    """Checks over both splits, mixed into the scanner.

    Uses the scanner's ``root``, ``problems`` and 0/255 state (``zero255``,
    ``zero255_count``, ``fg_with_255``); ``train``/``val`` are its split stats.
    """

    def duplicates(self, train, val):
        for st in (train, val):
            n = st.n_hashed
            if n < 2:
                continue
            h, lines = st.pair_hash[:n], st.lines[:n]
            order = np.lexsort((lines, h))
            hs = h[order]
            same = np.concatenate([[False], hs[1:] == hs[:-1]])
            if not same.any():
                continue
            # index of each run's first element (the earliest line, as lines break ties)
            start = np.maximum.accumulate(np.where(same, 0, np.arange(n)))
            lf = f"{st.name}.txt"
            for i in np.flatnonzero(same):
                first, line = int(lines[order[start[i]]]), int(lines[order[i]])
                self.problems.add(
                    "duplicate_entry",
                    self.root / lf,
                    line,
                    f"{lf} line {line}: the same image and mask as {lf} line {first}. "
                    "Fix: delete the repeated line (a repeated sample weighs twice in training).",
                    lf,
                )
        if train.n_hashed and val.n_hashed:
            th, vh = train.image_hash[: train.n_hashed], val.image_hash[: val.n_hashed]
            common = np.intersect1d(th, vh)
            if common.size:
                tmask = np.isin(th, common)
                first_train: dict[int, int] = {}
                for hv, ln in zip(th[tmask].tolist(), train.lines[: train.n_hashed][tmask].tolist()):
                    first_train.setdefault(hv, ln)
                vmask = np.isin(vh, common)
                for hv, ln in zip(vh[vmask].tolist(), val.lines[: val.n_hashed][vmask].tolist()):
                    self.problems.add(
                        "train_val_overlap",
                        self.root / "val.txt",
                        ln,
                        f"val.txt line {ln}: the same image as train.txt line {first_train[hv]}; "
                        "validating on training images overstates the score. Fix: keep it in one split only.",
                        "val.txt",
                    )

    def zero_255(self, nc: Optional[int]):
        if not self.zero255_count:
            return
        if not ((nc is not None and nc <= 2) or not self.fg_with_255):
            return
        for path, ln, lf in self.zero255:
            self.problems.add(
                "label_0_255",
                path,
                ln,
                f"{lf} line {ln}: the mask holds only 0 and 255. In SegDataset 255 means 'ignore', so "
                "this looks like a binary mask stored as 0/255 and the foreground would never be "
                "learned. Fix: divide the mask by 255 (foreground = 1), e.g. "
                "cv2.imwrite(p, (cv2.imread(p, 0) > 127).astype('uint8')), and use num_classes=2.",
                lf,
            )
        for _ in range(self.zero255_count - len(self.zero255)):
            self.problems.counts["label_0_255"] += 1

    def val_only_classes(self, train, val, names: Optional[list[str]]):
        if not train.labels_ok or not val.labels_ok:
            return
        for c in np.flatnonzero((val.image_count > 0) & (train.image_count == 0)):
            c = int(c)
            if c == 255:
                continue
            path, ln = val.first_file.get(c, (self.root / "val.txt", None))
            nm = f" ({names[c]})" if names and c < len(names) else ""
            self.problems.add(
                "class_missing_in_train",
                path,
                ln,
                f"val.txt line {ln}: class {c}{nm} appears in {int(val.image_count[c])} val mask(s) "
                "(this is the first) "
                "but in no train mask, so the model can never learn it. Fix: move some of these samples "
                "to train.txt (or re-split with `--split 80,20`), or check the labels.",
                "val.txt",
            )
