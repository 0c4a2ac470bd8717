"""Data-parallel training in 2 CPU processes (Paddle's launcher, Gloo backend)."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml


@pytest.mark.slow
def test_two_cpu_processes_read_different_data_and_stay_in_sync(shapes64, tmp_path, tiny_train, segzoo_cmd):
    out = tmp_path / "out"
    cfg = tiny_train("SeaFormer_tiny", shapes64, out, epochs_iters=3, eval_interval=2, num_processes=2)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    # the PaddleX form: segzoo -c cfg.yaml -o Global.mode=train
    proc = subprocess.run(segzoo_cmd("-c", path, "-o", "Global.mode=train"), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    result = json.loads((out / "train_result.json").read_text())
    assert result["done_flag"] is True and result["last_iter"] == 3
    dist = result["distributed"]
    assert dist["world_size"] == 2
    r0, r1 = dist["ranks"]
    assert (r0["rank"], r1["rank"]) == (0, 1)
    # 3 iterations × batch 2 per process: each saw 6 samples, none in common within the first epoch of 12
    first0 = [tuple(k) for k in r0["first_samples"]]
    first1 = [tuple(k) for k in r1["first_samples"]]
    assert len(first0) == len(first1) == 6
    assert not set(first0) & set(first1)
    # gradients are averaged across processes: the trainable weights are identical at the end
    assert r0["params_sha1"] == r1["params_sha1"]
    # only rank 0 wrote the outputs; each process has its own log from the launcher
    assert (out / "launch" / "workerlog.0").is_file() and (out / "launch" / "workerlog.1").is_file()
    assert (out / "train.log").read_text().count("[TRAIN] iter: 3/3") == 1
    assert sorted(p.name for p in out.iterdir() if p.name.startswith("iter_")) == ["iter_2", "iter_3"]


def test_a_failing_process_reports_the_error(shapes64, tmp_path, tiny_train, segzoo_cmd):
    cfg = tiny_train("SeaFormer_tiny", shapes64, tmp_path / "o", epochs_iters=2, num_processes=2, num_classes=2)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = subprocess.run(segzoo_cmd("train", "-c", path, "--no-progress"), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2
    err = proc.stderr
    assert "segzoo train: error: distributed training (2 processes) failed" in err
    assert ">= num_classes (2)" in err and "workerlog" in err


def test_process_count_and_gpu_requests_are_checked_before_launching(shapes64, tmp_path, tiny_train):
    import paddle

    from segzoo.config import load_config
    from segzoo.errors import ConfigError, DependencyError
    from segzoo.training import train
    from segzoo.training.distributed import requested_processes

    cfg = tiny_train("SeaFormer_tiny", shapes64, tmp_path / "o")
    assert requested_processes(load_config(data=cfg)) == 1
    assert requested_processes(load_config(data=cfg, overrides=["Train.num_processes=3"])) == 3
    gpus = load_config(data=cfg, overrides=["Global.device=gpu:0,1"])
    assert requested_processes(gpus) == 2
    with pytest.raises(ConfigError, match="Train.num_processes: 3 does not match the 2 GPUs"):
        requested_processes(load_config(data=cfg, overrides=["Global.device=gpu:0,1", "Train.num_processes=3"]))
    if not paddle.device.is_compiled_with_cuda():
        with pytest.raises(DependencyError, match="CPU build"):
            train(gpus, progress=False)
        assert not (tmp_path / "o" / "launch" / "workerlog.0").exists()
