"""Re-splitting a SegDataset into new ``train.txt``/``val.txt``.

:func:`split_dataset` pools the samples of the current ``train.txt`` and
``val.txt``, drops repeated lines, sorts them, shuffles them with
``random.Random(seed)`` and writes new lists. Because the pool is sorted
before shuffling, the result depends only on the set of samples and the seed:
running the same split twice gives the same lists (and the second run changes
nothing, so the ``.bak`` copies of the first are kept).

**Crash safety.** Two files cannot be replaced in one atomic step, so a small
journal (``.segzoo-split.journal``) makes the pair behave as one:

1. write the new lists to ``train.txt.segzoo-new`` / ``val.txt.segzoo-new``
   (fsynced);
2. write the journal atomically -- this is the commit point;
3. copy each current list to ``train.txt.bak`` / ``val.txt.bak`` (each copy
   atomic: temp file + ``os.replace``);
4. ``os.replace`` each ``*.segzoo-new`` onto its list;
5. delete the journal.

A split killed before step 2 leaves the old lists untouched (stray
``*.segzoo-new`` files are deleted by the next call); killed after step 2, the
next call of :func:`recover_interrupted_split` -- run first by
:func:`split_dataset`, :class:`~segzoo.datasets.SegDataset` and
:func:`~segzoo.datasets.check_dataset` -- finishes steps 3-5. Recovery relies
on one invariant: a list whose ``*.segzoo-new`` file still exists has not been
replaced yet, so it is still the old list and may be (re)copied to ``.bak``.
Hence, as seen through segzoo, the lists are always all-old or all-new.
Concurrent splits of one dataset are not supported.

For tests only, ``SEGZOO_TEST_SPLIT_PAUSE=<step>`` makes the process print
``SEGZOO_SPLIT_PAUSED <step>`` on stderr and sleep at that step, so a test can
kill it there. Steps: ``new_written``, ``journal_written``, ``bak_written``,
``between_replace``, ``replaced``.
"""

from __future__ import annotations

import os
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Union

from ..errors import ConfigError, DatasetError
from ..fileio import atomic_path, fsync_dir, write_json
from .segdataset import format_list_line, read_list

PathLike = Union[str, os.PathLike]

__all__ = ["split_dataset", "recover_interrupted_split", "validate_percents", "split_counts"]

LISTS = ("train.txt", "val.txt")
JOURNAL = ".segzoo-split.journal"
NEW_SUFFIX = ".segzoo-new"


def _pause(step: str) -> None:
    """Test hook: stop at ``step`` when ``SEGZOO_TEST_SPLIT_PAUSE`` names it."""
    if os.environ.get("SEGZOO_TEST_SPLIT_PAUSE") == step:
        print(f"SEGZOO_SPLIT_PAUSED {step}", file=sys.stderr, flush=True)
        time.sleep(3600)


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


def _write_synced(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


def _copy_atomic(src: Path, dst: Path) -> None:
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)


def _commit(root: Path) -> None:
    """Steps 3-5; idempotent, so recovery simply runs it again."""
    pending = [name for name in LISTS if (root / (name + NEW_SUFFIX)).exists()]
    for name in pending:  # step 3: the list is still the old one (its new file is pending)
        cur, bak = root / name, root / (name + ".bak")
        if cur.exists():
            _copy_atomic(cur, bak)
        elif bak.exists():
            bak.unlink()  # no old list: a stale .bak from an older split would mislead
    _pause("bak_written")
    for k, name in enumerate(pending):  # step 4
        os.replace(root / (name + NEW_SUFFIX), root / name)
        if k == 0 and len(pending) > 1:
            _pause("between_replace")
    fsync_dir(root)
    _pause("replaced")
    journal = root / JOURNAL
    if journal.exists():  # step 5
        journal.unlink()
        fsync_dir(root)


def recover_interrupted_split(dataset_dir: PathLike) -> bool:
    """Finish (journal present) or roll back (journal absent) a split that was killed.

    Returns True when something was recovered. Cheap when nothing is pending:
    a few ``stat`` calls.
    """
    root = Path(dataset_dir)
    journal = root / JOURNAL
    stray = [root / (name + NEW_SUFFIX) for name in LISTS if (root / (name + NEW_SUFFIX)).exists()]
    if not journal.exists() and not stray:
        return False
    try:
        if journal.exists():
            _commit(root)
        else:
            for path in stray:
                path.unlink()
    except OSError as exc:
        raise DatasetError(
            f"{root}: an interrupted split could not be completed ({exc}). Fix: make the "
            f"dataset directory writable, or restore train.txt/val.txt from the .bak files "
            f"and delete {JOURNAL} and the *{NEW_SUFFIX} files."
        ) from None
    return True


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

    try:
        for name in LISTS:  # step 1
            _write_synced(root / (name + NEW_SUFFIX), texts[name])
        fsync_dir(root)
        _pause("new_written")
        write_json(root / JOURNAL, {"version": 1, "lists": list(LISTS), "seed": seed})  # step 2
        _pause("journal_written")
    except OSError as exc:
        for name in LISTS:
            p = root / (name + NEW_SUFFIX)
            if p.exists() and not (root / JOURNAL).exists():
                p.unlink()
        raise DatasetError(f"{root}: cannot write the new lists ({exc}). The old lists are unchanged.") from None
    try:
        _commit(root)  # steps 3-5
    except OSError as exc:
        raise DatasetError(
            f"{root}: the split was interrupted ({exc}); the next segzoo call on this dataset "
            "completes it."
        ) from None
    return summary
