"""``segzoo predict`` and ``segzoo export``.

Nothing heavy is imported at module level (``segzoo --help`` must stay fast);
paddle comes in when a model is built.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from dataclasses import replace
from pathlib import Path

from ..cliopts import add_config_option, add_override_option, engine_options_of
from ..errors import ConfigError, InputError
from ..fileio import check_output_dir
from ..models import weights_errors_spelled
from .builtin import ENGINES, engine_help


#: the flags that become ``-o`` keys in the PaddleX form ``segzoo predict|export -c CFG.yaml``
CONFIG_FORM_KEYS = {
    "predict": {
        "model": "Global.model", "device": "Global.device", "output": "Global.output",
        "model_dir": "Predict.model_dir",
        "batch_size": "Predict.batch_size", "target_size": "Predict.target_size",
        "input": "Predict.input",
    },
    "export": {"model": "Global.model", "output": "Global.output", "weights": "Export.weight_path"},
}


def _add_config_form(p: argparse.ArgumentParser, mode: str) -> None:
    add_config_option(p, f"PaddleX form: run Global.mode={mode} of this config (other flags become overrides)")
    add_override_option(p, "with -c: override one key (repeatable)")
    p.set_defaults(config_form_mode=mode)


def config_form(args) -> list[str]:
    """The ``-o`` items of ``segzoo predict|export -c cfg.yaml``: the flags given, the ``-o`` items, the mode.

    :mod:`segzoo.cli` runs them through :mod:`segzoo.modes` (the config's mode
    with the flags as overrides); this layer does not reach up to it.
    """
    mode = args.config_form_mode
    if getattr(args, "ray", None) is not None:
        raise ConfigError("--ray runs the flags of segzoo predict, not -c CFG.yaml: give --model / --model-dir and --input")
    _merge_inputs(args)
    overrides = []
    for flag, key in CONFIG_FORM_KEYS[mode].items():
        value = getattr(args, flag, None)
        if value is not None:
            overrides.append(f"{key}={value}")
    return [*overrides, *args.overrides, f"Global.mode={mode}"]


def _merge_inputs(args) -> None:
    """``segzoo predict a.jpg`` means ``segzoo predict --input a.jpg``: the positional inputs join ``--input``'s."""
    positional = list(getattr(args, "inputs", None) or [])
    if positional:
        args.input = [*(args.input or []), *positional]
        args.inputs = []


def _no_config_form(args) -> None:
    if args.config_file:
        raise ConfigError(f"-c CFG.yaml runs through the command line: segzoo {args.config_form_mode} -c CFG.yaml")
    if args.overrides:
        raise ConfigError("-o needs -c CFG.yaml")


def _keys_as_flags():
    """Errors about weights name the flag to pass (``--num-classes 4``), not Python's ``num_classes=4``."""
    return weights_errors_spelled("flags")


def _csv_ints(text: str) -> list[int]:
    try:
        return [int(p) for p in text.replace("x", ",").split(",") if p.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from None


# -- predict ------------------------------------------------------------------------------------------
def add_arguments_predict(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Predict label maps and write <input>_res.json, <input>_res.png (VOC colours) and "
        "<input>_overlay.png. Without --model and --input: the built-in demo."
    )
    p.add_argument("--model", help="model name (segzoo list-models); alone, PaddleX's official model (from "
                   "PaddleX's or segzoo's cache, else downloaded once; see segzoo download); optional with an "
                   "exported --model-dir")
    p.add_argument("--model-dir", help="exported inference directory, or a .pdparams file / directory holding one")
    p.add_argument("--no-pretrained", action="store_true",
                   help="with --model alone: random weights instead of the official model (to try the pipeline)")
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="images, directories, PDFs or http(s) URLs (as --input)")
    p.add_argument("--input", nargs="+", metavar="PATH", help="images, directories, PDFs or http(s) URLs")
    p.add_argument("--skip-errors", action="store_true",
                   help="go on past an image, PDF or URL that cannot be read: the others are written, the skipped "
                   "ones listed at the end with their reasons, and the exit status is 1 (default: the first one stops)")
    p.add_argument("--batch-size", type=int, help="images read and run together (default 1)")
    p.add_argument("--target-size", help="-1 (original size), N for N×N, or W,H (WxH works too)")
    p.add_argument("--pixel-limit", type=int, metavar="N",
                   help="largest image (width×height after resizing) to predict; default: Pillow's "
                   "decompression-bomb limit, about 179 million")
    p.add_argument("--output", help="directory the results go to (default ./output; with -c: Global.output/predict)")
    p.add_argument("--device", help="cpu, gpu or gpu:0 (default: a GPU when there is one)")
    p.add_argument("--engine", help=engine_help())  # from the engine table: it cannot drift from the code
    p.add_argument("--precision", choices=["fp32", "bf16", "int8"],
                   help="openvino engine: bf16 on CPUs with native bf16 (an error elsewhere); int8: the model "
                   "`segzoo quantize` made of these weights; default bf16 where the CPU has it and it agrees with "
                   "fp32 on >= 99.9 %% of the pixels of real photos (measured once), else fp32")
    p.add_argument("--num-classes", type=int, help="class count of the weights (read from them when left out)")
    p.add_argument("--slide-window", help="W,H: predict window by window")
    p.add_argument("--slide-stride", help="W,H: window step (default 3/4 of the window)")
    p.add_argument("--cpu-threads", type=int, help=f"{_taking('cpu_threads')} engines: CPU threads")
    p.add_argument("--no-onednn", action="store_true", help=f"{_taking('onednn')} engine: turn oneDNN off on the CPU")
    p.add_argument("--quiet", action="store_true", help="print only the summary line")
    p.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                   help="run as a Ray Data job (pip install \"segzoo[ray]\"): alone, on a local Ray runtime; "
                   "`auto` joins this machine's cluster, HOST:PORT another; inputs may also be globs, list files "
                   "(.txt) and s3:// folders; inputs whose results exist are skipped, failures go to errors.jsonl")
    p.add_argument("--overwrite", action="store_true", help="with --ray: predict again the inputs whose results exist")
    p.add_argument("--pipeline", metavar="YAML",
                   help="PaddleX's pipeline: a pipeline YAML (segzoo config --pipeline semantic_segmentation --save "
                   "my.yaml) or the name semantic_segmentation; its model_name, model_dir, batch_size and "
                   "target_size fill the flags not given here")
    _add_config_form(p, "predict")


def _taking(option: str) -> str:
    """The registered engines that take an ``engine_options`` key, for a flag's help (``paddle / onnxruntime``)."""
    return " / ".join(name for name, spec in ENGINES.items() if option in spec.options)


def run_predict(args) -> int:
    _merge_inputs(args)
    _no_config_form(args)
    if args.ray is not None:  # the same flags, as a Ray Data job
        from .raydata import run_predict_ray

        return run_predict_ray(args)
    from tqdm import tqdm

    from .inputs import check_inputs
    from .engine_table import EngineFallbackWarning
    from .create import create_model
    from .predictor import RandomWeightsWarning
    from .run import run_predict as _run
    from .sizes import DEFAULT_PIXEL_LIMIT, check_pixel_limit, check_size_pixels, parse_size

    demo = args.model is None and args.input is None and args.model_dir is None
    # every check that needs no model first: a bad input or output changes nothing, and fails at once
    check_output_dir(args.output or "./output", "--output")
    limit = DEFAULT_PIXEL_LIMIT if args.pixel_limit is None else check_pixel_limit(args.pixel_limit)
    check_size_pixels(parse_size(args.target_size, "--target-size"), limit, "--target-size")
    if args.input:
        check_inputs(list(args.input))
    engine_options = engine_options_of(args)
    if demo:
        from .demo import load_demo

        predictor, image = load_demo(device=args.device)
        inputs = [str(image)]
    else:
        if not args.input:
            raise ConfigError("give the images to predict: segzoo predict PATH... or --input PATH... (files, "
                              "directories, PDFs or URLs)")
        if args.model is None and args.model_dir is None:
            raise ConfigError("give the model: --model NAME (see `segzoo list-models`) or --model-dir DIR; "
                              "`segzoo predict` with no inputs runs the built-in demo")
        overrides = {}
        if args.num_classes is not None:
            overrides["num_classes"] = args.num_classes
        if args.no_pretrained:
            overrides["pretrained"] = False
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RandomWeightsWarning)
            warnings.simplefilter("always", EngineFallbackWarning)
            with _keys_as_flags():
                predictor = _create(create_model, args, engine_options, overrides)
        for w in caught:  # one clean line instead of Python's warning format
            if issubclass(w.category, (RandomWeightsWarning, EngineFallbackWarning)):
                print(f"segzoo predict: warning: {w.message}", file=sys.stderr)
            else:
                warnings.showwarning(w.message, w.category, w.filename, w.lineno)
        inputs = list(args.input)
    skipped: list = []  # --skip-errors: (input, error) of every input that could not be read, in order
    if args.skip_errors:
        predictor.limits = replace(predictor.limits, on_error=lambda where, error: skipped.append((where, error)))
    out = Path(args.output or "./output")
    bar = tqdm(unit="image", file=sys.stderr, disable=None, desc="predict", leave=False)
    count = {"results": 0}

    def report(result, paths):
        count["results"] += 1
        bar.update(1)
        if not args.quiet:
            page = f" page {result.page_index}" if result.page_index is not None else ""
            bar.write(f"{result.input_path or result.name}{page} -> {', '.join(str(p) for p in paths)}")
        if demo:
            bar.write(_class_summary(result.pred, predictor.class_names))

    try:
        _run(None, inputs, out, batch_size=args.batch_size or 1, on_result=report, predictor=predictor)
    except InputError as exc:
        raise InputError(f"{exc} (--skip-errors goes on past inputs that cannot be read)") from None
    finally:
        bar.close()
    what = "the built-in demo" if demo else predictor.model_name
    print(f"{count['results']} result(s) of {what} written to {out.resolve()}")
    return _report_skipped(skipped)


def _report_skipped(skipped: list) -> int:
    """The inputs ``--skip-errors`` went past, with their reasons, on stderr; 1 when there are any."""
    if not skipped:
        return 0
    print(f"segzoo predict: error: {len(skipped)} input(s) could not be read and were skipped:", file=sys.stderr)
    for where, error in skipped:
        print(f"  {error}" if where in str(error) else f"  {where}: {error}", file=sys.stderr)
    return 1


def _create(create_model, args, engine_options, overrides):
    return create_model(
        args.model,
        model_dir=args.model_dir,
        target_size=args.target_size,
        device=args.device,
        engine=args.engine,
        engine_options=engine_options or None,
        slide_window=args.slide_window,
        slide_stride=args.slide_stride,
        **({"pixel_limit": args.pixel_limit} if args.pixel_limit is not None else {}),
        **overrides,
    )


def _class_summary(pred, class_names) -> str:
    import numpy as np

    ids, counts = np.unique(pred, return_counts=True)
    total = float(pred.size)
    parts = []
    for i, c in sorted(zip(ids.tolist(), counts.tolist()), key=lambda t: -t[1]):
        name = class_names[i] if class_names and i < len(class_names) else f"class {i}"
        parts.append(f"{name} {100.0 * c / total:.1f} %")
    return "classes: " + ", ".join(parts)


# -- export -------------------------------------------------------------------------------------------
def add_arguments_export(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Export a model to a PaddleX inference directory (inference.json, inference.pdiparams, "
        "inference.yml) for Paddle Inference, PaddleX and `segzoo predict --model-dir`."
    )
    p.add_argument("--model", help="model name (segzoo list-models); required without -c")
    p.add_argument("--weights", help=".pdparams file (default: random weights, for trying the pipeline)")
    p.add_argument("--num-classes", type=int, help="class count (read from --weights when left out)")
    p.add_argument("--output", help="directory to write (new, empty, or an earlier export); required without -c")
    p.add_argument("--output-op", default="argmax", choices=["argmax", "softmax", "none"])
    p.add_argument("--input-shape", type=_csv_ints, help="N,3,H,W (-1 for any); default dynamic or the card's")
    _add_config_form(p, "export")


def run_export(args) -> int:
    _no_config_form(args)
    if not args.model or not args.output:
        raise ConfigError("segzoo export needs --model NAME and --output DIR (or -c CFG.yaml)")
    from .export import export_model

    config = {"num_classes": args.num_classes} if args.num_classes is not None else None
    if args.weights is None:
        print(f"note: no --weights given; {args.model} is exported with random weights", file=sys.stderr)
    with _keys_as_flags():
        out = export_model(
            args.model,
            args.output,
            config=config,
            weights=args.weights,
            input_shape=args.input_shape,
            output_op=args.output_op,
        )
    files = ", ".join(sorted(p.name for p in out.iterdir()))
    print(f"exported {args.model} to {out.resolve()} ({files})")
    return 0
