"""``segzoo download`` and ``segzoo cache``: prefetch official models and demo data, show and clear the cache.

Nothing heavy is imported (no paddle, and httpx only when something is downloaded).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from . import official
from .download import human_size
from .errors import ConfigError, SegzooError
from .official import DATASETS, CacheEntry, cache_entries, clear
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
    failures: list[tuple[str, SegzooError]] = []  # every model is tried; the failures are summed up at the end
    for name in names:
        try:
            _download_model(name, args.training)
        except SegzooError as exc:
            failures.append((name, exc))
    for dataset in args.dataset:
        dest = Path(args.dataset_dir).expanduser() / dataset
        try:
            path = official.fetch_dataset(dataset, dest)
        except SegzooError as exc:
            failures.append((f"dataset {dataset}", exc))
            continue
        print(f"dataset {dataset}: {path.resolve()}")
    tried = len(names) + len(args.dataset)
    if len(failures) == 1 and tried == 1:
        raise failures[0][1]  # one line, as any error
    if failures:
        rest = "; the others are in the cache" if len(failures) < tried else ""
        print(f"segzoo download: error: {len(failures)} of {tried} failed{rest}:", file=sys.stderr)
        for what, exc in failures:
            print(f"  {what}: {exc}", file=sys.stderr)
        return max(exc.exit_code for _, exc in failures)
    return 0


def _download_model(name: str, training: bool) -> None:
    """Fetch one model's inference model (and with ``training`` its official weights), printing where each is."""
    before = official.cached_inference_dir(name)
    path = official.official_inference_dir(name)
    where = "PaddleX's cache" if before is not None and before.parent == official.paddlex_models_dir() else (
        "cached" if before is not None else "downloaded")
    print(f"{name}: inference model {where}: {path}")
    if not training:
        return
    done = set()
    for kind in ("backbone", "model"):
        rel = official.weights_path(name, kind)
        if rel in done:
            continue
        done.add(rel)
        was = (official.pretrained_dir() / rel.rpartition("/")[2]).is_file()
        weights = official.official_weights(name, kind)
        print(f"{name}: {kind} weights {'cached' if was else 'downloaded'}: {weights}")


# -- cache ------------------------------------------------------------------------------------------
def add_arguments_cache(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Show everything segzoo's cache holds: official models, weights and datasets, the engines' exports "
        "and ONNX conversions (exports), and the other folders segzoo keeps there; PaddleX's model cache is "
        "shown too, but segzoo only reads it. Remove entries with segzoo cache clear NAME... (a model, a "
        "dataset, a weights file or a folder such as exports) or segzoo cache clear --all."
    )
    p.add_argument("action", nargs="?", choices=["list", "clear"], default="list", help="list (default) or clear")
    p.add_argument("names", nargs="*", metavar="NAME",
                   help="clear: the models, datasets, weights files or folders (exports, ...) to remove")
    p.add_argument("--all", action="store_true", help="clear: everything in segzoo's cache (never PaddleX's)")
    p.add_argument("--json", action="store_true", help="list: print JSON")


#: what segzoo keeps in the folders of its cache beside the official files (others are listed without a note)
STORE_NOTES = {
    "exports": "the engines' exports and ONNX conversions",
    "auto": "engine='auto' probe results",
    "tensorrt": "TensorRT engines",
    "paddleseg": "paddleseg's home (SEG_HOME)",
    "matplotlib": "matplotlib's settings and font cache (MPLCONFIGDIR)",
    "openvino": "OpenVINO's compiled models (CACHE_DIR)",
}


def run_cache(args) -> int:
    if args.action == "clear":
        return _run_clear(args)
    if args.names or args.all:
        raise ConfigError("names and --all go with `segzoo cache clear`")
    entries = cache_entries()
    stores = _stores()
    exports = _exports_summary()
    ours = [e for e in entries if e.kind != "paddlex"]
    total = sum(e.size for e in ours) + sum(e.size for e in stores)
    if args.json:
        listing = [{"kind": e.kind, "name": e.name, "size": e.size, "path": str(e.path)} for e in entries + stores]
        print(json.dumps({"entries": listing, "exports": exports, "path": str(cache_dir()), "size": total}, indent=2))
        return 0
    print(f"segzoo's cache: {cache_dir()}")
    print(
        f"exports: {_count(exports['entries'], 'entry', 'entries')}, {human_size(exports['size'])} in {exports['path']} "
        f"(bounded: least recently used removed beyond {exports['max_entries']} entries or "
        f"{human_size(exports['max_size'])}; $SEGZOO_EXPORTS_MAX_MB sets the size)"
    )
    if entries or stores:
        from prettytable import PrettyTable

        table = PrettyTable(["Kind", "Name", "Size", "Path"])
        for e in entries + stores:
            kind = {"paddlex": "model (PaddleX)", "store": STORE_NOTES.get(e.name, "folder")}.get(e.kind, e.kind)
            table.add_row([kind, e.name, human_size(e.size), str(e.path)])
        table.align = "l"
        table.align["Size"] = "r"
        print(table)
    print(
        f"{_count(len(ours), 'official model, weights file or dataset', 'official models, weights files and datasets')}"
        f", {_count(exports['entries'], 'export', 'exports')}: {human_size(total)} in segzoo's cache"
    )
    return 0


def _run_clear(args) -> int:
    names = list(args.names)
    stores = {e.name: e for e in _stores()}
    if args.all:
        names += sorted({e.name for e in cache_entries() if e.kind in ("model", "dataset")} - set(names))
        names += sorted({e.name for e in cache_entries() if e.kind == "weights"} - set(names))
        names += sorted(set(stores) - set(names))
    if not names:
        if args.all:
            print("segzoo's cache holds nothing")
            return 0
        raise ConfigError("segzoo cache clear needs NAME... (or --all); see `segzoo cache` for what is cached")
    for name in names:
        if name in stores:
            removed = _clear_store(stores[name])
        else:
            removed = clear(name) if not args.all else _clear_quiet(clear, name)
        for path in removed:
            print(f"removed {path}")
    return 0


def _stores() -> list[CacheEntry]:
    """The folders of segzoo's cache beside the official files (exports, auto, ...), each as one entry."""
    official_roots = {official.models_dir(), official.pretrained_dir(), cache_dir() / "datasets", cache_dir() / "weights"}
    root = cache_dir()
    if not root.is_dir():
        return []
    folders = [p for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".") and p not in official_roots]
    entries = [CacheEntry("store", p.name, p, _tree_bytes(p)) for p in folders]
    return [e for e in entries if any(not f.name.endswith(".lock") for f in e.path.rglob("*") if f.is_file())]


def _clear_store(entry: CacheEntry) -> list[Path]:
    """Remove a folder of the cache; the exports cache entry by entry, leaving those another process holds.

    The exports cache's dotted folders of facts about its entries (``.precision``'s bf16 verdicts, ``.int8``'s
    pointers) go too; its work folder (``.work``, where running processes convert) stays.
    """
    from .inference import export_cache
    from .inference.export_cache import _lock, exports_cache

    if entry.path != exports_cache():
        shutil.rmtree(entry.path, ignore_errors=True)
        return [entry.path]
    removed, busy = [], []
    work = getattr(export_cache, "WORK_DIR", ".work")
    for path in sorted(entry.path.iterdir()):
        if path.name.startswith(".") and path.is_dir() and not path.is_symlink() and path.name != work:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
        if path.name.endswith(".lock") or path.name.startswith("."):
            continue
        try:
            with _lock(path).acquire(timeout=0):
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink(missing_ok=True)
        except Exception:  # filelock's Timeout: another process is using it
            busy.append(path)
            continue
        Path(str(path) + ".lock").unlink(missing_ok=True)
        removed.append(path)
    if busy:
        print(f"segzoo cache: {len(busy)} exports in use by another process were left: "
              f"{', '.join(p.name for p in busy)}", file=sys.stderr)
    return removed


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _tree_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


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
