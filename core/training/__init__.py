"""Training, evaluation and checkpoints (``segzoo train``, ``segzoo evaluate``).

>>> from segzoo.training import train, evaluate
>>> result = train("cfg.yaml", overrides=["Train.epochs_iters=100"])
>>> evaluate("PP-LiteSeg-T", "dataset", "output/best_model/model.pdparams", output_dir="output")

Importing this package is cheap: paddle is imported when training starts.
"""

from __future__ import annotations

__all__ = [
    "train",
    "evaluate",
    "evaluate_layer",
    "Trainer",
    "ConfusionMatrix",
    "compute_metrics",
    "format_table",
    "Augment",
    "latest_checkpoint",
    "load_checkpoint",
]

_LAZY = {
    "train": ("trainer", "train"),
    "Trainer": ("trainer", "Trainer"),
    "evaluate": ("evaluation", "evaluate"),
    "evaluate_layer": ("evaluation", "evaluate_layer"),
    "ConfusionMatrix": ("metrics", "ConfusionMatrix"),
    "compute_metrics": ("metrics", "compute_metrics"),
    "format_table": ("metrics", "format_table"),
    "Augment": ("transforms", "Augment"),
    "latest_checkpoint": ("checkpoint", "latest_checkpoint"),
    "load_checkpoint": ("checkpoint", "load_checkpoint"),
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(f"{__name__}.{module}"), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
