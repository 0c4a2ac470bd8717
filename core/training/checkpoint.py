"""Checkpoints in PaddleSeg/PaddleX's layout, written so that a kill never leaves a broken one.

Layout of the output folder::

    output/
      iter_20/model.pdparams     network weights
      iter_20/model.pdopt        optimizer state (moments, step counts) and the LR schedule
      iter_20/model.pdstates     iteration, epoch, metrics, RNG states, AMP scaler, history
      iter_20/model.pdema        the EMA of the weights (with Train.ema; a state dict like model.pdparams)
      iter_20/config.yaml        a copy of the run's output/config.yaml: the weights bring their config
                                 (class count, model fields) to evaluate, export and predict
      best_model/model.*         the same three files for the best mIoU so far
      best_model/inference/      the exported best model (at the end of training)
      train_result.json          model name, done flag, best score, paths of best and last checkpoints

``model.pdstates`` is a ``paddle.save``'d dict whose ``"mIoU"`` is the score
PaddleX reads; the rest is what :func:`load_checkpoint` needs to resume at the
exact iteration.

**Kill safety.** A checkpoint folder is written as ``.iter_20.tmp-XXXX`` (a
name no reader looks at), each file through :func:`segzoo.fileio.atomic_path`,
then renamed to ``iter_20`` in one ``os.rename``: ``iter_N`` either does not
exist or is complete. Replacing an existing folder (``best_model``, or an
``iter_N`` reached again after resuming from an older one) first renames the
old one to ``.NAME.old-XXXX`` and then the new one into place;
:func:`recover` (run when training starts and by :func:`latest_checkpoint`)
puts an ``.old`` folder back if a kill came between the two renames and
removes leftovers. Old checkpoints are renamed away before they are deleted,
so a half-deleted folder never carries an ``iter_N`` name.

For tests only: ``SEGZOO_TEST_TRAIN_PAUSE=<step>`` prints
``SEGZOO_TRAIN_PAUSED <step>`` on stderr and sleeps at that step so that a test
can kill the process there. Steps: ``checkpoint_files`` (files written into
the temporary folder, not yet renamed), ``checkpoint_swap`` (between the two
renames that replace an existing folder), ``result_json`` (before
``train_result.json`` is replaced).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional, Union

from ..errors import ConfigError, WeightsError
from ..fileio import atomic_path, fsync_dir, replace_dir, write_json
from ..models import RUN_CONFIG

PathLike = Union[str, os.PathLike]

__all__ = [
    "WEIGHTS",
    "OPTIMIZER",
    "STATES",
    "EMA",
    "save_checkpoint",
    "read_ema",
    "load_checkpoint",
    "read_states",
    "list_checkpoints",
    "latest_checkpoint",
    "prune_checkpoints",
    "recover",
    "write_train_result",
]

WEIGHTS = "model.pdparams"
OPTIMIZER = "model.pdopt"
STATES = "model.pdstates"
EMA = "model.pdema"
_ITER = re.compile(r"^iter_(\d+)$")
PAUSE_ENV = "SEGZOO_TEST_TRAIN_PAUSE"


def pause(step: str) -> None:
    """Test hook: stop at ``step`` when ``$SEGZOO_TEST_TRAIN_PAUSE`` names it (see the module docstring)."""
    if os.environ.get(PAUSE_ENV) == step:
        print(f"SEGZOO_TRAIN_PAUSED {step}", file=sys.stderr, flush=True)
        time.sleep(3600)


def _save(obj: Any, path: Path) -> None:
    import paddle

    with atomic_path(path) as tmp:
        paddle.save(obj, str(tmp))


def save_checkpoint(
    directory: PathLike,
    model_state: dict,
    optimizer_state: Optional[dict],
    states: dict,
    ema_state: Optional[dict] = None,
) -> Path:
    """Write ``model.pdparams``, ``.pdopt``, ``.pdstates`` (and ``.pdema``) into ``directory``, all or nothing."""
    final = Path(directory)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        _save(model_state, tmp / WEIGHTS)
        if optimizer_state is not None:
            _save(optimizer_state, tmp / OPTIMIZER)
        _save(states, tmp / STATES)
        _copy_run_config(final.parent, tmp)
        if ema_state is not None:
            _save(ema_state, tmp / EMA)
        fsync_dir(tmp)
        pause("checkpoint_files")
        replace_dir(tmp, final, on_swap=lambda: pause("checkpoint_swap"))
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def _copy_run_config(output: Path, folder: Path) -> None:
    """Copy the run's ``config.yaml`` (written by the trainer into ``output``) into a checkpoint folder."""
    source = output / RUN_CONFIG
    if source.is_file():
        with atomic_path(folder / RUN_CONFIG) as tmp:
            shutil.copyfile(source, tmp)


def read_states(directory: PathLike) -> dict:
    """The ``model.pdstates`` dict of a checkpoint folder."""
    import paddle

    path = Path(directory) / STATES
    try:
        return paddle.load(str(path))
    except Exception as exc:
        raise WeightsError(f"{path}: cannot read the checkpoint state ({type(exc).__name__}: {exc})") from None


def read_ema(directory: PathLike) -> Optional[dict]:
    """The ``model.pdema`` state dict of a checkpoint folder, or ``None`` when it was trained without EMA."""
    import paddle

    d = Path(directory)
    if d.is_file():
        d = d.parent
    if not (d / EMA).is_file():
        return None
    try:
        return paddle.load(str(d / EMA))
    except Exception as exc:
        raise WeightsError(f"{d / EMA}: cannot read the EMA weights ({type(exc).__name__}: {exc})") from None


def load_checkpoint(directory: PathLike) -> tuple[dict, Optional[dict], dict]:
    """``(model_state, optimizer_state or None, states)`` of a checkpoint folder written by :func:`save_checkpoint`."""
    import paddle

    d = Path(directory)
    if d.is_file() and d.name == WEIGHTS:
        d = d.parent
    if not d.is_dir():
        raise ConfigError(
            f"Train.resume_path: {d} is not a checkpoint folder; give an iter_N folder of an earlier run "
            "(e.g. output/iter_100)"
        )
    missing = [name for name in (WEIGHTS, OPTIMIZER, STATES) if not (d / name).is_file()]
    if missing:
        raise ConfigError(
            f"Train.resume_path: {d} lacks {', '.join(missing)}; resume from a complete iter_N folder "
            "(every file segzoo writes is complete, so this folder was not written by segzoo train)"
        )
    try:
        model_state = paddle.load(str(d / WEIGHTS))
        opt_state = paddle.load(str(d / OPTIMIZER))
    except Exception as exc:
        raise WeightsError(f"{d}: cannot read the checkpoint ({type(exc).__name__}: {exc})") from None
    return model_state, opt_state, read_states(d)


def list_checkpoints(output: PathLike) -> list[tuple[int, Path]]:
    """``[(iteration, folder), ...]`` of the complete ``iter_N`` folders in ``output``, oldest first."""
    out = Path(output)
    found = []
    if out.is_dir():
        for child in out.iterdir():
            m = _ITER.match(child.name)
            if m and child.is_dir() and (child / WEIGHTS).is_file():
                found.append((int(m.group(1)), child))
    return sorted(found)


def latest_checkpoint(output: PathLike) -> Optional[Path]:
    """The newest complete ``iter_N`` folder in ``output``, or ``None``."""
    found = list_checkpoints(output)
    return found[-1][1] if found else None


def prune_checkpoints(output: PathLike, keep: int) -> list[Path]:
    """Delete all but the ``keep`` newest ``iter_N`` folders (all with ``keep=0``); returns the deleted paths."""
    found = list_checkpoints(output)
    removed = []
    for _, folder in found[: max(len(found) - max(keep, 0), 0)]:
        trash = Path(tempfile.mkdtemp(prefix=f".{folder.name}.del-", dir=folder.parent))
        trash.rmdir()
        os.rename(folder, trash)
        shutil.rmtree(trash, ignore_errors=True)
        removed.append(folder)
    return removed


def recover(output: PathLike) -> None:
    """Undo what a kill may have left: put back a replaced folder whose successor never arrived, drop temp folders."""
    out = Path(output)
    if not out.is_dir():
        return
    for child in sorted(out.iterdir()):
        name = child.name
        m = re.match(r"^\.(.+)\.(old|tmp|del)-[^/]+$", name)
        if not m or not child.is_dir():
            continue
        target, kind = out / m.group(1), m.group(2)
        if kind == "old" and not target.exists():
            os.rename(child, target)  # the kill came between the two renames: the old folder is still valid
        else:
            shutil.rmtree(child, ignore_errors=True)
    for child in out.glob(".*.tmp"):  # atomic_path leftovers
        if child.is_file():
            child.unlink()


def write_train_result(path: PathLike, result: dict) -> Path:
    """Replace ``train_result.json`` atomically."""
    pause("result_json")
    return write_json(path, result)
