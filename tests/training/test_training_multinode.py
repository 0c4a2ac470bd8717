"""Training across machines: two ``segzoo train --nnodes 2 --master 127.0.0.1:PORT --rank R`` launchers on this one.

Each launcher is Paddle's real ``paddle.distributed.launch`` with one CPU
process (Gloo); they meet at node 0's master and train as one job of 2 ranks.
"""

from __future__ import annotations

import json
import socket
import subprocess

import yaml


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _two_nodes(segzoo_cmd, cfg_path, tmp_path, *extra: str) -> list[subprocess.CompletedProcess]:
    master = f"127.0.0.1:{_free_port()}"
    procs = [
        subprocess.Popen(
            segzoo_cmd("train", "-c", cfg_path, "--no-progress", "--nnodes", "2", "--master", master, "--rank", rank,
                       "--output", tmp_path / f"node{rank}", *extra),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for rank in ("0", "1")
    ]
    done = []
    for proc in procs:
        out, err = proc.communicate(timeout=400)
        done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return done


def test_two_launchers_train_as_one_job_and_only_node_0_writes(shapes64, tmp_path, tiny_train, segzoo_cmd):
    cfg = tiny_train("SeaFormer_tiny", shapes64, tmp_path / "unused", epochs_iters=3, eval_interval=2)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    node0, node1 = _two_nodes(segzoo_cmd, path, tmp_path)
    assert node0.returncode == 0, node0.stderr[-3000:] + node1.stderr[-2000:]
    assert node1.returncode == 0, node1.stderr[-3000:]
    assert "done: node 1 of 2; node 0 wrote the checkpoints" in node1.stdout
    out0, out1 = tmp_path / "node0", tmp_path / "node1"
    result = json.loads((out0 / "train_result.json").read_text())
    assert result["done_flag"] is True and result["last_iter"] == 3
    dist = result["distributed"]
    assert dist["world_size"] == 2
    r0, r1 = dist["ranks"]
    assert (r0["rank"], r1["rank"]) == (0, 1)
    # the same weights on both ranks after each step, and at the end
    assert len(r0["step_sha1"]) == 3 and r0["step_sha1"] == r1["step_sha1"]
    assert len(set(r0["step_sha1"])) == 3  # the weights did change at every step
    assert r0["params_sha1"] == r1["params_sha1"] == r0["step_sha1"][-1]
    # each rank read its own share of every batch
    assert not {tuple(k) for k in r0["first_samples"]} & {tuple(k) for k in r1["first_samples"]}
    # node 0 wrote everything; node 1 only its launcher's logs
    assert sorted(p.name for p in out0.iterdir() if p.name.startswith("iter_")) == ["iter_2", "iter_3"]
    assert (out0 / "train.log").is_file() and (out0 / "best_model").is_dir()
    assert sorted(p.name for p in out1.iterdir()) == ["launch"]
    assert (out1 / "launch" / "workerlog.0").is_file()

    # resume as on one machine: both nodes continue from node 0's iter_2 to iteration 4
    resumed0, resumed1 = _two_nodes(segzoo_cmd, path, tmp_path, "-o", f"Train.resume_path={out0 / 'iter_2'}",
                                    "-o", "Train.epochs_iters=4")
    assert resumed0.returncode == 0 and resumed1.returncode == 0, resumed0.stderr[-3000:] + resumed1.stderr[-2000:]
    again = json.loads((out0 / "train_result.json").read_text())
    assert again["last_iter"] == 4
    a0, a1 = again["distributed"]["ranks"]
    assert len(a0["step_sha1"]) == 2 and a0["step_sha1"] == a1["step_sha1"] and a0["params_sha1"] == a1["params_sha1"]
    assert sorted(p.name for p in out1.iterdir()) == ["launch"]


def test_node_settings_are_checked_before_launching(shapes64, tmp_path, tiny_train, segzoo_cmd):
    cfg = tiny_train("SeaFormer_tiny", shapes64, tmp_path / "o")
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    for flags, message in (
        (["--nnodes", "2", "--rank", "1"], "nnodes 2 needs master: HOST:PORT of node 0"),
        (["--nnodes", "2", "--master", "127.0.0.1:9", "--rank", "2"], "node_rank 2 must be below nnodes (2)"),
        (["--nnodes", "2", "--master", "host", "--rank", "0"], "master 'host' must be HOST:PORT"),
    ):
        proc = subprocess.run(segzoo_cmd("train", "-c", path, *flags), capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr[-2000:]
        assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()
