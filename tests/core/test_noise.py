"""Paddle's noise is silenced where it is raised, in a real process, and every other warning still shows.

One child process does what a user does in Python, with the thread count set
(``OMP_NUM_THREADS=2``): ``import segzoo``, ``create_model`` on the demo's
weights (the first ``import paddle``: the ccache warning and the
OMP_NUM_THREADS lines), an export (``paddle.jit.to_static``: the PIR glog
line). Its stderr must hold none of them, and must hold a warning of its own
and the lines written on descriptor 2 beside the silenced ones.
(Batch norm's training warning: tests/training/test_training_display.py.)
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import os, sys, warnings
    import segzoo
    from segzoo.inference import create_model, export_model
    from segzoo.inference.demo import read_demo_yml
    from segzoo.noise import OMP_LINES, stderr_without

    demo = read_demo_yml()
    model = create_model(demo["model_name"], model_dir=demo["weights"], num_classes=4, engine="dygraph", device="cpu")
    assert "paddle" in sys.modules
    warnings.warn("segzoo-test: a real warning")
    export_model(model.model_name, sys.argv[1], config=model.config, layer=model.layer)
    with stderr_without(*OMP_LINES):
        os.write(2, OMP_LINES[1] + b"\\n" + b"segzoo-test: a real line beside it\\n")
        print("segzoo-test: a Python line beside it", file=sys.stderr)
    print("exported", sorted(os.listdir(sys.argv[1])))
    """
)

NOISE = (
    "No ccache found",
    "OMP_NUM_THREADS set to",
    "PLEASE USE OMP_NUM_THREADS WISELY",
    "not support input out tensor",
)


def test_paddles_noise_is_silenced_and_real_warnings_show(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="2", SEGZOO_HOME=str(tmp_path / "home"))
    env.pop("PYTHONWARNINGS", None)
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "export")], env=env, capture_output=True,
                          text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "exported ['inference.json', 'inference.pdiparams', 'inference.yml']" in proc.stdout
    for noise in NOISE:
        assert noise not in out, out
    assert "UserWarning: segzoo-test: a real warning" in proc.stderr
    assert "segzoo-test: a real line beside it" in proc.stderr
    assert "segzoo-test: a Python line beside it" in proc.stderr
    assert "loaded 386 tensors" in proc.stderr  # segzoo's own log lines are untouched
