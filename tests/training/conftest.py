"""Fixtures of the training tests: small drawn-shapes datasets, tiny training configs, a local weights server."""

from __future__ import annotations

import functools
import http.server
import os
import sys
import threading
from dataclasses import dataclass, field
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
        "pretrain_weight_path": None,  # from scratch, no download (test_training_pretrained.py fetches weights)
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


@dataclass
class WeightsServer:
    """A local HTTP server in PaddleX's layout: put files under ``root / "official_pretrained_model"``."""

    root: Path
    url: str
    requests: list = field(default_factory=list)  # "GET /official_pretrained_model/X.pdparams", in order

    @property
    def folder(self) -> Path:
        return self.root / "official_pretrained_model"


class _CountingHandler(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *args, seen: list, **kwargs):
        self._seen = seen
        super().__init__(*args, **kwargs)

    def send_head(self):
        self._seen.append(f"{self.command} {self.path}")
        return super().send_head()

    def log_message(self, *args):  # quiet
        pass


@pytest.fixture
def weights_server(tmp_path, monkeypatch):
    """A :class:`WeightsServer` on 127.0.0.1 that ``SEGZOO_MODEL_BASE_URL`` points at, with an empty segzoo cache."""
    root = tmp_path / "served"
    (root / "official_pretrained_model").mkdir(parents=True)
    seen: list = []
    handler = functools.partial(_CountingHandler, directory=str(root), seen=seen)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    monkeypatch.setenv("SEGZOO_MODEL_BASE_URL", url)
    monkeypatch.setenv("SEGZOO_HOME", str(tmp_path / "segzoo_home"))
    try:
        yield WeightsServer(root, url, seen)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
