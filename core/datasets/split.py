"""Re-splitting a SegDataset into new ``train.txt``/``val.txt``.

:func:`split_dataset` pools the samples of the current ``train.txt`` and
``val.txt``, drops repeated lines, sorts them, shuffles them with
``random.Random(seed)`` and writes new lists. Because the pool is sorted
before shuffling, the result depends only on the set of samples and the seed:
running the same split twice gives the same lists (and the second run changes
nothing, so the ``.bak`` copies of the first are kept).

**Crash safety.** The new lists replace the old ones through a journal, so
that, as seen through segzoo, both lists are always all-old or all-new; a
split that was killed is completed (or rolled back) by
:func:`recover_interrupted_split`. Both live in :mod:`segzoo.datasets.listfile`
(the list-file format and its journal) and are re-exported here.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Union

from ..errors import ConfigError, DatasetError
from .listfile import (  # noqa: F401  (moved; old home keeps them)
    JOURNAL,
    LISTS,
    NEW_SUFFIX,
    format_list_line,
    read_list,
    recover_interrupted_split,
    replace_lists,
)

PathLike = Union[str, os.PathLike]

__all__ = ["split_dataset", "recover_interrupted_split", "validate_percents", "split_counts"]

def validate_percents(train_percent, val_percent, *, prefix: str = "split") -> tuple[int, int]:
    """Check that both percentages are ints in 1..99 summing to 100; raise ConfigError naming the field."""
    for field, value in (("train_percent", train_percent), ("val_percent", val_percent)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{prefix}.{field}: must be an integer percentage in 1..99, got {value!r}")
        if not 1 <= value <= 99:
            raise ConfigError(f"{prefix}.{field}: must be in 1..99, got {value}")
    if train_percent + val_percent != 100:
        raise ConfigError(
            f"{prefix}.val_percent: train_percent + val_percent must be 100, "
            f"got {train_percent} + {val_percent} = {train_percent + val_percent}"
        )
    return train_percent, val_percent


def split_counts(n: int, val_percent: int) -> tuple[int, int]:
    """(n_train, n_val) for ``n`` samples: val gets round(n*val%), at least 1, train at least 1."""
    if n < 2:
        raise DatasetError(
            f"a train/val split needs at least 2 samples, the dataset has {n}. Fix: add samples."
        )
    n_val = int(n * val_percent / 100 + 0.5)
    n_val = min(max(n_val, 1), n - 1)
    return n - n_val, n_val


def _refuse_missing_files(root: Path, samples: list) -> None:
    """A split of lists that name missing files is refused before anything is written."""
    problems = []
    for s in samples:
        for path, rel, kind in ((s.image, s.image_rel, "image"), (s.label, s.label_rel, "mask")):
            if not path.is_file():
                state = "does not exist" if not path.exists() else "is not a regular file"
                problems.append(f"{s.where()} names the {kind} {rel or path}, which {state}")
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise DatasetError(
            f"{root}: not split, the dataset is broken: {problems[0]}{more}; train.txt and val.txt are "
            f"unchanged. Fix the lists or restore the files (`segzoo check-dataset {root}` lists every "
            "problem), then split."
        )


def split_dataset(dataset_dir: PathLike, train_percent: int, val_percent: int, seed: int = 0) -> dict:
    """Pool ``train.txt`` + ``val.txt``, shuffle with ``seed`` and write new lists.

    Percentages are ints in 1..99 summing to 100 (else
    :class:`~segzoo.errors.ConfigError` naming the field). The old lists are
    kept as ``train.txt.bak``/``val.txt.bak``. Lists that name a missing image
    or mask are refused (:class:`~segzoo.errors.DatasetError`) before anything
    is written: a broken dataset is fixed first, then split. Returns a summary dict:
    ``train_samples``, ``val_samples``, ``train_percent``, ``val_percent``,
    ``seed``, ``duplicates_removed``, ``unchanged`` and ``backups``.
    """
    validate_percents(train_percent, val_percent)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"split.seed: must be an integer, got {seed!r}")
    root = Path(dataset_dir)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset directory not found.")
    recover_interrupted_split(root)

    present = [name for name in LISTS if (root / name).is_file()]
    if not present:
        raise DatasetError(
            f"{root}: neither train.txt nor val.txt exists, nothing to split. Fix: write a "
            "list file with one `images/a.jpg annotations/a.png` line per sample."
        )
    pool: dict[tuple[str, str], None] = {}
    total = 0
    samples = [s for name in present for s in read_list(root, name)]
    for s in samples:
        total += 1
        pool.setdefault((s.image_rel, s.label_rel), None)
    entries = sorted(pool)
    n_train, n_val = split_counts(len(entries), val_percent)
    _refuse_missing_files(root, samples)
    random.Random(seed).shuffle(entries)
    texts = {
        "train.txt": "".join(format_list_line(i, l) for i, l in entries[:n_train]),
        "val.txt": "".join(format_list_line(i, l) for i, l in entries[n_train:]),
    }
    summary = {
        "train_samples": n_train,
        "val_samples": n_val,
        "train_percent": train_percent,
        "val_percent": val_percent,
        "seed": seed,
        "duplicates_removed": total - len(entries),
        "unchanged": False,
        "backups": [str(root / (name + ".bak")) for name in present],
    }
    current = {}
    for name in LISTS:
        p = root / name
        current[name] = p.read_text(encoding="utf-8") if p.is_file() else None
    if all(current[n] == texts[n] for n in LISTS):
        summary["unchanged"] = True  # keep the .bak copies of the split that made these lists
        return summary

    replace_lists(root, texts, seed)  # journalled: all-old or all-new, even if killed
    return summary
