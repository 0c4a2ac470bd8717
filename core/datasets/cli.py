"""``segzoo check-dataset``: convert, re-split and check a SegDataset.

Usage::

    segzoo check-dataset DATASET_DIR [--output DIR] [--num-classes N]
                         [--convert labelme --convert-src SRC [--overwrite]]
                         [--split TRAIN,VAL] [--seed N] [--sample-num N] [--no-progress]

Order when combined: convert (SRC into DATASET_DIR), then split, then check.
Prints a short summary and returns 0 when the check passes, 1 when it finds
problems. User errors raise :class:`~segzoo.errors.SegzooError` subclasses,
which the main CLI prints as one line (exit status 2).
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path
from typing import Optional

from ..errors import ConfigError
from ..fileio import check_output_dir
from .split import validate_percents

__all__ = ["add_arguments", "run", "parse_split", "format_summary"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset_dir", metavar="DATASET_DIR", help="the SegDataset folder (train.txt, val.txt, ...)")
    parser.add_argument(
        "--output",
        metavar="DIR",
        default="output/check_dataset",
        help="where check_dataset_result.json, histogram.png and demo_img/ go (default: %(default)s)",
    )
    parser.add_argument(
        "--num-classes",
        type=int,
        metavar="N",
        default=None,
        help="number of classes (default: inferred as the largest train label + 1, 255 excluded)",
    )
    parser.add_argument(
        "--convert",
        metavar="FORMAT",
        type=str.lower,
        choices=["labelme"],
        default=None,
        help="first convert --convert-src from this format into DATASET_DIR (only 'labelme')",
    )
    parser.add_argument("--convert-src", metavar="SRC", default=None, help="the folder to convert")
    parser.add_argument(
        "--overwrite", action="store_true", help="let --convert replace a non-empty DATASET_DIR"
    )
    parser.add_argument(
        "--split",
        metavar="TRAIN,VAL",
        default=None,
        help="re-split train.txt+val.txt by these percentages, e.g. 80,20 (old lists kept as .bak)",
    )
    parser.add_argument("--seed", type=int, default=0, metavar="N", help="seed of --split (default: 0)")
    parser.add_argument(
        "--sample-num", type=int, default=10, metavar="N", help="overlay pictures per split (default: 10)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def parse_split(text: str) -> tuple[int, int]:
    """``"80,20"`` -> ``(80, 20)``; ConfigError naming ``--split`` otherwise."""
    parts = [p.strip() for p in str(text).replace("/", ",").split(",")]
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise ConfigError(f"--split: expected TRAIN,VAL integer percentages such as 80,20, got {text!r}")
    return validate_percents(int(parts[0]), int(parts[1]), prefix="--split")


def format_summary(result: dict, max_files: int = 5) -> str:
    """A few lines for people: samples, classes, problems grouped by code."""
    a = result["attributes"]
    lines = []
    conv = result.get("convert")
    if conv:
        lines.append(
            f"Converted LabelMe {conv['src_dir']}: {conv['num_images']} images, "
            f"{len(conv['class_names'])} classes, {conv['skipped_shapes']} shapes skipped."
        )
    spl = result.get("split")
    if spl:
        state = "unchanged" if spl.get("unchanged") else "old lists kept as .bak"
        lines.append(
            f"Split {spl['train_percent']}/{spl['val_percent']} (seed {spl['seed']}): "
            f"{spl['train_samples']} train, {spl['val_samples']} val ({state})."
        )
    lines.append(f"Dataset {result['dataset_path']}")
    lines.append(
        f"  train: {a['train_samples']} samples, val: {a['val_samples']} samples, "
        f"classes: {a['num_classes']} ({result.get('num_classes_source', '')})"
    )
    counts = result.get("error_counts", {})
    if result["check_pass"]:
        lines.append("  check: passed")
    else:
        lines.append(f"  check: FAILED, {sum(counts.values())} problem(s)")
        groups: dict[str, list[dict]] = defaultdict(list)
        for e in result["errors"]:
            groups[e["code"]].append(e)
        for code in sorted(counts):
            items = groups.get(code, [])
            lines.append(f"  {code} ({counts[code]}):")
            for e in items[:max_files]:
                if e.get("line") and e["file"] == e.get("list_file"):
                    where = f"{e['file']} line {e['line']}"
                elif e.get("line"):
                    where = f"{e['file']} ({e['list_file']} line {e['line']})"
                else:
                    where = e["file"]
                lines.append(f"    {where}")
            if counts[code] > min(len(items), max_files):
                lines.append(f"    ... and {counts[code] - min(len(items), max_files)} more")
            if items:
                lines.append(f"    e.g. {items[0]['message']}")
    for w in result.get("warnings", []):
        lines.append(f"  warning: {w['message']}")
    lines.append(f"  report: {result.get('result_path', 'check_dataset_result.json')}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from .check import RESULT_FILE, check_dataset_from_config  # lazy: OpenCV and numpy

    check_output_dir(args.output, "--output")  # before a conversion or split changes anything
    if args.convert and not args.convert_src:
        raise ConfigError("--convert-src: required with --convert labelme (the LabelMe folder)")
    if args.convert_src and not args.convert:
        raise ConfigError("--convert: say the source format (--convert labelme) when giving --convert-src")
    cfg: dict = {"convert": {"enable": False}, "split": {"enable": False}}
    if args.convert:
        cfg["convert"] = {
            "enable": True,
            "src_dataset_type": "LabelMe",
            "src_dataset_dir": args.convert_src,
            "overwrite": bool(getattr(args, "overwrite", False)),
        }
    if args.split:
        tp, vp = parse_split(args.split)
        cfg["split"] = {"enable": True, "train_percent": tp, "val_percent": vp, "seed": args.seed}
    result = check_dataset_from_config(
        cfg,
        args.dataset_dir,
        args.output,
        num_classes=args.num_classes,
        sample_num=getattr(args, "sample_num", 10),
        progress=not args.no_progress,
    )
    result = {**result, "result_path": str(Path(args.output) / RESULT_FILE)}
    print(format_summary(result))
    return 0 if result["check_pass"] else 1


def main(argv: Optional[list] = None) -> int:  # pragma: no cover - convenience for `python -m`
    parser = argparse.ArgumentParser(prog="segzoo check-dataset")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    import sys

    sys.exit(main())
