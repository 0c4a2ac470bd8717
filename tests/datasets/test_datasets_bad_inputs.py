"""`segzoo check-dataset`'s last bad inputs: one line, exit 2, nothing changed on disk."""

from __future__ import annotations

import pytest

from segzoo.cli import main
from segzoo.datasets import split_dataset
from segzoo.datasets.shapes import make_shapes_dataset
from segzoo.errors import DatasetError


@pytest.fixture()
def dataset(tmp_path):
    return make_shapes_dataset(tmp_path / "data", num_train=4, num_val=2, size=(32, 32), seed=3)


def _snapshot(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _last_err(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


def test_output_naming_an_existing_file(dataset, tmp_path, capsys):
    target = tmp_path / "report.txt"
    target.write_text("mine\n")
    before = _snapshot(dataset)
    for extra in ([], ["--split", "50,50"]):
        assert main(["check-dataset", str(dataset), "--output", str(target), "--no-progress", *extra]) == 2
        assert _last_err(capsys) == (
            f"segzoo check-dataset: error: --output {target}: it is an existing file; give a directory path "
            "(created if missing)"
        )
        assert target.read_text() == "mine\n"
        assert _snapshot(dataset) == before  # the split did not run either
    assert main(["check-dataset", str(dataset), "--output", str(target / "sub"), "--no-progress"]) == 2
    assert _last_err(capsys) == (
        f"segzoo check-dataset: error: --output {target / 'sub'}: cannot be a directory (its parent {target} is an "
        "existing file); give a directory path (created if missing)"
    )


def test_split_refuses_a_dataset_whose_lists_name_missing_files(dataset, tmp_path, capsys):
    first = (dataset / "train.txt").read_text().splitlines()[1].split()[0]  # line 2's image
    (dataset / first).unlink()
    (dataset / "annotations" / "val_00001.png").unlink()
    before = _snapshot(dataset)
    out = tmp_path / "check"
    assert main(["check-dataset", str(dataset), "--split", "50,50", "--output", str(out), "--no-progress"]) == 2
    assert _last_err(capsys) == (
        f"segzoo check-dataset: error: {dataset}: not split, the dataset is broken: train.txt line 2 names the "
        f"image {first}, which does not exist (and 1 more); train.txt and val.txt are unchanged. Fix the lists or "
        f"restore the files (`segzoo check-dataset {dataset}` lists every problem), then split."
    )
    assert _snapshot(dataset) == before  # train.txt / val.txt byte-identical, no .bak, no journal
    assert not out.exists()
    with pytest.raises(DatasetError, match="not split, the dataset is broken"):
        split_dataset(dataset, 80, 20)
    assert _snapshot(dataset) == before
