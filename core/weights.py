"""Loading and saving weights, with a report users can act on."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import WeightsError
from .fileio import atomic_path

log = logging.getLogger("segzoo")


@dataclass
class LoadReport:
    """What :func:`load_weights` did: which entries loaded and which did not, and why."""

    path: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # in the model, not in the file
    unexpected: list[str] = field(default_factory=list)  # in the file, not in the model
    mismatched: list[tuple[str, tuple, tuple]] = field(default_factory=list)  # name, model, file shape

    @property
    def complete(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def summary(self, limit: int = 5) -> str:
        def few(items):
            items = [str(i) for i in items]
            more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
            return ", ".join(items[:limit]) + more

        parts = [f"loaded {len(self.loaded)} tensors from {self.path}"]
        if self.missing:
            parts.append(f"{len(self.missing)} missing in the file (kept as initialised): {few(self.missing)}")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected in the file (ignored): {few(self.unexpected)}")
        if self.mismatched:
            parts.append(
                f"{len(self.mismatched)} with another shape (kept as initialised): "
                + few(f"{n} model {list(a)} file {list(b)}" for n, a, b in self.mismatched)
            )
        return "; ".join(parts)


def read_state_dict(path: os.PathLike | str) -> dict:
    """Read a ``.pdparams`` file (or the ``model.pdparams`` inside a directory)."""
    import paddle

    path = Path(path).expanduser()
    if path.is_dir():
        candidates = sorted(path.glob("*.pdparams"))
        if not candidates:
            raise WeightsError(f"{path} holds no .pdparams file; give the weights file itself")
        path = path / "model.pdparams" if (path / "model.pdparams").exists() else candidates[0]
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist")
    try:
        state = paddle.load(str(path))
    except Exception as exc:
        raise WeightsError(f"cannot read weights {path}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(state, dict) or not state:
        raise WeightsError(f"{path} is not a state dict (a .pdparams file of name → tensor)")
    return state


def load_weights(model: Any, path: os.PathLike | str, strict: bool = False) -> LoadReport:
    """Load the entries of ``path`` whose names and shapes fit ``model``.

    Entries that do not fit (another ``num_classes`` in the head, say) are
    reported, not loaded. Raises :class:`WeightsError` when nothing fits (the
    file belongs to another model) or, with ``strict``, when anything does not.
    """
    import numpy as np
    import paddle

    state = read_state_dict(path)
    # files saved from a whole training state keep the weights under "model"
    if "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    own = model.state_dict()
    report = LoadReport(str(path))
    to_load = {}
    for name, tensor in own.items():
        if name not in state:
            report.missing.append(name)
            continue
        value = state[name]
        shape = tuple(np.shape(value))
        if shape != tuple(tensor.shape):
            report.mismatched.append((name, tuple(tensor.shape), shape))
            continue
        # weights stored in another precision (the demo model ships float16) load as the model's dtype
        if not isinstance(value, paddle.Tensor):
            value = paddle.to_tensor(value)
        if value.dtype != tensor.dtype:
            value = value.astype(tensor.dtype)
        to_load[name] = value
        report.loaded.append(name)
    report.unexpected = [k for k in state if k not in own]
    if not to_load:
        raise WeightsError(
            f"none of the {len(state)} tensors in {path} fits this model ({len(own)} tensors; "
            f"e.g. file has {next(iter(state))!r}, model has {next(iter(own))!r}): is it the "
            "weights of another model?"
        )
    if strict and not report.complete:
        raise WeightsError("weights do not fit exactly: " + report.summary())
    model.set_state_dict(to_load)
    (log.info if report.complete else log.warning)(report.summary())
    return report


def save_weights(model_or_state: Any, path: os.PathLike | str) -> Path:
    """Save a model's (or a state dict's) weights to ``path`` atomically."""
    import paddle

    state = model_or_state.state_dict() if hasattr(model_or_state, "state_dict") else model_or_state
    path = Path(path)
    with atomic_path(path) as tmp:
        paddle.save(state, str(tmp))
    return path
