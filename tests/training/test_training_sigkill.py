"""A real `segzoo train` process killed with SIGKILL at several moments leaves no broken file behind.

The pause points are the documented test hook of :mod:`segzoo.training.checkpoint`
(``SEGZOO_TEST_TRAIN_PAUSE``): the process prints a marker on stderr and sleeps
exactly where a kill hurts most, and the test kills it there.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path

import paddle
import pytest
import yaml

from segzoo.training import checkpoint as ckpt

pytestmark = pytest.mark.skipif(os.name != "posix", reason="SIGKILL")


def _start(cmd, pause=None):
    env = dict(os.environ)
    env.pop(ckpt.PAUSE_ENV, None)
    if pause:
        env[ckpt.PAUSE_ENV] = pause
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    lines: queue.Queue = queue.Queue()

    def pump():
        for line in proc.stderr:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return proc, lines


def _wait_for(lines, marker, proc, timeout=120.0):
    end = time.monotonic() + timeout
    seen = []
    while time.monotonic() < end:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            continue
        if line is None:
            break
        seen.append(line)
        if marker in line:
            return
    proc.kill()
    raise AssertionError(f"{marker!r} never appeared; stderr:\n{''.join(seen[-30:])}")


def _kill(proc):
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def _assert_consistent(out: Path) -> list[int]:
    """Every iter_N and best_model is complete and readable; train_result.json is valid and points at real files."""
    found = []
    for child in out.iterdir():
        if child.name.startswith("iter_") or child.name == "best_model":
            for name in (ckpt.WEIGHTS, ckpt.OPTIMIZER, ckpt.STATES):
                assert (child / name).is_file(), f"{child}/{name} missing"
            assert paddle.load(str(child / ckpt.WEIGHTS))
            assert paddle.load(str(child / ckpt.OPTIMIZER))
            states = ckpt.read_states(child)
            if child.name.startswith("iter_"):
                assert states["iter"] == int(child.name[5:])
                found.append(states["iter"])
    result_file = out / "train_result.json"
    if result_file.exists():
        result = json.loads(result_file.read_text())
        for entry in result["models"].values():
            for key in ("pdparams", "pdopt", "pdstates"):
                if entry[key]:
                    assert (out / entry[key]).is_file(), entry[key]
    return sorted(found)


@pytest.mark.slow
def test_sigkill_at_any_moment_then_resume(shapes64, tmp_path, tiny_train, segzoo_cmd):
    out = tmp_path / "out"
    cfg = tiny_train("SeaFormer_tiny", shapes64, out, epochs_iters=12, save_interval=2, eval_interval=4,
                     keep_checkpoints=3)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    base = segzoo_cmd("train", "-c", path, "--no-progress")

    # 1. killed while the first checkpoint's files are written, before the folder is renamed into place
    proc, lines = _start(base, pause="checkpoint_files")
    _wait_for(lines, "SEGZOO_TRAIN_PAUSED checkpoint_files", proc)
    _kill(proc)
    assert any(p.name.startswith(".iter_2.tmp-") for p in out.iterdir())  # the half-done folder...
    assert not (out / "iter_2").exists()  # ...never carries the checkpoint's name
    assert _assert_consistent(out) == []

    # 2. a fresh start cleans up; killed mid-training, right after iter_6 appeared
    proc, lines = _start(base)
    deadline = time.monotonic() + 120
    while not (out / "iter_6").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    _kill(proc)
    assert not any(".tmp-" in p.name for p in out.iterdir() if p.name.startswith(".iter_2"))
    assert _assert_consistent(out)[-1] >= 6

    # 3. resumed from iter_4, killed between the two renames that replace the existing iter_6
    resume4 = base + ["-o", f"Train.resume_path={out / 'iter_4'}"]
    proc, lines = _start(resume4, pause="checkpoint_swap")
    _wait_for(lines, "SEGZOO_TRAIN_PAUSED checkpoint_swap", proc)
    _kill(proc)
    assert not (out / "iter_6").exists() and any(p.name.startswith(".iter_6.old-") for p in out.iterdir())

    # 4. the next start puts the old iter_6 back; killed just before train_result.json is replaced
    before = (out / "train_result.json").read_text()
    proc, lines = _start(resume4, pause="result_json")
    _wait_for(lines, "SEGZOO_TRAIN_PAUSED result_json", proc)
    _kill(proc)
    assert (out / "iter_6").is_dir()
    assert (out / "train_result.json").read_text() == before  # the old, complete file
    json.loads(before)
    assert 6 in _assert_consistent(out)

    # 5. resume from the latest checkpoint and finish
    latest = ckpt.latest_checkpoint(out)
    done = subprocess.run(base + ["-o", f"Train.resume_path={latest}"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((out / "train_result.json").read_text())
    assert result["done_flag"] is True and result["last_iter"] == 12
    assert _assert_consistent(out) == [8, 10, 12]  # keep_checkpoints=3
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]
    assert (out / "train.log").read_text().count("resumed from") >= 2
