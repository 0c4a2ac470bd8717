"""Re-splitting: validation, determinism, .bak copies, and a split killed at every step."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from segzoo.errors import ConfigError, DatasetError
from segzoo.datasets import SegDataset, read_list, split_dataset
from segzoo.datasets.split import JOURNAL, NEW_SUFFIX


@pytest.mark.parametrize(
    "train,val,field",
    [(0, 100, "train_percent"), (100, 0, "train_percent"), (70, 20, "val_percent"), (80.0, 20, "train_percent"),
     ("80", 20, "train_percent"), (True, 99, "train_percent"), (50, 50.5, "val_percent")],
)
def test_percentages_are_validated(good_dataset, train, val, field):
    with pytest.raises(ConfigError, match=f"split.{field}"):
        split_dataset(good_dataset, train, val)
    assert not (good_dataset / "train.txt.bak").exists()


def _pairs(root, name):
    return [(s.image_rel, s.label_rel) for s in read_list(root, name)]


def test_split_is_deterministic_and_keeps_backups(good_dataset, tmp_path):
    old_train = (good_dataset / "train.txt").read_text()
    old_val = (good_dataset / "val.txt").read_text()
    pool = sorted(_pairs(good_dataset, "train.txt") + _pairs(good_dataset, "val.txt"))
    copy = tmp_path / "copy"
    shutil.copytree(good_dataset, copy)

    r = split_dataset(good_dataset, 75, 25, seed=5)
    assert (r["train_samples"], r["val_samples"]) == (9, 3) and r["unchanged"] is False
    assert (good_dataset / "train.txt.bak").read_text() == old_train
    assert (good_dataset / "val.txt.bak").read_text() == old_val
    new_train, new_val = _pairs(good_dataset, "train.txt"), _pairs(good_dataset, "val.txt")
    assert sorted(new_train + new_val) == pool and not set(new_train) & set(new_val)

    split_dataset(copy, 75, 25, seed=5)  # same seed elsewhere: same lists
    assert (copy / "train.txt").read_text() == (good_dataset / "train.txt").read_text()
    split_dataset(copy, 75, 25, seed=6)
    assert (copy / "train.txt").read_text() != (good_dataset / "train.txt").read_text()

    again = split_dataset(good_dataset, 75, 25, seed=5)  # nothing changes: the .bak of the first split stays
    assert again["unchanged"] is True
    assert (good_dataset / "train.txt.bak").read_text() == old_train
    assert not any(p.name.endswith(NEW_SUFFIX) or p.name == JOURNAL for p in good_dataset.iterdir())


def test_split_pools_only_train_and_dedups(tmp_path, dsutil):
    root = dsutil.make_segdataset(tmp_path / "d", n_train=5, n_val=1)
    lines = (root / "train.txt").read_text().splitlines()
    (root / "train.txt").write_text("\n".join(lines + lines[:2]) + "\n")
    (root / "val.txt").unlink()
    (root / "val.txt.bak").write_text("stale")
    r = split_dataset(root, 60, 40)
    assert r["duplicates_removed"] == 2 and (r["train_samples"], r["val_samples"]) == (3, 2)
    assert not (root / "val.txt.bak").exists()  # there was no old val list to keep
    (root / "train.txt").write_text("images/a.jpg annotations/a.png\n")
    (root / "val.txt").write_text("")
    with pytest.raises(DatasetError, match="at least 2 samples"):
        split_dataset(root, 50, 50)


def test_split_names_bad_lines(good_dataset):
    with open(good_dataset / "val.txt", "a") as fh:
        fh.write("../../escape.jpg annotations/x.png\n")
    with pytest.raises(DatasetError, match=r"val.txt line 5"):
        split_dataset(good_dataset, 80, 20)


STEPS = [
    ("new_written", "old"),
    ("journal_written", "new"),
    ("bak_written", "new"),
    ("between_replace", "new"),
    ("replaced", "new"),
]


def _run_until(root, step, seed=11):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "SEGZOO_TEST_SPLIT_PAUSE": step}
    code = f"from segzoo.datasets import split_dataset; split_dataset({str(root)!r}, 70, 30, seed={seed})"
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if f"SEGZOO_SPLIT_PAUSED {step}" in line:
                break
            if not line and proc.poll() is not None:
                raise AssertionError(f"split exited ({proc.returncode}) before step {step}")
        else:
            raise AssertionError(f"split never reached {step}")
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.parametrize("step,expect", STEPS)
def test_killed_split_leaves_old_or_new_lists(good_dataset, tmp_path, step, expect):
    old = {n: (good_dataset / n).read_text() for n in ("train.txt", "val.txt")}
    fresh = tmp_path / "fresh"
    shutil.copytree(good_dataset, fresh)
    reference = tmp_path / "reference"
    shutil.copytree(good_dataset, reference)
    split_dataset(reference, 70, 30, seed=11)
    new = {n: (reference / n).read_text() for n in ("train.txt", "val.txt")}
    assert new != old

    _run_until(good_dataset, step)
    if step == "between_replace":  # on disk, train.txt is new and val.txt still old ...
        assert (good_dataset / "train.txt").read_text() == new["train.txt"]
        assert (good_dataset / "val.txt").read_text() == old["val.txt"]
    # ... but whatever reads the dataset through segzoo first completes or rolls back the split
    ds = SegDataset(good_dataset, "train")
    now = {n: (good_dataset / n).read_text() for n in ("train.txt", "val.txt")}
    assert now == (old if expect == "old" else new)
    assert len(ds) == len(now["train.txt"].splitlines())
    assert not any(p.name.endswith(NEW_SUFFIX) or p.name == JOURNAL for p in good_dataset.iterdir())
    if expect == "new":
        assert {n: (good_dataset / f"{n}.bak").read_text() for n in old} == old

    # killed the same way, the following split call recovers first and ends with the new lists,
    # the .bak files holding the original ones
    _run_until(fresh, step)
    split_dataset(fresh, 70, 30, seed=11)
    assert {n: (fresh / n).read_text() for n in old} == new
    assert {n: (fresh / f"{n}.bak").read_text() for n in old} == old
    assert not any(p.name.endswith(NEW_SUFFIX) or p.name == JOURNAL for p in fresh.iterdir())
