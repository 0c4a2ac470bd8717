"""Data-parallel training on several processes through Paddle's own launcher.

``Global.device=gpu:0,1`` (one process per GPU) or ``Train.num_processes=2``
on the CPU makes :func:`segzoo.training.train` write the validated config to
``<output>/launch/config.yaml`` and run::

    python -m paddle.distributed.launch --nproc_per_node N [--devices 0,1] \\
        --log_dir <output>/launch --max_restart 0 <segzoo's launch script> train -c <output>/launch/config.yaml

Each launched process sees ``PADDLE_TRAINERS_NUM`` in its environment, so it
trains instead of launching again: it joins the process group
(``paddle.distributed.init_parallel_env``; NCCL on GPUs, Gloo on the CPU),
wraps the model in ``paddle.DataParallel`` (gradients are averaged across
processes at every step, so the weights stay identical) and reads its own
share of each batch (:mod:`segzoo.training.data`). Only rank 0 evaluates and
writes files; the others wait at a barrier. ``train_result.json`` gets a
``distributed`` entry: the world size, the first samples each rank read and
a SHA-1 of each rank's final trainable parameters (BatchNorm's running
statistics are not synchronised: each process computes them from its own
batches, as in PaddleSeg without SyncBatchNorm; rank 0's are saved).

**Several machines.** ``Train.nnodes``, ``Train.master`` and ``Train.node_rank``
(``segzoo train -c cfg.yaml --nnodes 2 --master HOST:PORT --rank R`` on each
machine, the same config, R = 0 on the machine at HOST) add ``--nnodes``,
``--master`` and ``--rank`` to the launcher: the launchers meet at node 0's
``HOST:PORT`` and start one job whose ranks span the machines (rank 0 is node
0's first process). Only global rank 0 writes checkpoints, ``train.log`` and
``train_result.json``, on node 0; the other machines keep only their
launcher's logs (``<output>/launch``). Every rank records a SHA-1 of its
weights after each of the first :data:`STEP_DIGESTS` steps (``step_sha1``).
Resuming works as on one machine, with ``Train.resume_path`` readable at the
same path on every machine (a shared folder, or node 0's ``iter_N`` copied
over): every process loads it. The dataset too must be at the same path.

Paddle 3.3.1's CPU build runs this with the Gloo backend (``Global.device=cpu``
with ``Train.num_processes=2``; on 2 cores it trains 1.6x faster than one
process, since Paddle's CPU kernels use one thread each), so CI tests the
whole path -- launcher, process group, ``DataParallel``, sharded batches,
rank-0-only files -- without a GPU. The GPU path differs only in the device
each process binds (``ParallelEnv().device_id``), the backend Paddle picks (NCCL)
and mixed precision (on by default on GPUs); verify it on a 2-GPU machine with
``segzoo train -c cfg.yaml -o Global.device=gpu:0,1`` and check that
``train_result.json``'s ``distributed.ranks`` list two different sample sets
and one ``params_sha1``. Each process's
output is in ``<output>/launch/workerlog.N``; a failing process makes the
launcher stop the others (``--max_restart 0``: no automatic restarts), and
:func:`launch` raises an error with the last error line of the worker logs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Optional

from ..config import SegzooConfig, dump_config
from ..device import parse_device, set_device
from ..errors import ConfigError, SegzooError

__all__ = ["requested_processes", "needs_launch", "in_launched_process", "launch", "gather_ranks", "params_sha1",
           "LAUNCH_DIR", "STEP_DIGESTS"]

LAUNCH_DIR = "launch"
#: steps after which each rank records a SHA-1 of its weights (train_result.json's ``step_sha1``)
STEP_DIGESTS = 8


def requested_processes(cfg: SegzooConfig) -> int:
    """How many training processes the config asks for."""
    kind, ids = parse_device(cfg.Global.device) if cfg.Global.device else ("auto", [])
    if kind == "gpu" and len(ids) > 1:
        if cfg.Train.num_processes not in (1, len(ids)):
            raise ConfigError(
                f"Train.num_processes: {cfg.Train.num_processes} does not match the {len(ids)} GPUs of "
                f"Global.device={cfg.Global.device}; leave it at 1 (one process per GPU)"
            )
        return len(ids)
    return cfg.Train.num_processes


def needs_launch(cfg: SegzooConfig) -> bool:
    """Whether ``cfg`` trains in launched processes: several on this machine, or several machines."""
    return requested_processes(cfg) > 1 or cfg.Train.nnodes > 1


def in_launched_process() -> bool:
    """True inside a process started by ``paddle.distributed.launch``."""
    return int(os.environ.get("PADDLE_TRAINERS_NUM", "1") or 1) > 1 or "PADDLE_TRAINER_ID" in os.environ


def _last_error(log_dir: Path) -> str:
    """The error a worker printed (rank 0's first), without the ``segzoo train: error:`` prefix."""
    for log in sorted(log_dir.glob("workerlog.*")):
        try:
            text = log.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
        for line in reversed(text):
            if ": error: " in line and line.startswith("segzoo"):
                return f"{log.name}: {line.split(': error: ', 1)[1].strip()}"
        for line in reversed(text):
            if line.strip() and ("Error" in line or "error" in line) and not line.lower().startswith("warn"):
                return f"{log.name}: {line.strip()}"
    return ""


def launch(cfg: SegzooConfig, progress: bool = True) -> dict:
    """Run the training of ``cfg`` in ``N`` processes; return rank 0's ``train_result.json``."""
    import json

    n = requested_processes(cfg)
    kind, ids = parse_device(cfg.Global.device) if cfg.Global.device else ("cpu", [])
    if kind == "gpu":  # fail here, with one message, rather than in every launched process
        import paddle

        set_device(f"gpu:{ids[0]}")  # names the fix when this paddle has no CUDA
        count = paddle.device.cuda.device_count()
        if max(ids) >= count:
            raise ConfigError(
                f"Global.device: {cfg.Global.device} names GPU {max(ids)}, but {count} GPU(s) are visible "
                f"(ids 0..{count - 1}); check CUDA_VISIBLE_DEVICES"
            )
    out = Path(cfg.Global.output)
    log_dir = out / LAUNCH_DIR
    log_dir.mkdir(parents=True, exist_ok=True)
    cfg_path = dump_config(cfg, log_dir / "config.yaml")
    script = Path(__file__).with_name("_launch_main.py")
    cmd = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", str(n),
           "--log_dir", str(log_dir), "--max_restart", "0"]
    nodes = cfg.Train.nnodes
    if nodes > 1:  # every machine runs this with its own node_rank; node 0's master is where they meet
        cmd += ["--nnodes", str(nodes), "--master", str(cfg.Train.master), "--rank", str(cfg.Train.node_rank)]
    if kind == "gpu":
        cmd += ["--devices", ",".join(str(i) for i in ids)]
    cmd += [str(script), "train", "-c", str(cfg_path)] + ([] if progress else ["--no-progress"])
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    proc = subprocess.run(cmd, env=env)
    if proc.returncode != 0:
        detail = _last_error(log_dir)
        where = f"{n} processes" if nodes == 1 else f"{n} process(es) on node {cfg.Train.node_rank} of {nodes}"
        raise SegzooError(
            f"distributed training ({where}) failed with exit status {proc.returncode}"
            + (f"; {detail}" if detail else "")
            + f" (the log of each process is in {log_dir}/workerlog.N)"
        )
    result_path = out / "train_result.json"
    return json.loads(result_path.read_text(encoding="utf-8")) if result_path.is_file() else {}


def params_sha1(model) -> str:
    """A SHA-1 of ``model``'s trainable parameters (names and values).

    Trainable parameters only: BatchNorm statistics (non-trainable) come from each process's own batches.
    """
    import hashlib

    import numpy as np

    h = hashlib.sha1()
    params = {name: p for name, p in model.named_parameters() if not p.stop_gradient}
    for key in sorted(params):
        h.update(key.encode())
        h.update(np.ascontiguousarray(params[key].numpy()).tobytes())
    return h.hexdigest()


def gather_ranks(model, rank: int, world: int, first_samples: list, step_sha1: Optional[list] = None) -> dict:
    """``train_result.json``'s ``distributed`` entry: every rank's first samples and SHA-1s of its weights.

    ``params_sha1`` after the last step, ``step_sha1`` after each of the first
    :data:`STEP_DIGESTS` steps (see :func:`params_sha1`).
    """
    import paddle.distributed as dist

    mine = {"rank": rank, "first_samples": first_samples, "params_sha1": params_sha1(model),
            "step_sha1": list(step_sha1 or [])}
    gathered: list = []
    dist.all_gather_object(gathered, mine)
    return {"world_size": world, "ranks": sorted(gathered, key=lambda r: r["rank"])}
