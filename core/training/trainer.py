"""The training loop: model-agnostic, driven by a validated config.

The loop knows no model: the network comes from the ``build_model`` hook, the
loss of a batch from ``train_step`` and the input normalisation from
``preprocess``; the optimizer and schedule follow the model's config
(:mod:`segzoo.training.optim`).

One iteration: a batch of augmented crops (:mod:`segzoo.training.data`), the
loss under ``paddle.amp.auto_cast`` when mixed precision is on (GPU only),
backward (scaled with AMP), the optimizer step (gradient clipping is part of
the optimizer when the config has ``grad_clip``), the schedule step. Every
``Train.eval_interval`` iterations (and at the end) the model is evaluated on
the val split and ``best_model/`` follows the best mIoU; every
``Train.save_interval`` iterations (and at the end) an ``iter_N/`` checkpoint
is written and all but the newest ``Train.keep_checkpoints`` are removed. At
the end the best model is exported to ``best_model/inference/``.

Training starts from ``Train.pretrain_weight_path`` (default: the model's
official ImageNet backbone weights; see :mod:`segzoo.training.init_weights`).
With ``Train.ema`` (the default) an exponential moving average of the weights
is kept, evaluated beside the weights at every evaluation and saved as
``model.pdema`` in every checkpoint (:mod:`segzoo.training.ema`).

Output folder (``Global.output``): ``train.log``, ``config.yaml`` (the config
as used, every default written out), ``train_result.json``, ``iter_N/``,
``best_model/``, ``training_curves.png``; see
:mod:`segzoo.training.checkpoint` for the checkpoint files and why a kill
never leaves a broken one.

``Train.resume_path=output/iter_N`` continues that run exactly: weights,
their EMA, optimizer moments, the schedule's position, the AMP loss scale,
the random generators, the best score and the loss/mIoU history come from the
checkpoint, and the sample stream restarts at iteration N (so on the CPU,
N iterations + resume == one uninterrupted run, bit for bit). With several
processes, every process resumes rank 0's random state. A run started without
``resume_path`` in a folder that holds ``iter_N`` checkpoints of an earlier
run removes them first (with a warning naming the resume option).

With several processes (``paddle.distributed.launch``; see
:mod:`segzoo.training.distributed`) the model is wrapped in
``paddle.DataParallel``, each process reads its own share of every batch,
and only rank 0 evaluates and writes files while the others wait.
"""

from __future__ import annotations

import datetime
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

from ..config import SegzooConfig, dump_config, load_config, model_config_for, resolve_config
from ..device import parse_device, set_device
from ..errors import ConfigError, DatasetError, SegzooError
from ..models import build_from_config
from ..noise import quiet_training
from ..registry import get_registry
from . import checkpoint as ckpt
from .data import TrainSamples, build_train_loader, raise_batch_error
from .distributed import STEP_DIGESTS, gather_ranks, in_launched_process, launch, needs_launch, params_sha1
from .ema import WeightsEMA
from .evaluation import evaluate_layer
from .init_weights import load_initial_weights
from .interrupt import interrupt_checked
from .metrics import compute_metrics, format_table
from .optim import build_optimizer, build_scheduler
from .plots import curves_png
from .resume import clear_earlier_run, report_interruption, resume
from .results import CONFIG_FILE, CURVES_PNG, write_result
from .rng import rng_state, seed_all
from .trainlog import close_log, log, open_log

__all__ = ["train", "Trainer"]


def _as_config(config, overrides: Sequence[str] = ()) -> SegzooConfig:
    if isinstance(config, SegzooConfig):
        if overrides:
            return load_config(data=config.model_dump(), overrides=overrides)
        return config
    if isinstance(config, dict):
        return load_config(data=config, overrides=overrides)
    return load_config(config, overrides=overrides)


def train(
    config: Union[SegzooConfig, dict, str, os.PathLike], overrides: Sequence[str] = (), progress: bool = True
) -> dict:
    """Train ``Global.model`` on ``Global.dataset_dir`` as the config says; return ``train_result.json``'s dict.

    ``config`` is a validated :class:`~segzoo.config.SegzooConfig`, a dict of
    sections or a YAML path; ``overrides`` are ``-o`` items. With several
    devices (``Global.device=gpu:0,1``) or ``Train.num_processes > 1`` this
    process re-launches itself through ``paddle.distributed.launch`` and
    returns when all processes are done.
    """
    cfg = _as_config(config, overrides)
    if not cfg.Global.dataset_dir:
        raise ConfigError("Global.dataset_dir: required for training; set -o Global.dataset_dir=DIR")
    if needs_launch(cfg) and not in_launched_process():
        return launch(cfg, progress=progress)
    return Trainer(cfg, progress=progress).run()


class Trainer:
    """One training run of a validated config (see the module docstring)."""

    def __init__(self, cfg: SegzooConfig, progress: bool = True):
        self.cfg = cfg
        self.name = cfg.Global.model
        self.model_config = model_config_for(cfg)
        self.out = Path(cfg.Global.output)
        self.progress = progress
        t = cfg.Train
        self.total = t.epochs_iters
        self.save_interval = t.save_interval or t.eval_interval
        self.history: dict[str, list] = {"iters": [], "loss": [], "lr": [], "eval_iters": [], "miou": []}
        self.best_miou: Optional[float] = None
        self.best_iter: Optional[int] = None
        self.last_metrics: Optional[dict] = None
        self.ema = None  # a WeightsEMA with Train.ema (rank 0 only)
        self.ema_miou: Optional[float] = None  # the EMA's mIoU at the last evaluation
        self._handlers: list = []  # the training log's, on rank 0
        self.step_sha1: list[str] = []  # with several processes: a SHA-1 of the weights after each first step
        self._iter: Optional[int] = None  # the last iteration done (for the message of an interruption)
        self._bar = None  # the training progress bar while it runs

    # -- set-up --------------------------------------------------------------------------
    def _setup_distributed(self):
        import paddle
        import paddle.distributed as dist

        self.world = dist.get_world_size()
        if self.world > 1:
            dist.init_parallel_env()
        self.rank = dist.get_rank() if self.world > 1 else 0
        self.is_main = self.rank == 0
        kind, _ = parse_device(self.cfg.Global.device)
        if self.world > 1 and kind == "gpu":
            paddle.set_device(f"gpu:{dist.ParallelEnv().device_id}")
            self.device = f"gpu:{dist.ParallelEnv().device_id}"
        else:
            self.device = set_device(self.cfg.Global.device)
        self.on_gpu = self.device.startswith("gpu")

    def _seed(self, offset: int = 0):
        seed_all(self.cfg.Train.seed + offset)

    # -- checkpoints -----------------------------------------------------------------------
    def _states(self, it: int, metrics: Optional[dict]) -> dict:
        return {
            "model_name": self.name,
            "iter": it,
            "total_iters": self.total,
            "mIoU": None if metrics is None else metrics["mIoU"],
            "metrics": metrics,
            "ema_mIoU": None if metrics is None else self.ema_miou,
            "best_mIoU": self.best_miou,
            "best_iter": self.best_iter,
            "num_classes": self.model_config.num_classes,
            "world_size": self.world,
            "rng": rng_state(self.on_gpu),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "history": self.history,
            "time": datetime.datetime.now().isoformat(timespec="seconds"),
        }

    def _save(self, folder: Path, it: int, metrics: Optional[dict]) -> Path:
        return ckpt.save_checkpoint(
            folder, self.model.state_dict(), self.optimizer.state_dict(), self._states(it, metrics),
            ema_state=None if self.ema is None else self.ema.state_dict(),
        )

    def _resume(self, path: str) -> int:
        want_ema = bool(self.cfg.Train.ema and self.is_main)
        got = resume(path, self.name, self.model_config.num_classes, self.total, self.model, self.optimizer,
                     self.scaler, self.on_gpu, want_ema, log)
        self._resumed_ema = got.ema_state
        self.best_miou, self.best_iter = got.best_miou, got.best_iter
        self.history = got.history or self.history
        return got.start

    def _write_result(self, done: bool, last_iter: int, **extra) -> dict:
        return write_result(self.out, self.name, done, last_iter, self.total, self.best_miou, self.best_iter, **extra)

    # -- evaluation ------------------------------------------------------------------------
    def _evaluate(self, it: int) -> Optional[dict]:
        t0 = time.perf_counter()
        cm = evaluate_layer(
            self.name, self.model_config, self.model, self.val_dataset, self.model_config.num_classes,
            progress=self.progress, desc=f"eval @{it}", batch_size=self.cfg.Train.batch_size,
        )
        metrics = compute_metrics(cm.matrix)
        names = self.val_dataset.class_names
        log.info("[EVAL] iter %d/%d, %d images, %.1fs\n%s", it, self.total, len(self.val_dataset),
                 time.perf_counter() - t0, format_table(metrics, names))
        if self.ema is not None:
            with self.ema.applied(self.model):
                ema_cm = evaluate_layer(
                    self.name, self.model_config, self.model, self.val_dataset, self.model_config.num_classes,
                    progress=self.progress, desc=f"eval EMA @{it}", batch_size=self.cfg.Train.batch_size,
                )
            ema_metrics = compute_metrics(ema_cm.matrix)
            self.ema_miou = ema_metrics["mIoU"]
            log.info("[EVAL] iter %d/%d, EMA of the weights (%s): mIoU %.4f, Acc %.4f", it, self.total, ckpt.EMA,
                     ema_metrics["mIoU"], ema_metrics["Acc"])
        miou = metrics["mIoU"]
        self.history["eval_iters"].append(it)
        self.history["miou"].append(None if not math.isfinite(miou) else miou)
        return metrics

    # -- the run ---------------------------------------------------------------------------
    def run(self) -> dict:
        """Train; returns the final ``train_result.json`` dict (``{}`` on ranks other than 0)."""
        import paddle

        # fresh parameter names for every run: optimizer states are keyed by them, so a checkpoint
        # resumes in any process (also a second run in the same Python process)
        with paddle.utils.unique_name.guard():
            return self._run()

    def _run(self) -> dict:
        import paddle

        from ..datasets import SegDataset
        from .transforms import Augment  # cv2

        self._setup_distributed()
        cfg, t = self.cfg, self.cfg.Train
        if self.is_main:
            self._handlers = open_log(self.out)
            ckpt.recover(self.out)
            dump_config(resolve_config(cfg), self.out / CONFIG_FILE)
        try:
            # data first: a broken dataset fails before the model is built
            train_ds = SegDataset(cfg.Global.dataset_dir, "train")
            if len(train_ds) == 0:
                raise DatasetError(f"{train_ds.list_file}: no training samples")
            val_list = Path(cfg.Global.dataset_dir) / "val.txt"
            self.val_dataset = SegDataset(cfg.Global.dataset_dir, "val") if val_list.is_file() else None
            if self.val_dataset is not None and len(self.val_dataset) == 0:
                self.val_dataset = None
            if self.val_dataset is None and self.is_main:
                log.warning("%s has no val samples: no evaluation; best_model is the last checkpoint", val_list)

            self._seed()
            self.model = build_from_config(self.name, self.model_config)
            if not t.resume_path:
                load_initial_weights(self.model, t.pretrain_weight_path, self.name, self.model_config.num_classes,
                                     log if self.is_main else None)
            if self.rank:
                self._seed(self.rank)  # dropout differs per process; the weights are broadcast by DataParallel
            self.scheduler = build_scheduler(self.model_config, self.total)
            self.optimizer = build_optimizer(self.model_config, self.model.parameters(), self.scheduler)
            use_amp = bool(self.on_gpu if t.amp is None else t.amp)
            if use_amp and not self.on_gpu:
                log.warning("Train.amp: mixed precision is used on GPUs only; training in float32 on %s", self.device)
                use_amp = False
            self.use_amp = use_amp
            self.scaler = paddle.amp.GradScaler(init_loss_scaling=1024.0) if use_amp else None

            self._resumed_ema = None
            if t.resume_path:
                start = self._resume(t.resume_path)
            else:
                start = 0
                if self.is_main:
                    clear_earlier_run(self.out, log)
            if t.ema and self.is_main:
                self.ema = WeightsEMA(self.model, t.ema_decay)
                if self._resumed_ema is not None:
                    self.ema.load(self._resumed_ema, f"{t.resume_path}/{ckpt.EMA}")
                self._resumed_ema = None
            net = paddle.DataParallel(self.model) if self.world > 1 else self.model

            augment = Augment.from_config(t.augment, self.model_config.crop_size, self.model_config.ignore_index)
            samples = TrainSamples(train_ds, self.name, self.model_config, augment, t.seed,
                                   self.model_config.num_classes)
            loader = build_train_loader(samples, t.batch_size, t.seed, start, self.total, t.num_workers)
            if self.is_main:
                log.info(
                    "training %s on %s: %d train / %d val images, %d classes, %d iterations from %d, batch %d x %d "
                    "process(es), crop %s, %s lr %.3g, device %s, amp %s, ema %s",
                    self.name, cfg.Global.dataset_dir, len(train_ds),
                    len(self.val_dataset) if self.val_dataset else 0, self.model_config.num_classes, self.total,
                    start, t.batch_size, self.world, tuple(self.model_config.crop_size),
                    self.model_config.optimizer, self.model_config.learning_rate, self.device, use_amp,
                    t.ema_decay if t.ema else "off",
                )
            result = self._loop(net, loader, start)
            return result
        except KeyboardInterrupt:  # Ctrl-C: train.log and stderr say where the run stopped and how to resume it
            if self.is_main:
                if self._bar is not None:
                    self._bar.close()
                report_interruption(self.out, self.out / CONFIG_FILE, self._iter, self.total, log)
            raise
        finally:
            if self.is_main:
                close_log(self._handlers)

    def _loop(self, net, loader, start: int) -> dict:
        import paddle
        import paddle.distributed as dist
        from tqdm import tqdm

        registry = get_registry()
        t = self.cfg.Train
        bar = self._bar = tqdm(total=self.total, initial=start, desc=f"train {self.name}", file=sys.stderr,
                               disable=not (self.progress and self.is_main), dynamic_ncols=True)
        quiet_training()  # batch norm's "we now always track global mean and variance" at every step
        seen: list = []
        window_loss, window_n, window_t0 = 0.0, 0, time.perf_counter()
        it = start
        net.train()
        t_start = time.perf_counter()
        for images, labels, keys, error in interrupt_checked(loader):
            raise_batch_error(error)
            it += 1
            if len(seen) < 4 * t.batch_size:
                seen.extend(tuple(int(v) for v in k) for k in np.asarray(keys))
            with paddle.amp.auto_cast(enable=self.use_amp, level="O1"):
                out = registry.train_step(self.name, self.model_config, net, images, labels)
            loss = out["loss"]
            if self.scaler is not None:
                self.scaler.scale(loss).backward()
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                loss.backward()
                self.optimizer.step()
            self.optimizer.clear_grad()
            lr = float(self.optimizer.get_lr())
            self.scheduler.step()
            if self.ema is not None:
                self.ema.update(self.model, it)
            if self.world > 1 and len(self.step_sha1) < STEP_DIGESTS:  # the ranks agree after every step
                self.step_sha1.append(params_sha1(self.model))
            loss_value = float(loss)
            if not math.isfinite(loss_value) and self.scaler is None:
                raise ConfigError(
                    f"training diverged: the loss is {loss_value} at iteration {it}; lower Train.learning_rate "
                    f"(now {self.model_config.learning_rate}) or set Model.grad_clip"
                )
            window_loss += loss_value
            window_n += 1
            self._iter = it
            if self.is_main:  # before update(), which draws it: the bar shows this iteration's loss
                rate = bar.format_dict.get("rate") or 0.0  # iterations per second
                bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{lr:.2e}", img_s=f"{t.batch_size * self.world * rate:.1f}",
                                refresh=False)
            bar.update(1)
            if it % t.log_interval == 0 or it == self.total:
                elapsed = time.perf_counter() - window_t0
                mean_loss = window_loss / max(window_n, 1)
                if self.world > 1:  # the mean over all processes (each saw its own share of the batches)
                    total_loss = paddle.to_tensor([mean_loss], dtype="float32")
                    dist.all_reduce(total_loss)
                    mean_loss = float(total_loss.numpy().reshape(-1)[0]) / self.world
                self.history["iters"].append(it)
                self.history["loss"].append(mean_loss)
                self.history["lr"].append(lr)
                if self.is_main:
                    per_iter = elapsed / max(window_n, 1)
                    eta = datetime.timedelta(seconds=int(per_iter * (self.total - it)))
                    log.info(
                        "[TRAIN] iter: %d/%d, loss: %.4f, lr: %.6f, batch_cost: %.3fs, ips: %.2f samples/s, eta: %s",
                        it, self.total, mean_loss, lr, per_iter,
                        t.batch_size * self.world / per_iter if per_iter else 0.0, eta,
                    )
                window_loss, window_n, window_t0 = 0.0, 0, time.perf_counter()

            do_eval = self.val_dataset is not None and (it % t.eval_interval == 0 or it == self.total)
            do_save = it % self.save_interval == 0 or it == self.total
            metrics = None
            t_pause = time.perf_counter()
            if self.is_main and (do_eval or do_save):
                if do_eval:
                    metrics = self._evaluate(it)
                    self.last_metrics = metrics
                    miou = metrics["mIoU"]
                    if math.isfinite(miou) and (self.best_miou is None or miou > self.best_miou):
                        self.best_miou, self.best_iter = miou, it
                        self._save(self.out / "best_model", it, metrics)
                        log.info("[EVAL] new best mIoU %.4f at iteration %d (best_model/)", miou, it)
                    best = float("nan") if self.best_miou is None else self.best_miou
                    ema = "" if self.ema is None else f", EMA mIoU {self.ema_miou:.4f}"
                    bar.write(f"[EVAL] iter {it}: mIoU {miou:.4f} Acc {metrics['Acc']:.4f} "
                              f"(best {best:.4f} @ {self.best_iter}){ema}", file=sys.stderr)
                if do_save:
                    self._save(self.out / f"iter_{it}", it, metrics)
                    ckpt.prune_checkpoints(self.out, t.keep_checkpoints)
                self._write_result(False, it)
                net.train()
            if self.world > 1 and (do_eval or do_save):
                dist.barrier()
            window_t0 += time.perf_counter() - t_pause  # batch_cost and ips count training only
        bar.close()
        train_seconds = time.perf_counter() - t_start
        return self._finish(it, seen, train_seconds)

    def _finish(self, last_iter: int, seen: list, train_seconds: float) -> dict:
        import paddle.distributed as dist

        dist_info = gather_ranks(self.model, self.rank, self.world, seen, self.step_sha1) if self.world > 1 else None
        if not self.is_main:
            dist.barrier()
            return {}
        best = self.out / "best_model"
        if not (best / ckpt.WEIGHTS).exists():
            # no evaluation ran: the last weights are the best we know
            self._save(best, last_iter, self.last_metrics)
        export_info = None
        if self.cfg.Train.export:
            export_info = self._export(best)
        if self.history["iters"]:
            try:
                curves_png(self.history, self.out / CURVES_PNG, title=f"{self.name} on {self.cfg.Global.dataset_dir}")
            except Exception as exc:  # a picture must not fail a finished training
                log.warning("could not draw %s: %s", CURVES_PNG, exc)
        extra: dict[str, Any] = {"train_seconds": round(train_seconds, 2), "export_info": export_info}
        if dist_info is not None:
            extra["distributed"] = dist_info
        result = self._write_result(True, last_iter, **extra)
        log.info("done: best mIoU %s at iteration %s; results in %s", self.best_miou, self.best_iter, self.out)
        if self.world > 1:
            dist.barrier()
        return result

    def _export(self, best: Path) -> dict:
        try:
            from ..inference import export_model
        except ImportError as exc:
            log.warning("export skipped: segzoo.inference is not available (%s)", exc)
            return {"exported": False, "reason": f"segzoo.inference is not available: {exc}"}
        target = best / "inference"
        try:
            export_model(self.name, target, config=self.model_config.model_copy(update={"pretrained": None}),
                         weights=best / ckpt.WEIGHTS)
        except SegzooError as exc:
            log.warning("export of the best model failed: %s", exc)
            return {"exported": False, "reason": str(exc)}
        log.info("exported the best model to %s", target)
        return {"exported": True, "model_dir": target.relative_to(self.out).as_posix()}
