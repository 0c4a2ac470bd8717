"""Runs a config's Global.mode (check_dataset, train, evaluate, export, predict): the one dispatcher the CLI calls.

``segzoo -c cfg.yaml -o Global.mode=train`` and ``segzoo predict|export -c
cfg.yaml`` come here (:func:`run_from_top_level`); :func:`run_config` runs the
mode of a validated config and returns what that mode returns. Each mode's
work lives in its own layer (datasets, training, inference); this module only
chooses it. Nothing heavy is imported at module level.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Optional

from .config import MODES, SegzooConfig, explicit_model_fields, load_config, model_fields_for_weights, weights_path
from .errors import ConfigError
from .training.commands import explicit_keys, keys_for_config

__all__ = ["run_config", "run_from_top_level"]


def run_config(cfg: SegzooConfig, mode: Optional[str] = None, progress: bool = True, explicit: Iterable[str] = ()) -> Any:
    """Run ``Global.mode`` (or ``mode``) of a validated config; returns what that mode returns.

    ``explicit``: the ``Section.key`` names the caller set on purpose (the ``-o``
    keys). Evaluate and export build the network the weights were trained as
    (their run's ``config.yaml`` beside them): the model fields among
    ``explicit`` win over it, the config file's other values yield to it
    (see :mod:`segzoo.models`).
    """
    mode = mode or cfg.Global.mode
    if mode not in ("predict", "export", "evaluate") and not cfg.Global.dataset_dir:
        raise ConfigError(f"Global.dataset_dir: required for mode {mode}; set -o Global.dataset_dir=DIR")
    if mode == "check_dataset":
        from .datasets.check import check_dataset_from_config

        return check_dataset_from_config(
            cfg.CheckDataset.model_dump(),
            cfg.Global.dataset_dir,
            cfg.output_dir / "check_dataset",
            num_classes=cfg.Train.num_classes,
            progress=progress,
        )
    if mode == "train":
        from .training import train

        return train(cfg, progress=progress)
    if mode == "evaluate":
        from .training.evaluation import evaluate_config

        return evaluate_config(cfg, progress=progress, explicit=explicit)
    if mode == "export":
        from .inference import export_model

        weights = weights_path(cfg.Export.weight_path, cfg, "Export")
        out = cfg.output_dir / "inference"
        return export_model(
            cfg.Global.model, out, config=model_fields_for_weights(cfg), weights=weights,
            explicit=explicit_model_fields(explicit),
        )
    if mode == "predict":
        from .inference import run_predict

        model_dir = cfg.Predict.model_dir or str(cfg.output_dir / "best_model" / "inference")
        if cfg.Predict.input is None:
            raise ConfigError("Predict.input: required for mode predict; set -o Predict.input=IMAGE_OR_FOLDER")
        return run_predict(
            cfg.Global.model,
            cfg.Predict.input,
            cfg.output_dir / "predict",
            model_dir=model_dir,
            batch_size=cfg.Predict.batch_size,
            target_size=cfg.Predict.target_size,
            device=cfg.Global.device,
        )
    raise ConfigError(f"Global.mode: {mode!r} is not one of {', '.join(MODES)}")  # pragma: no cover


def run_from_top_level(args) -> int:
    """``segzoo -c cfg.yaml -o Global.mode=train``: run the mode the config names; print what it wrote.

    ``args`` has ``top_config`` (the YAML path) and ``top_overrides`` (the ``-o`` items).
    """
    cfg = load_config(args.top_config, list(args.top_overrides or []))
    with keys_for_config():
        result = run_config(cfg, progress=True, explicit=explicit_keys(args.top_overrides))
    mode = cfg.Global.mode
    if mode == "train" and isinstance(result, dict) and result:
        print(f"done: best mIoU {result.get('best_score')}; see {cfg.Global.output}/train_result.json")
    elif mode == "evaluate":
        print(f"wrote {Path(cfg.Global.output) / 'evaluate_result.json'} (mIoU {result['metrics']['mIoU']})")
    elif mode == "export":
        print(f"exported {cfg.Global.model} to {result}")
    elif mode == "predict":
        print(f"predictions written to {Path(cfg.Global.output) / 'predict'}")
    elif mode == "check_dataset" and isinstance(result, dict):
        from .datasets.check import RESULT_FILE
        from .datasets.cli import format_summary

        path = Path(cfg.Global.output) / "check_dataset" / RESULT_FILE
        print(format_summary({**result, "result_path": str(path)}))
        return 0 if result.get("check_pass") else 1
    return 0
