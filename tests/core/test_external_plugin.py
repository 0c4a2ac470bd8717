"""A third-party plugin package, built and pip-installed, is a full citizen.

The package (tests/core/external_plugin) has its own pyproject with one model
(`TinyNet`, in the `segzoo.models` group) and one hook wrapper (`softmax-scores`,
in the `segzoo.plugins` group). It is installed into a fresh virtual
environment that sees this machine's packages, so the suite's own
environment is not changed.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    root = tmp_path_factory.mktemp("ext")
    src = root / "src"
    shutil.copytree(HERE / "external_plugin", src)
    env_dir = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(env_dir)], check=True)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", str(src)],
        check=True,
        capture_output=True,
    )
    return python


def run(python, code):
    env = dict(os.environ)
    env.pop("SEGZOO_BLOCK_PLUGINS", None)
    out = subprocess.run([str(python), "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_listed_by_the_cli(venv):
    out = subprocess.run([str(venv), "-m", "segzoo.cli", "list-models", "--json"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    names = [c["name"] for c in json.loads(out.stdout)]
    assert "TinyNet" in names and "PP-LiteSeg-T" in names
    plugins = subprocess.run([str(venv), "-m", "segzoo.cli", "plugins"], capture_output=True, text=True).stdout
    assert "TinyNet  [segzoo-tinynet 0.3.0]" in plugins
    assert "softmax-scores  [segzoo-tinynet 0.3.0]  hooks: postprocess" in plugins


def test_passes_the_model_contract(venv):
    out = run(
        venv,
        """
        from segzoo.testing import ModelContract
        c = ModelContract("TinyNet")
        c.check_all()
        print("ok", c.size)
        """,
    )
    assert out.startswith("ok")


def test_builds_and_trains_through_the_same_api(venv):
    out = run(
        venv,
        """
        import paddle, segzoo
        model = segzoo.build_model("TinyNet", num_classes=3, width=4)
        assert type(model).__name__ == "TinyNet" and model.body[0].weight.shape[0] == 4
        reg = segzoo.get_registry()
        cfg = reg.config("TinyNet", num_classes=3)
        x, y = paddle.randn([2, 3, 16, 16]), paddle.randint(0, 3, [2, 16, 16])
        loss = reg.train_step("TinyNet", cfg, model, x, y)["loss"]
        loss.backward()
        print(float(loss))
        """,
    )
    assert float(out) > 0


def test_hook_wrapper_from_an_entry_point_changes_every_model(venv):
    out = run(
        venv,
        """
        import paddle, segzoo
        reg = segzoo.get_registry()
        for name in ("TinyNet", "PP-LiteSeg-T"):
            cfg = reg.config(name, num_classes=3)
            probs = reg.postprocess(name, cfg, [paddle.randn([1, 3, 8, 8]) * 5])
            assert abs(float(probs.sum(axis=1).mean()) - 1) < 1e-5, name
        print("ok")
        """,
    )
    assert out.strip() == "ok"


def test_blocked_by_environment_variable(venv):
    env = dict(os.environ, SEGZOO_BLOCK_PLUGINS="TinyNet,softmax-scores")
    out = subprocess.run([str(venv), "-m", "segzoo.cli", "plugins"], capture_output=True, text=True, env=env)
    assert "TinyNet" not in out.stdout.replace("blocked by", "").split("SEGZOO_BLOCK_PLUGINS")[0]
    assert "blocked by SEGZOO_BLOCK_PLUGINS: TinyNet, softmax-scores" in out.stdout
