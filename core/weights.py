"""Loading and saving weights, with a report users can act on."""

from __future__ import annotations

import logging
import os
import warnings
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
    missing: list[str] = field(default_factory=list)  # in the model (under prefix), not in the file
    unexpected: list[str] = field(default_factory=list)  # in the file, not in the model
    mismatched: list[tuple[str, tuple, tuple]] = field(default_factory=list)  # name, model, file shape
    #: where the file's names were found in the model: "" (the whole model), or a prefix such as
    #: "backbone." when the file holds a backbone's own state dict (an ImageNet backbone file)
    prefix: str = ""
    outside: int = 0  # tensors of the model outside ``prefix`` (left as built when a backbone file loads)

    @property
    def complete(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def classifier(self, num_classes: int) -> list[tuple[str, tuple, tuple]]:
        """The mismatched tensors that differ only in the class dimension (another ``num_classes``).

        A tensor counts when its shape differs from the file's in exactly one axis and the model's
        size on that axis is ``num_classes`` (or ``num_classes + 1``: a "no object" class).
        """
        found = []
        for name, mine, theirs in self.mismatched:
            if len(mine) != len(theirs):
                continue
            axes = [i for i, (a, b) in enumerate(zip(mine, theirs)) if a != b]
            if len(axes) == 1 and mine[axes[0]] in (num_classes, num_classes + 1):
                found.append((name, mine, theirs))
        return found

    def summary(self, limit: int = 5) -> str:
        def few(items):
            items = [str(i) for i in items]
            more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
            return ", ".join(items[:limit]) + more

        where = f" into {self.prefix.rstrip('.')} (the file holds its own names)" if self.prefix else ""
        parts = [f"loaded {len(self.loaded)} tensors from {self.path}{where}"]
        if self.prefix and self.outside:
            parts.append(f"{self.outside} tensors outside {self.prefix.rstrip('.')} keep their initialisation")
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


def _choose_prefix(own: dict, state: dict, backbone_prefix: str | None) -> str:
    """``""`` when the file's names are the model's, ``backbone_prefix`` when more of them are the backbone's."""
    if not backbone_prefix:
        return ""
    whole = sum(1 for k in state if k in own)
    inside = sum(1 for k in state if backbone_prefix + k in own)
    return backbone_prefix if inside > whole else ""


def load_weights(
    model: Any,
    path: os.PathLike | str,
    strict: bool = False,
    backbone_prefix: str | None = None,
    quiet: bool = False,
) -> LoadReport:
    """Load the entries of ``path`` whose names and shapes fit ``model``.

    Entries that do not fit (another ``num_classes`` in the head, say) are
    reported, not loaded. Raises :class:`WeightsError` when nothing fits (the
    file belongs to another model) or, with ``strict``, when anything does not.

    With ``backbone_prefix`` (e.g. ``"backbone."``), a file whose names are the
    backbone's own (PaddleSeg's ImageNet backbone files, loaded by PaddleSeg into
    ``model.backbone``) loads under that prefix; the report's ``prefix`` says
    which way it was read, and the rest of the model keeps its initialisation.
    The report is logged unless ``quiet``.
    """
    import numpy as np
    import paddle

    state = read_state_dict(path)
    # files saved from a whole training state keep the weights under "model"
    if "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    own = model.state_dict()
    prefix = _choose_prefix(own, state, backbone_prefix)
    report = LoadReport(str(path), prefix=prefix)
    to_load = {}
    for name, tensor in own.items():
        if not name.startswith(prefix):
            report.outside += 1
            continue
        key = name[len(prefix):]
        if key not in state:
            report.missing.append(name)
            continue
        value = state[key]
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
    report.unexpected = [k for k in state if prefix + k not in own]
    if not to_load:
        raise WeightsError(
            f"none of the {len(state)} tensors in {path} fits this model ({len(own)} tensors; "
            f"e.g. file has {next(iter(state))!r}, model has {next(iter(own))!r}): is it the "
            "weights of another model?"
        )
    if strict and not report.complete:
        raise WeightsError("weights do not fit exactly: " + report.summary())
    with warnings.catch_warnings():
        # Paddle warns "Skip loading for X. X is not found in the provided dict." for every tensor left out on
        # purpose (another shape, outside the backbone): the report says what was kept and why
        warnings.filterwarnings("ignore", message=r"Skip loading for .* is not found in the provided dict")
        model.set_state_dict(to_load)
    if not quiet:
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
