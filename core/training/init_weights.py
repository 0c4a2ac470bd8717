"""The weights a training run starts from (``Train.pretrain_weight_path``), loaded with a report in train.log.

``Train.pretrain_weight_path`` takes:

- ``official_backbone`` (the default, as in PaddleX): the model's official
  ImageNet backbone weights, ``<MODEL>_backbone_imagenet_pretrained.pdparams``
  (for models whose card publishes the whole model as their backbone start,
  ``<MODEL>_pretrained.pdparams``);
- ``official``: the whole trained model, ``<MODEL>_pretrained.pdparams``;
- an http(s) URL or a local ``.pdparams`` file (or a folder holding one);
- ``null``: from scratch (the network as the model's plugin builds it).

Official files and URLs are fetched through :mod:`segzoo.official` (cached;
``SEGZOO_MODEL_BASE_URL`` / ``SEGZOO_OFFLINE`` apply). A file whose names are
the whole model's loads into the model; a file whose names are the backbone's
own (PaddleSeg loads ImageNet files into ``model.backbone`` this way) loads
under the card's ``backbone_prefix``. Whichever way fits more names is taken.

With another ``num_classes`` than the file was trained for, every tensor
loads except those of the classifier layers (shapes that differ in the class
dimension only), which keep their fresh initialisation; one log line names
those layers and says why. Anything else that does not fit is a warning.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional

from ..config import PRETRAINED_KEYWORDS
from ..errors import SegzooError
from ..official import resolve_weights
from ..registry import get_registry
from ..weights import load_weights

__all__ = ["load_initial_weights", "classifier_layers"]

KEY = "Train.pretrain_weight_path"

_SILENT = logging.getLogger("segzoo.train.init_weights")
_SILENT.addHandler(logging.NullHandler())
_SILENT.propagate = False  # processes other than rank 0 load the same weights without a word


def _layers(names) -> list[str]:
    """``a.b.weight, a.b.bias`` → ``a.b`` (in order, once)."""
    seen: dict[str, None] = {}
    for name in names:
        seen.setdefault(name.rsplit(".", 1)[0], None)
    return list(seen)


def _few(items, limit: int = 5) -> str:
    items = [str(i) for i in items]
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def classifier_layers(report, num_classes: int) -> tuple[list[str], Optional[int]]:
    """``(layer names, classes the file was trained for)`` of the tensors skipped for another class count."""
    found = report.classifier(num_classes)
    trained = None
    for _, mine, theirs in found:
        axis = next(i for i, (a, b) in enumerate(zip(mine, theirs)) if a != b)
        trained = theirs[axis] if mine[axis] == num_classes else theirs[axis] - 1
        break
    return _layers(name for name, _, _ in found), trained


def load_initial_weights(
    model: Any, spec: Optional[str], model_name: str, num_classes: int, log: Optional[logging.Logger] = None
):
    """Load ``spec`` (a ``Train.pretrain_weight_path`` value) into ``model``; returns the load report or ``None``.

    ``None`` (from scratch) loads nothing and touches no network. Errors
    (download, missing file, a file of another model) name the key and say how
    to train from scratch instead.
    """
    say = log if log is not None else _SILENT
    if spec is None:
        say.info("initial weights: none (%s=null): training from scratch", KEY)
        return None
    card = get_registry().card(model_name)
    if spec in PRETRAINED_KEYWORDS and getattr(card, "official", "unknown") is None:
        if spec == "official_backbone":
            say.warning("initial weights: %s publishes no official weights; training from scratch "
                        "(set %s=null to say so, or give a .pdparams path or URL)", model_name, KEY)
            return None
        raise SegzooError(f"{KEY}=official: {model_name} publishes no official weights; give a .pdparams path or "
                          f"URL, or {KEY}=null to train from scratch")
    try:
        local = Path(spec).expanduser()
        if spec not in PRETRAINED_KEYWORDS and "://" not in spec and local.is_dir():
            path = local  # a checkpoint folder (output/best_model): its model.pdparams
        else:
            path = resolve_weights(spec, model_name)
        report = load_weights(model, path, backbone_prefix=card.backbone_prefix, quiet=True)
    except SegzooError as exc:
        msg = f"{KEY}={spec}: {exc} (set {KEY}=null to train from scratch)"
        try:
            error = type(exc)(msg)
        except TypeError:  # an error class with its own constructor arguments
            error = SegzooError(msg)
        raise error from None

    total = len(report.loaded) + len(report.missing) + len(report.mismatched) + report.outside
    if report.prefix:
        scope = report.prefix.rstrip(".")
        say.info("initial weights (%s=%s): %s: loaded %d of the %d tensors of %s (the file holds the %s's own "
                 "names); the other %d tensors of the model keep their initialisation", KEY, spec, path,
                 len(report.loaded), total - report.outside, scope, scope, report.outside)
    else:
        say.info("initial weights (%s=%s): %s: loaded %d of the model's %d tensors", KEY, spec, path,
                 len(report.loaded), total)
    layers, trained = classifier_layers(report, num_classes)
    if layers:
        say.info("initial weights: skipped %d classifier layer(s), which keep their fresh initialisation because "
                 "the weights were trained for %s classes and this model has %d (Train.num_classes): %s",
                 len(layers), trained, num_classes, ", ".join(layers))
    skipped = {name for name, _, _ in report.classifier(num_classes)}
    other = [(n, a, b) for n, a, b in report.mismatched if n not in skipped]
    if other:
        say.warning("initial weights: %d tensor(s) with another shape keep their initialisation: %s", len(other),
                    _few(f"{n} model {list(a)} file {list(b)}" for n, a, b in other))
    if report.missing:
        say.warning("initial weights: %d tensor(s) of the model are not in %s and keep their initialisation: %s",
                    len(report.missing), path, _few(report.missing))
    if report.unexpected:
        say.info("initial weights: %d tensor(s) of the file fit no tensor of the model (ignored): %s",
                 len(report.unexpected), _few(report.unexpected))
    return report
