"""Fixtures of the training tests: small drawn-shapes datasets and tiny training configs."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from segzoo.datasets.shapes import make_shapes_dataset


@pytest.fixture(autouse=True, scope="session")
def _quiet_home(tmp_path_factory):
    """Keep paddleseg / matplotlib caches out of ~ (also for the subprocesses the tests start)."""
    home = tmp_path_factory.mktemp("segzoo_home")
    old = os.environ.get("SEGZOO_HOME")
    os.environ["SEGZOO_HOME"] = str(home)
    yield
    if old is None:
        os.environ.pop("SEGZOO_HOME", None)
    else:
        os.environ["SEGZOO_HOME"] = old


@pytest.fixture(scope="session")
def shapes64(tmp_path_factory) -> Path:
    """12 train / 4 val drawn-shapes images of 64×64, 4 classes (class_name.txt included)."""
    root = tmp_path_factory.mktemp("shapes64")
    return make_shapes_dataset(root, num_train=12, num_val=4, size=(64, 64), seed=1)


def _tiny_train(model: str, dataset: Path, output: Path, **train) -> dict:
    values = {
        "epochs_iters": 3,
        "batch_size": 2,
        "crop_size": [64, 64],
        "eval_interval": 2,
        "log_interval": 1,
        "export": False,
        "warmup_steps": 1,
    }
    values.update(train)
    return {
        "Global": {"model": model, "mode": "train", "dataset_dir": str(dataset), "device": "cpu", "output": str(output)},
        "Train": values,
    }


def _segzoo_cmd(*args: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from segzoo.cli import main; sys.exit(main())", *map(str, args)]


@pytest.fixture
def tiny_train():
    """``tiny_train(model, dataset, output, **Train keys)``: a config dict for a few CPU iterations on 64×64 crops."""
    return _tiny_train


@pytest.fixture
def segzoo_cmd():
    """``segzoo_cmd(*args)``: the argv of the `segzoo` command run with this interpreter."""
    return _segzoo_cmd
