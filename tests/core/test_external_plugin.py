"""The plugin guide's example package (examples/plugin), built and pip-installed, is a full citizen.

The guide itself (docs/plugins.md) is run block by block through Sybil (see
tests/markdown_blocks.py): install, list, check, train, evaluate, export,
predict. This module checks what those blocks only run: the exact listings, a
hook wrapper from an entry point changing every model, blocking, and that the
guide shows every file of the package. The package is installed with pip into
a temporary folder that the commands see through ``PYTHONPATH``, so the
suite's own environment is not changed.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ..markdown_blocks import shown_files

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "plugin"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """The environment of a shell in which the example is installed (built from a copy, without network)."""
    root = tmp_path_factory.mktemp("ext")
    src, site = root / "src", root / "site"
    shutil.copytree(EXAMPLE, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(site), str(src)],
        check=True, capture_output=True,
    )
    environ = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])))
    environ.pop("SEGZOO_BLOCK_PLUGINS", None)
    return environ


def segzoo(env, *args, **extra):
    return subprocess.run([sys.executable, "-m", "segzoo.cli", *args], capture_output=True, text=True,
                          env=dict(env, **extra), timeout=300)


def test_the_guide_shows_every_file_of_the_example():
    files = {str(p.relative_to(EXAMPLE)) for p in EXAMPLE.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert files == shown_files(ROOT / "docs" / "plugins.md")


def test_listed_by_the_cli(env):
    out = segzoo(env, "list-models", "--json")
    assert out.returncode == 0, out.stderr
    cards = {c["name"]: c for c in json.loads(out.stdout)}
    assert "PP-LiteSeg-T" in cards and cards["TinyNet"]["input_size"] == [64, 64]
    assert cards["TinyNet"]["config"]["width"]["description"].startswith("channels of the first convolution")
    plugins = segzoo(env, "plugins").stdout
    assert "TinyNet  [segzoo-tinynet 0.1.0]  hooks: build_model, model_card, postprocess, preprocess, train_step" in plugins
    assert "softmax-scores  [segzoo-tinynet 0.1.0]  hooks: postprocess" in plugins


def test_hook_wrapper_from_an_entry_point_changes_every_model(env):
    code = textwrap.dedent(
        """
        import paddle, segzoo
        reg = segzoo.get_registry()
        for name in ("TinyNet", "PP-LiteSeg-T"):
            cfg = reg.config(name, num_classes=3)
            probs = reg.postprocess(name, cfg, [paddle.randn([1, 3, 8, 8]) * 5])
            assert abs(float(probs.sum(axis=1).mean()) - 1) < 1e-5, name
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.stdout.strip() == "ok", out.stderr[-3000:]


def test_blocked_by_environment_variable(env):
    out = segzoo(env, "plugins", SEGZOO_BLOCK_PLUGINS="Tiny*,softmax-scores")
    listed = [line.split()[0] for line in out.stdout.splitlines() if "  [" in line]
    assert "TinyNet" not in listed and "softmax-scores" not in listed and "PP-LiteSeg-T" in listed
    assert out.stdout.splitlines()[-1] == "blocked by SEGZOO_BLOCK_PLUGINS: Tiny*, softmax-scores"
    info = segzoo(env, "info", "TinyNet", SEGZOO_BLOCK_PLUGINS="Tiny*")
    assert info.returncode == 2 and "Traceback" not in info.stderr
    assert info.stderr.strip().splitlines()[-1].startswith(
        "segzoo info: error: Model 'TinyNet' is installed but blocked by SEGZOO_BLOCK_PLUGINS='Tiny*'"
    )
