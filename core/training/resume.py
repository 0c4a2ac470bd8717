"""Resuming a training run: the checks that a checkpoint fits the config, and the state it gives back.

``Train.resume_path=output/iter_N`` restores the weights, the optimizer
moments, the AMP loss scale and the random generators in place, and gives
back what the trainer keeps itself (the iteration, the best score, the
history, the EMA's weights). A fresh run in a folder holding an earlier run's
``iter_N`` checkpoints removes them first (:func:`clear_earlier_run`). A run
stopped with Ctrl-C names the command that resumes it (:func:`report_interruption`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..errors import ConfigError
from . import checkpoint as ckpt
from .rng import set_rng_state

__all__ = ["Resumed", "resume", "clear_earlier_run", "report_interruption"]


@dataclass
class Resumed:
    """What a checkpoint gives back besides the weights, optimizer, loss scale and random state."""

    start: int
    best_miou: Optional[float]
    best_iter: Optional[int]
    history: Optional[dict]
    ema_state: Optional[dict]


def resume(path: str, name: str, num_classes: int, total: int, model, optimizer, scaler, on_gpu: bool,
           want_ema: bool, log: logging.Logger) -> Resumed:
    """Load the checkpoint ``path`` into ``model``/``optimizer``/``scaler`` and the generators; see :class:`Resumed`.

    ``want_ema``: read ``model.pdema`` too (rank 0 with ``Train.ema``).
    Raises :class:`ConfigError` when the checkpoint is of another model or
    class count, or already at ``total`` iterations.
    """
    model_state, opt_state, states = ckpt.load_checkpoint(path)
    if states.get("model_name") not in (None, name):
        raise ConfigError(f"Train.resume_path: {path} is a checkpoint of {states['model_name']}, not {name}")
    if states.get("num_classes") not in (None, num_classes):
        raise ConfigError(
            f"Train.resume_path: {path} was trained with num_classes={states['num_classes']}, the config "
            f"says {num_classes}; use the same Train.num_classes"
        )
    start = int(states["iter"])
    if start >= total:
        raise ConfigError(
            f"Train.resume_path: {path} is at iteration {start}, Train.epochs_iters is {total}; "
            "raise Train.epochs_iters to train longer"
        )
    model.set_state_dict(model_state)
    ema_state = ckpt.read_ema(path) if want_ema else None
    if want_ema and ema_state is None:
        log.warning("%s holds no %s (trained without Train.ema): the EMA starts from its weights", path, ckpt.EMA)
    if opt_state is not None:
        optimizer.set_state_dict(opt_state)
    if scaler is not None and states.get("scaler"):
        scaler.load_state_dict(states["scaler"])
    set_rng_state(states.get("rng"), on_gpu)
    log.info("resumed from %s at iteration %d", path, start)
    return Resumed(start, states.get("best_mIoU"), states.get("best_iter"), states.get("history"), ema_state)


def clear_earlier_run(out: Path, log: logging.Logger) -> None:
    """A fresh run must not keep (or prune its own checkpoints in favour of) an earlier run's ``iter_N``."""
    stale = ckpt.list_checkpoints(out)
    if stale:
        log.warning(
            "%s holds checkpoints of an earlier run (%s); removing them. To continue that run "
            "instead, set Train.resume_path=%s", out, ", ".join(p.name for _, p in stale), stale[-1][1],
        )
        ckpt.prune_checkpoints(out, 0)


def report_interruption(out: Path, config_file: Path, at_iter: Optional[int], total: int, log: logging.Logger) -> None:
    """Log (train.log and stderr) where an interrupted run stopped and the ``segzoo train`` line that resumes it."""
    at = "before its first iteration" if at_iter is None else f"at iteration {at_iter}/{total}"
    found = ckpt.list_checkpoints(out)
    if not found:
        log.warning("training interrupted (Ctrl-C) %s, before its first checkpoint: nothing to resume; "
                    "run the same command again to start over", at)
        return
    done, newest = found[-1]
    if done >= total:
        log.warning("training interrupted (Ctrl-C) after its last iteration; %s holds the final weights", newest)
        return
    log.warning("training interrupted (Ctrl-C) %s; the newest checkpoint is %s (iteration %d). Resume with:\n"
                "  segzoo train -c %s -o Train.resume_path=%s", at, newest, done, config_file, newest)
