"""The exports cache: networks exported (``cached_export``) and converted to ONNX (``cached_onnx``) once, bounded.

Engines other than dygraph run weights and model names from an export kept in
this cache, and the ONNX engines from a paddle2onnx conversion kept beside it:

* an **exported directory** (``inference.json`` + ``inference.pdiparams``):
  the program is converted once and the ``.onnx`` file kept in the cache,
  keyed by a hash of the two files;
* **dygraph weights**, a **model name** (random init) or a built layer: the
  network is exported first (:func:`cached_export`, keyed by a hash of the
  weights and the config), then converted.

Everything lands under ``segzoo.paths.cache_dir() / "exports"`` (set
``SEGZOO_HOME`` to move it), written atomically, guarded by a file lock so two
processes do not convert the same model at once, and reused next time. The
cache is bounded: the least recently used entries beyond :data:`CACHE_MAX_ENTRIES`
entries or :data:`CACHE_MAX_MB` megabytes (``$SEGZOO_EXPORTS_MAX_MB``) are
removed; ``segzoo cache`` shows its size and limit.

Weights and segzoo's own exports of them are converted once per network
instead, whichever way they arrive (:mod:`segzoo.inference.netcache`); this
module keys the programs made elsewhere. Temporary folders (a rebuild's
export) are made under the cache too (:func:`work_dir`, ``exports/.work``), and
those of processes that were killed are swept by the next one.

Conversion runs in a child process and is checked against Paddle Inference
before it is used (:mod:`segzoo.inference.convert`). A conversion that fails
or differs is remembered in the cache (``<name>.onnx.failed``, so it is not
retried).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import socket
import sys
import tempfile
import time
from importlib import metadata
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional

from .._version import __version__
from ..errors import ConfigError, ExportError, WeightsError
from ..fileio import atomic_write
from ..paths import cache_dir
from . import export as export_module
from .convert import (  # noqa: F401  (the conversion's names, which this module held before)
    CONVERT_TIMEOUT,
    OPSET,
    Conversion,
    _convert_main,
    convert_to_onnx,
    validate_conversion,
)
from .modeldir import read_inference_yml
from .netid import file_digest, layer_digest  # noqa: F401  (the digests' old home)

log = logging.getLogger("segzoo")

#: cache entries (exports and converted models) kept; the least recently used beyond are removed
CACHE_MAX_ENTRIES = 64
#: megabytes the exports cache may hold (``$SEGZOO_EXPORTS_MAX_MB``); least recently used entries go first
CACHE_MAX_MB = 2048
#: the folder of the exports cache that holds temporary work folders (:func:`work_dir`)
WORK_DIR = ".work"
#: hours after which a work folder is stale even if a process of its pid runs
WORK_MAX_HOURS = 6


# -- the cache -------------------------------------------------------------------------------------
def exports_cache() -> Path:
    """Where exports and ONNX conversions are cached: ``cache_dir() / "exports"``."""
    return cache_dir() / "exports"


def package_versions(*dists: str) -> dict:
    """``{"segzoo": version, dist: version, ...}`` for the ``dists`` that are installed (what a cache key depends on)."""
    out = {"segzoo": __version__}
    for dist in dists:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def _versions() -> dict:
    return package_versions("paddlepaddle", "paddlepaddle-gpu", "paddle2onnx")


def _key(**parts: Any) -> str:
    text = json.dumps({**parts, "versions": _versions()}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


@contextmanager
def work_dir(prefix: str) -> Iterator[Path]:
    """A temporary folder under the cache (``exports/.work/PREFIX-HOST-PID-*``), removed afterwards.

    Folders left by processes that were killed (``kill -9`` during a rebuild)
    are swept first (:func:`sweep_work_dirs`), so none pile up, here or in the
    system's temporary directory.
    """
    root = exports_cache() / WORK_DIR
    root.mkdir(parents=True, exist_ok=True)
    sweep_work_dirs(root)
    path = Path(tempfile.mkdtemp(prefix=f"{_safe(prefix)}-{_host()}-{os.getpid()}-", dir=root))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _host() -> str:
    """This machine's name as a work folder carries it (a cache on a shared disk: others' pids are not ours)."""
    return re.sub(r"[^A-Za-z0-9_.]+", "_", socket.gethostname() or "host")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    try:  # a zombie (killed, not yet reaped) holds its pid but writes nothing more
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def sweep_work_dirs(root: Optional[Path] = None, max_age_s: float = WORK_MAX_HOURS * 3600) -> list[Path]:
    """Remove stale temporary folders of the cache; return them.

    Stale: a work folder (:func:`work_dir`) whose process (on this machine) is gone, or older
    than ``max_age_s`` (its pid may have been reused); an unfinished export or
    file (``.NAME.*.tmp`` beside the exports: :func:`segzoo.inference.export.export_model`,
    :func:`segzoo.fileio.atomic_write`) older than ``max_age_s``.
    """
    root = root or exports_cache() / WORK_DIR
    now = time.time()
    stale = []
    for path in list(root.iterdir()) if root.is_dir() else []:
        match = re.match(r".+-([^-]+)-(\d+)-[^-]*$", path.name)
        try:
            old = now - path.stat().st_mtime > max_age_s
        except OSError:
            continue
        pid = int(match.group(2)) if match and match.group(1) == _host() else None
        gone = pid is not None and pid != os.getpid() and not _alive(pid)
        if old or gone:
            stale.append(path)
    exports = root.parent
    for path in list(exports.glob(".*.tmp")) if exports.is_dir() else []:
        try:
            if now - path.stat().st_mtime > max_age_s:
                stale.append(path)
        except OSError:
            continue
    for path in stale:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    if stale:
        log.info("removed %d stale temporary folders of the exports cache", len(stale))
    return stale


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name or "model")


def _lock(path: Path):
    from filelock import FileLock

    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(path) + ".lock")


def _touch(path: Path) -> None:
    try:
        os.utime(path)
    except OSError:  # pragma: no cover - a read-only cache still works
        pass


def cache_limit_bytes() -> int:
    """The size bound of the exports cache: ``$SEGZOO_EXPORTS_MAX_MB`` megabytes, default :data:`CACHE_MAX_MB`."""
    raw = os.environ.get("SEGZOO_EXPORTS_MAX_MB")
    try:
        mb = float(raw) if raw else CACHE_MAX_MB
    except ValueError:
        raise ConfigError(f"SEGZOO_EXPORTS_MAX_MB={raw!r} must be a number of megabytes") from None
    return int(mb * 1024 * 1024)


def _entry_bytes(path: Path) -> int:
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return path.stat().st_size if path.exists() else 0


def prune_cache(root: Optional[Path] = None, keep: int = CACHE_MAX_ENTRIES, max_bytes: Optional[int] = None) -> list[Path]:
    """Remove the least recently used entries beyond ``keep`` entries or ``max_bytes`` in all; return them.

    Each use of an entry refreshes its time (:func:`_touch`), so the entries
    removed are those unused longest; the most recent one always stays, and an
    entry another process holds locked is left alone.
    """
    root = root or exports_cache()
    if not root.is_dir():
        return []
    max_bytes = cache_limit_bytes() if max_bytes is None else int(max_bytes)
    entries = [p for p in root.iterdir() if not p.name.startswith(".") and not p.name.endswith(".lock")]
    entries.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    removed = []
    total = 0
    for rank, path in enumerate(entries):
        size = _entry_bytes(path)
        total += size
        if rank == 0 or (rank < keep and total <= max_bytes):
            continue
        try:
            with _lock(path).acquire(timeout=0):
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
            Path(str(path) + ".lock").unlink(missing_ok=True)
            removed.append(path)
            total -= size
        except Exception:  # in use by another process: leave it
            continue
    if removed:
        log.info("exports cache %s: removed %d least recently used entries (limits: %d entries, %.0f MB)",
                 root, len(removed), keep, max_bytes / 1048576)
    return removed


def cached_export(
    model_name: str,
    config: Any,
    layer: Any,
    output_op: str = "argmax",
    input_shape: Optional[list] = None,
):
    """Export ``layer`` to the cache (once per weights, config, output op and shape); return its ``DeployInfo``.

    The key hashes the model name, the config, the layer's weights
    (:func:`layer_digest`), ``output_op``, ``input_shape`` and the versions of
    segzoo, paddle and paddle2onnx, so changed weights give a new export.
    """
    cfg = config.model_dump(mode="json", exclude={"pretrained"}) if hasattr(config, "model_dump") else dict(config)
    key = _key(
        kind="export",
        model=model_name,
        config=cfg,
        weights=layer_digest(layer),
        output_op=output_op,
        input_shape=list(input_shape) if input_shape is not None else None,
    )
    shape = "" if input_shape is None else "-" + "x".join(str(s if s else "N") for s in input_shape[2:])
    target = exports_cache() / f"{_safe(model_name)}{shape}-{key}"
    with _lock(target):
        if not (target / "inference.yml").is_file():
            t0 = time.perf_counter()
            export_module.export_model(model_name, target, config=config, layer=layer, input_shape=input_shape, output_op=output_op)
            log.info("%s exported to %s in %.1f s", model_name, target, time.perf_counter() - t0)
        _touch(target)
    prune_cache()
    return read_inference_yml(target)


def cached_onnx(deploy, rebuild=None, rebuild_first: bool = False) -> Path:
    """The ONNX model of an exported directory, converted once into the cache (keyed by the files' hash).

    ``rebuild(target, reason)``, when given, is tried once when the program
    itself does not convert (see :func:`network_rebuild`), or before
    converting it with ``rebuild_first`` (the plugin's network exports a faster
    graph); it writes an equivalent conversion to ``target``, which then serves
    this directory like its own. A first rebuild that fails leaves the program
    to be converted as it is.
    """
    # a rebuild-first conversion is another file than the program's own (which a plain call may have made)
    key = _key(kind="onnx", files=file_digest(deploy.model_file, deploy.params_file), opset=OPSET,
               **({"rebuilt": True} if rebuild_first and rebuild is not None else {}))
    target = exports_cache() / f"{_safe(deploy.model_name or deploy.model_file.parent.name)}-{key}.onnx"
    failed = target.with_name(target.name + ".failed")
    rebuild_failed = target.with_name(target.name + ".failed-rebuild")
    with _lock(target):
        if not target.is_file() and rebuild_first and rebuild is not None and not rebuild_failed.is_file():
            try:
                rebuild(target, "its plugin's network exports a better graph of the same function (export.rebuild_exports)")
            except (ExportError, WeightsError) as exc:
                with atomic_write(rebuild_failed) as fh:
                    fh.write(str(exc))
                log.info("%s: %s; converting the program as it is", deploy.model_name or deploy.model_file, exc)
        if not target.is_file() and not failed.is_file():
            log.info("%s: converting to ONNX once for the fast engine (cached in %s) ...",
                     deploy.model_name or deploy.model_file.parent.name, target.parent)
            try:
                convert_to_onnx(deploy.model_file, deploy.params_file, target)
            except ExportError as exc:
                with atomic_write(failed) as fh:
                    fh.write(str(exc))
        if not target.is_file():  # converted before, and it did not work: do not pay for it again
            _touch(failed)
            reason = failed.read_text(encoding="utf-8").strip()
            if rebuild is None or rebuild_failed.is_file():
                raise ExportError(reason)
            try:
                rebuild(target, reason)
            except (ExportError, WeightsError) as exc:
                with atomic_write(rebuild_failed) as fh:
                    fh.write(str(exc))
                raise ExportError(f"{reason}; rebuilding the network from its weights did not work either: {exc}") from exc
        _touch(target)
    prune_cache()
    return target


if __name__ == "__main__":  # pragma: no cover - the conversion child of segzoo < segzoo.inference.convert
    sys.exit(_convert_main())
