"""``segzoo download`` and ``segzoo cache``: prefetch official models and demo data, show and clear the cache.

Nothing heavy is imported (no paddle, and httpx only when something is downloaded).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from . import official
from .download import human_size
from .errors import ConfigError
from .official import DATASETS, cache_entries, clear
from .paths import cache_dir
from .registry import get_registry


# -- download ---------------------------------------------------------------------------------------
def add_arguments_download(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Download PaddleX's official models into segzoo's cache (SEGZOO_HOME, default ~/.cache/segzoo), "
        "for machines that go offline later (SEGZOO_OFFLINE=1), or the demo datasets of PaddleX's tutorial. "
        "Models already in PaddleX's cache (~/.paddlex/official_models) or segzoo's are not downloaded again."
    )
    p.add_argument("models", nargs="*", metavar="NAME", help="model names (segzoo list-models)")
    p.add_argument("--all", action="store_true", help="every model that has official weights")
    p.add_argument("--training", action="store_true",
                   help="also the official .pdparams training starts from (backbone init and whole model)")
    p.add_argument("--dataset", action="append", default=[], choices=sorted(DATASETS), metavar="NAME",
                   help=f"a demo dataset of PaddleX's tutorial ({', '.join(DATASETS)}); repeatable")
    p.add_argument("--dataset-dir", default="./dataset",
                   help="folder the datasets are extracted into, as <dir>/<name> (default ./dataset, as in the tutorial)")


def run_download(args) -> int:
    registry = get_registry()
    names = list(args.models)
    if args.all:
        names += [n for n in registry.list_models() if registry.card(n).official is not None and n not in names]
    if not names and not args.dataset:
        raise ConfigError("give model names, --all, or --dataset NAME (see segzoo download --help)")
    for name in names:  # unknown names and models without official weights fail before any download
        registry.card(name)
        official.official_info(name)
    for name in names:
        before = official.cached_inference_dir(name)
        path = official.official_inference_dir(name)
        where = "PaddleX's cache" if before is not None and before.parent == official.paddlex_models_dir() else (
            "cached" if before is not None else "downloaded")
        print(f"{name}: inference model {where}: {path}")
        if args.training:
            kinds = ["backbone", "model"]
            done = set()
            for kind in kinds:
                rel = official.weights_path(name, kind)
                if rel in done:
                    continue
                done.add(rel)
                was = (official.pretrained_dir() / rel.rpartition("/")[2]).is_file()
                weights = official.official_weights(name, kind)
                print(f"{name}: {kind} weights {'cached' if was else 'downloaded'}: {weights}")
    for dataset in args.dataset:
        dest = Path(args.dataset_dir).expanduser() / dataset
        path = official.fetch_dataset(dataset, dest)
        print(f"dataset {dataset}: {path.resolve()}")
    return 0


# -- cache ------------------------------------------------------------------------------------------
def add_arguments_cache(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Show what segzoo's cache holds (official models, weights, datasets; and PaddleX's model cache, "
        "which segzoo reads but never changes), or remove entries: segzoo cache clear NAME..."
    )
    p.add_argument("action", nargs="?", choices=["list", "clear"], default="list", help="list (default) or clear")
    p.add_argument("names", nargs="*", metavar="NAME", help="clear: the models or datasets to remove")
    p.add_argument("--all", action="store_true", help="clear: every official model, weights file and dataset")
    p.add_argument("--json", action="store_true", help="list: print JSON")


def run_cache(args) -> int:
    if args.action == "clear":
        names = list(args.names)
        if args.all:
            names += sorted({e.name for e in cache_entries() if e.kind in ("model", "dataset")} - set(names))
            names += sorted({e.name for e in cache_entries() if e.kind == "weights"} - set(names))
        if not names:
            if args.all:
                print("the cache holds no models, weights or datasets")
                return 0
            raise ConfigError("segzoo cache clear needs NAME... (or --all); see `segzoo cache` for what is cached")
        for name in names:
            for path in clear(name) if not args.all else _clear_quiet(clear, name):
                print(f"removed {path}")
        return 0
    if args.names or args.all:
        raise ConfigError("names and --all go with `segzoo cache clear`")
    entries = cache_entries()
    exports = _exports_summary()
    if args.json:
        listing = [{"kind": e.kind, "name": e.name, "size": e.size, "path": str(e.path)} for e in entries]
        print(json.dumps({"entries": listing, "exports": exports}, indent=2))
        return 0
    print(f"segzoo's cache: {cache_dir()}")
    print(
        f"engine exports and ONNX conversions: {exports['entries']} entries, {human_size(exports['size'])} in "
        f"{exports['path']} (bounded: least recently used removed beyond {exports['max_entries']} entries or "
        f"{human_size(exports['max_size'])}; $SEGZOO_EXPORTS_MAX_MB sets the size)"
    )
    if not entries:
        print("no official models, weights or datasets are cached")
        return 0
    from prettytable import PrettyTable

    table = PrettyTable(["Kind", "Name", "Size", "Path"])
    for e in entries:
        table.add_row([e.kind if e.kind != "paddlex" else "model (PaddleX)", e.name, human_size(e.size), str(e.path)])
    table.align = "l"
    table.align["Size"] = "r"
    print(table)
    ours = sum(e.size for e in entries if e.kind != "paddlex")
    print(f"{sum(e.kind != 'paddlex' for e in entries)} entries, {human_size(ours)} in segzoo's cache")
    return 0


def _exports_summary() -> dict:
    """The exports cache's size and bounds, without importing paddle (``segzoo.inference.export_cache`` imports numpy only)."""
    from .inference.export_cache import CACHE_MAX_ENTRIES, _entry_bytes, cache_limit_bytes, exports_cache

    root = exports_cache()
    items = [p for p in root.iterdir() if not p.name.startswith(".") and not p.name.endswith(".lock")] if root.is_dir() else []
    return {"path": str(root), "entries": len(items), "size": sum(_entry_bytes(p) for p in items),
            "max_entries": CACHE_MAX_ENTRIES, "max_size": cache_limit_bytes()}


def _clear_quiet(clear, name):
    try:
        return clear(name)
    except ConfigError:  # with --all, an entry removed together with an earlier one
        return []
