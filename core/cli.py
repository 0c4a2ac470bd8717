"""The ``segzoo`` command.

Subcommands live beside the code they drive; each is a module with
``add_arguments(parser)`` and ``run(args) -> int`` that imports nothing heavy
at module level, so ``segzoo list-models`` never imports paddle.

User errors (:class:`segzoo.SegzooError`) print one line on stderr and exit
with status 2; anything else is a bug and keeps its traceback
(:func:`segzoo.cliopts.run_command`).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import warnings
from typing import Optional, Sequence

from ._version import __version__
from .cliopts import add_config_option, add_override_option, check_override_spacing, run_command
from .errors import SegzooError
from .modes import run_from_top_level
from .official import cache_status  # no paddle, no network: looks at the cache folders only
from .registry import BLOCK_ENV, blocked_names, get_registry

# name -> (module with add_arguments/run, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "list-models": ("segzoo.cli", "list the registered models (no paddle import)"),
    "info": ("segzoo.cli", "show one model's card and config fields"),
    "plugins": ("segzoo.cli", "list the installed plugins, their hooks and versions"),
    "check-dataset": ("segzoo.datasets.cli", "check a SegDataset (and convert / re-split it)"),
    "predict": ("segzoo.inference.cli", "predict label maps of images, directories, PDFs or URLs (no args: the demo)"),
    "export": ("segzoo.inference.cli", "export a model to a PaddleX inference directory"),
    "train": ("segzoo.training.commands", "train a model from a YAML config (-c cfg.yaml -o Train.epochs_iters=...)"),
    "evaluate": ("segzoo.training.commands", "evaluate weights on the val split (mIoU, Acc, Kappa, Dice, per class)"),
    "config": ("segzoo.training.commands", "print a complete, commented YAML config for a model"),
    "quantize": ("segzoo.training.quantize", "make an INT8 model with NNCF from your images, measured on your val split"),
    "benchmark": ("segzoo.inference.bench", "time segzoo's engines on a model (latency, throughput, memory)"),
    "serve": ("segzoo.serving.cli", "serve a model over HTTP (PaddleX's API, batched; no args: the demo)"),
    "download": ("segzoo.hub_cli", "download official models (and training weights, demo datasets) into the cache"),
    "cache": ("segzoo.hub_cli", "show everything segzoo's cache holds (models, weights, datasets, exports); cache clear NAME | --all"),
}


def _command_module(name: str):
    return importlib.import_module(COMMANDS[name][0])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="segzoo",
        description="A plugin-based semantic-segmentation model zoo on PaddlePaddle.",
    )
    parser.add_argument("--version", action="version", version=f"segzoo {__version__}")
    # PaddleX's form: `segzoo -c cfg.yaml -o Global.mode=train -o Train.epochs_iters=10`
    add_config_option(parser, "run the Global.mode of this config (check_dataset | train | evaluate | export | predict)",
                      dest="top_config")
    add_override_option(parser, "with -c: override one key (repeatable)", dest="top_overrides")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        adder = getattr(_command_module(name), "add_arguments_" + name.replace("-", "_"), None)
        if adder is None:
            adder = _command_module(name).add_arguments
        adder(p)
    parser.set_defaults(_subparsers=sub.choices)
    return parser


def _parse(parser: argparse.ArgumentParser, argv: list) -> argparse.Namespace:
    """``parser.parse_args(argv)``, but a stray argument is reported with the usage of its command, not segzoo's."""
    args, extra = parser.parse_known_args(argv)
    if extra:
        owner = args._subparsers.get(args.command, parser) if args.command else parser
        owner.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        check_override_spacing(argv)  # `-o Global.dataset_dir my_data`: say where the `=` goes
    except SegzooError as exc:
        print(f"segzoo: error: {exc}", file=sys.stderr)
        return exc.exit_code
    parser = build_parser()
    args = _parse(parser, argv)
    if not args.command and args.top_config:
        runner = run_from_top_level
        name = "-c"
    elif not args.command:
        if args.top_overrides:
            parser.error("-o needs -c CFG.yaml (or a command: segzoo train -c CFG.yaml -o ...)")
        parser.print_help()
        return 2
    else:
        module = _command_module(args.command)
        runner = getattr(module, "run_" + args.command.replace("-", "_"), None) or module.run
        name = args.command
        config_form = getattr(module, "config_form", None)  # `segzoo predict|export -c CFG.yaml`
        if config_form is not None and getattr(args, "config_file", None):
            runner = _config_form_runner(config_form)
        if name == "predict" and getattr(args, "pipeline", None):  # `segzoo predict --pipeline my.yaml`
            runner = _pipeline_form_runner(runner)
    return run_command(name, runner, args)


def _pipeline_form_runner(runner):
    """``segzoo predict --pipeline P``: PaddleX's pipeline config fills the flags not given, then ``runner`` runs."""

    def run(args) -> int:
        from .pipeline import apply_to_predict_args  # lazy: it imports the inference layer (segzoo --help stays fast)

        apply_to_predict_args(args)
        return runner(args)

    return run


def _config_form_runner(config_form):
    """A runner for a command's PaddleX form: its ``config_form(args)`` gives the ``-o`` items, segzoo.modes runs them."""

    def run(args) -> int:
        overrides = config_form(args)
        return run_from_top_level(argparse.Namespace(top_config=args.config_file, top_overrides=overrides))

    return run


# -- list-models ----------------------------------------------------------------------------
def add_arguments_list_models(p: argparse.ArgumentParser) -> None:
    p.add_argument("pattern", nargs="?", help="shell wildcard, e.g. 'Seg*' (case-insensitive)")
    p.add_argument("--family", help="only this family (the FAMILY column of segzoo list-models)")
    p.add_argument("--json", action="store_true", help="print the cards as JSON")


def _fmt(value, digits=2) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}"


def run_list_models(args) -> int:
    cards = get_registry().cards(args.pattern)
    if args.family:
        cards = [c for c in cards if c.family == args.family]
    cached = {c.name: cache_status(c.name) for c in cards}
    if args.json:
        print(json.dumps([{**card_to_dict(c), "cached": cached[c.name]} for c in cards], indent=2, ensure_ascii=False))
        return 0
    if not cards:
        print(f"no model matches {args.pattern!r}" if args.pattern else "no models are installed")
        return 1
    from prettytable import PrettyTable

    table = PrettyTable(["Model", "Family", "Dataset", "mIoU %", "Size MB", "CPU ms", "GPU ms", "Cached"])
    for c in cards:
        f = c.figures
        cpu = _fmt(f.cpu_ms) + (f" / {_fmt(f.cpu_ms_hp)}" if f.cpu_ms_hp else "")
        gpu = _fmt(f.gpu_ms) + (f" / {_fmt(f.gpu_ms_hp)}" if f.gpu_ms_hp else "")
        where = {"segzoo": "yes", "paddlex": "PaddleX"}.get(cached[c.name] or "", "-")
        table.add_row([c.name, c.family, c.dataset, _fmt(f.miou), _fmt(f.size_mb, 1), cpu, gpu, where])
    table.align = "r"
    table.align["Model"] = table.align["Family"] = table.align["Dataset"] = "l"
    print(table)
    print(f"{_models_line(cards)} Times: normal / high-performance mode (PaddleX figures, FP32, T4 GPU, Xeon CPU).")
    print("Cached: the official inference model is in segzoo's cache (yes) or PaddleX's (PaddleX); "
          "`segzoo download NAME` fetches it.")
    return 0


def _models_line(cards) -> str:
    """``20 models: 18 with PaddleX's published times, plus 2 with its mIoU only (...)``: what the count is made of."""
    timed = [c.name for c in cards if c.official is not None and (c.figures.cpu_ms or c.figures.gpu_ms)]
    untimed = [c.name for c in cards if c.official is not None and c.name not in timed]
    other = [c.name for c in cards if c.official is None]
    parts = [f"{len(timed)} with PaddleX's published times"] if timed else []
    if untimed:
        parts.append(f"{len(untimed)} with its mIoU only ({', '.join(untimed)})")
    if other:
        parts.append(f"{len(other)} without official weights ({', '.join(other)})")
    count = f"{len(cards)} model{'s' if len(cards) != 1 else ''}"
    return f"{count}: {parts[0]}, plus {' and '.join(parts[1:])}." if len(parts) > 1 else f"{count}."


def card_to_dict(card) -> dict:
    data = card.model_dump(mode="json")
    data["config"] = card.config_class.model_json_schema()["properties"]
    data["config_class"] = f"{card.config_class.__module__}.{card.config_class.__qualname__}"
    return data


# -- info -------------------------------------------------------------------------------------
def add_arguments_info(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="model name")
    p.add_argument("--json", action="store_true")
    p.add_argument("--check", action="store_true",
                   help="export the model and convert it to ONNX here, on random weights, and report what worked "
                        "(segzoo.testing.ModelContract's export checks; exits 1 if a declared one fails)")


def run_info(args) -> int:
    registry = get_registry()
    card = registry.card(args.model)
    report = _export_report(card.name) if args.check else None
    if args.json:
        data = card_to_dict(card)
        if report is not None:
            data["export_checked"] = [r.__dict__ for r in report]
        print(json.dumps(data, indent=2, ensure_ascii=False))
        return 1 if report and any(r.status == "failed" for r in report) else 0
    f = card.figures
    print(f"{card.name}  ({'; '.join(x for x in (card.family, card.architecture) if x)})")
    if card.description:
        print(f"  {card.description}")
    miou = f"mIoU {_fmt(f.miou)} %" if f.miou is not None else "no published mIoU"
    print(f"  dataset: {card.dataset}, {card.num_classes} classes; {miou}")
    print(f"  evaluation protocol: {card.eval_protocol or 'not stated'}")
    fed = (f"padded to a multiple of {card.pad_to} ({card.pad_reason})" if card.pad_to
           else "each image is fed at its own size")
    print(f"  typical input (W, H): {card.describe_input_size()}; output stride {card.size_divisor}; {fed}")
    e = card.export
    shape = "dynamic H×W" if e.dynamic_shape else f"fixed input {e.fixed_input_shape}"
    onnx = ("yes" + (" (fixed H×W)" if e.onnx_static_hw else "")) if e.onnx else "no"
    print(f"  export: {'yes' if e.static else 'no'} ({shape}); ONNX: {onnx}" + (f"; {e.note}" if e.note else ""))
    if report is None:
        print(f"    (declared by the plugin, not checked here: `segzoo info {card.name} --check` checks it)")
    else:
        for r in report:
            print(f"    checked here, {r.check}: {r.status}" + (f": {r.detail}" if r.detail else ""))
    from .inference.precision import describe  # OpenVINO's view of this CPU, and the bf16 verdicts kept

    for line in describe(card.name):
        print(f"  {line}")
    print(f"  config ({card.config_class.__name__}):")
    defaults = registry.config(card.name).model_dump()
    for key, field in card.config_class.model_fields.items():
        default = defaults.get(key)
        desc = f"  # {field.description}" if field.description else ""
        print(f"    {key}: {default!r}{desc}")
    return 1 if report and any(r.status == "failed" for r in report) else 0


def _export_report(name: str) -> list:
    """``ModelContract(name).export_report()``, with Paddle's and paddle2onnx's chatter kept off the output."""
    import logging

    from .testing import ModelContract

    print(f"checking the export of {name} (a static graph, then ONNX) ...", file=sys.stderr, flush=True)
    logging.getLogger("segzoo").setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ModelContract(name).export_report()


# -- plugins ----------------------------------------------------------------------------------
def add_arguments_plugins(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true")


def run_plugins(args) -> int:
    infos = get_registry().plugins()
    if args.json:
        print(json.dumps([info.__dict__ for info in infos], indent=2))
        return 0
    for info in infos:
        origin = f"{info.distribution} {info.version}".strip() or info.group
        print(f"{info.name}  [{origin}]  hooks: {', '.join(info.hooks)}")
    blocked = blocked_names()
    if blocked:
        print(f"blocked by {BLOCK_ENV}: {', '.join(blocked)}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
