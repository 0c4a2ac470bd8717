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

from .._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, globals(), {
    "train": ".trainer",
    "Trainer": ".trainer",
    "evaluate": ".evaluation",
    "evaluate_layer": ".evaluation",
    "ConfusionMatrix": ".metrics",
    "compute_metrics": ".metrics",
    "format_table": ".metrics",
    "Augment": ".transforms",
    "latest_checkpoint": ".checkpoint",
    "load_checkpoint": ".checkpoint",
})
