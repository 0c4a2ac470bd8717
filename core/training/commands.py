"""The ``segzoo train``, ``segzoo evaluate`` and ``segzoo config`` commands.

Nothing heavy is imported at module level (``segzoo --help`` stays fast).
``segzoo -c CFG`` (any ``Global.mode``) is :mod:`segzoo.modes`' job.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .._lazy import moved_names
from ..cliopts import add_config_option, add_override_option
from ..config import default_config, load_config, parse_override, render_config
from ..errors import ConfigError
from ..fileio import atomic_write
from ..models import weights_errors_spelled
from .distributed import in_launched_process

# `segzoo -c CFG` moved up to segzoo.modes (a layer above); the old name keeps working, with a warning
__getattr__ = moved_names(__name__, {"run_from_top_level": "segzoo.modes"})


def add_config_arguments(p: argparse.ArgumentParser, required: bool = False) -> None:
    """``-c/--config FILE`` and repeated ``-o Section.key=value``, plus Global shortcuts."""
    add_config_option(p, "YAML config (print a complete one with `segzoo config MODEL`)", required=required)
    add_override_option(p, "override one key, e.g. -o Train.epochs_iters=10 (repeatable)")
    p.add_argument("-m", "--model", help="shortcut for -o Global.model=NAME")
    p.add_argument("-d", "--dataset-dir", help="shortcut for -o Global.dataset_dir=DIR")
    p.add_argument("--output", help="shortcut for -o Global.output=DIR")
    p.add_argument("--device", help="shortcut for -o Global.device=DEVICE (cpu, gpu:0, gpu:0,1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _overrides(args) -> list[str]:
    items = []
    for flag, key in (("model", "Global.model"), ("dataset_dir", "Global.dataset_dir"),
                      ("output", "Global.output"), ("device", "Global.device")):
        value = getattr(args, flag, None)
        if value is not None:
            items.append(f"{key}={value}")
    return items + list(args.overrides or [])


def explicit_keys(overrides) -> set[str]:
    """The ``Section.key`` of each ``-o`` item: the values the user set on purpose."""
    return {".".join(parse_override(item)[0]) for item in overrides or ()}


def keys_for_config():
    """Errors about weights name the key as ``-o Section.key=value`` (not Python's ``num_classes=4``)."""
    return weights_errors_spelled("config")


def load_from_args(args, mode=None):
    """The validated config of ``-c``/``-o`` (and the shortcuts); ``mode`` forces ``Global.mode``."""
    overrides = _overrides(args)
    if mode:
        overrides.append(f"Global.mode={mode}")
    return load_config(args.config_file, overrides)


# -- train ----------------------------------------------------------------------------------------
def add_arguments_train(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p)
    p.add_argument("--nnodes", type=int, help="shortcut for -o Train.nnodes=N: machines training together")
    p.add_argument("--master", metavar="HOST:PORT", help="shortcut for -o Train.master=HOST:PORT (node 0's address)")
    p.add_argument("--rank", type=int, help="shortcut for -o Train.node_rank=R: this machine, 0 .. nnodes-1")
    p.epilog = "example: segzoo train -c cfg.yaml -o Global.dataset_dir=data -o Train.epochs_iters=1000"


def run_train(args) -> int:
    from . import train

    nodes = [f"Train.{key}={value}" for key, value in
             (("nnodes", args.nnodes), ("master", args.master), ("node_rank", args.rank)) if value is not None]
    args.overrides = list(args.overrides or []) + nodes
    cfg = load_from_args(args, "train")
    result = train(cfg, progress=not args.no_progress)
    if not result and cfg.Train.nnodes > 1 and cfg.Train.node_rank > 0 and not in_launched_process():
        print(f"done: node {cfg.Train.node_rank} of {cfg.Train.nnodes}; node 0 wrote the checkpoints and "
              "train_result.json")
    if result and not in_launched_process():
        best = result.get("best_score")
        where = result.get("models", {}).get("best", {}).get("pdparams", "")
        print(f"done: best mIoU {best if best is None else round(best, 4)} "
              f"({cfg.Global.output}/{where}); see {cfg.Global.output}/train_result.json")
    return 0


# -- evaluate -------------------------------------------------------------------------------------
def add_arguments_evaluate(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p)
    p.add_argument("-w", "--weights", help="shortcut for -o Evaluate.weight_path=PATH")
    p.add_argument("--precision", choices=["fp32", "bf16", "int8"],
                   help="run the weights on the openvino engine in this precision (int8: the model `segzoo quantize` "
                   "made of them)")
    p.epilog = "example: segzoo evaluate -c cfg.yaml -o Evaluate.weight_path=output/best_model/model.pdparams"


def run_evaluate(args) -> int:
    from .evaluation import evaluate_config

    if args.weights:
        args.overrides = list(args.overrides or []) + [f"Evaluate.weight_path={args.weights}"]
    cfg = load_from_args(args, "evaluate")
    with keys_for_config():
        result = evaluate_config(cfg, progress=not args.no_progress, explicit=explicit_keys(_overrides(args)),
                                 precision=args.precision)
    print(f"wrote {Path(cfg.Global.output) / 'evaluate_result.json'} (mIoU {result['metrics']['mIoU']})")
    return 0


# -- config ---------------------------------------------------------------------------------------
def add_arguments_config(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", nargs="?", help="model name (or --pipeline NAME)")
    p.add_argument("--pipeline", metavar="NAME",
                   help="PaddleX's pipeline config instead of a model's: semantic_segmentation (as paddlex "
                   "--get_pipeline_config writes it; run it with segzoo predict|serve --pipeline FILE)")
    add_override_option(p, "set a key in the printed config (repeatable)")
    p.add_argument("--save", metavar="FILE", help="write the config to FILE (atomically) instead of printing it")


def _example_model() -> str:
    """A model to name in a hint: the pipeline's default where its plugin is installed, else the first model."""
    from ..registry import list_models, pipeline_default_model

    try:
        return pipeline_default_model("semantic_segmentation")
    except ConfigError:
        names = list_models()
        return names[0] if names else "NAME"


def run_config(args) -> int:
    if args.pipeline is not None:
        from ..pipeline import pipeline_yaml  # lazy: it imports the inference layer (segzoo --help stays fast)

        if args.model is not None:
            raise ConfigError(f"give a model name or --pipeline, not both ({args.model!r} and --pipeline {args.pipeline})")
        text = pipeline_yaml(args.pipeline, args.overrides)
    elif args.model is None:
        raise ConfigError(
            f"give a model name (segzoo config {_example_model()}) or a pipeline (--pipeline semantic_segmentation)"
        )
    else:
        cfg = default_config(args.model)
        if args.overrides:
            cfg = load_config(data=cfg.model_dump(mode="json"), overrides=args.overrides)
        text = render_config(cfg)
    if args.save:
        with atomic_write(args.save) as fh:
            fh.write(text)
        print(f"wrote {args.save}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0

