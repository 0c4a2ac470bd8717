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

**Conversion runs in a child process** (``python -m segzoo.inference.export_cache convert ...``).
``paddle2onnx`` aborts the whole process (``SIGABRT``) on a graph it cannot
convert, e.g. PP-LiteSeg's adaptive pooling with a dynamic H×W; in a child that
becomes an :class:`~segzoo.errors.ExportError` with paddle2onnx's own message.
``optimize_tool`` is off: big models convert in seconds instead of minutes
(ONNX Runtime folds constants itself when it loads the model).

**Every conversion is checked** before it is used: the child runs the ONNX
model and Paddle Inference (plain kernels) on one random input and compares
them (:func:`validate_conversion`). A conversion that fails or differs is
remembered in the cache (``<name>.onnx.failed``, so it is not retried).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .._version import __version__
from ..errors import ConfigError, DependencyError, ExportError, WeightsError
from ..fileio import atomic_write
from ..models import network_from_export
from ..paths import cache_dir
from . import export as export_module
from .engine_table import default_cpu_threads
from .modeldir import read_inference_yml

log = logging.getLogger("segzoo")

#: ONNX opset asked of paddle2onnx (it raises it by itself where an op needs more)
OPSET = 13
#: seconds a conversion may take before it is stopped
CONVERT_TIMEOUT = 900
#: cache entries (exports and converted models) kept; the least recently used beyond are removed
CACHE_MAX_ENTRIES = 64
#: megabytes the exports cache may hold (``$SEGZOO_EXPORTS_MAX_MB``); least recently used entries go first
CACHE_MAX_MB = 2048


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


def layer_digest(layer: Any) -> str:
    """SHA-256 of a layer's state (names, dtypes, shapes and values), in name order."""
    h = hashlib.sha256()
    for name, tensor in sorted(layer.state_dict().items()):
        arr = np.ascontiguousarray(tensor.numpy())
        h.update(f"{name}|{arr.dtype}|{arr.shape}|".encode())
        h.update(memoryview(arr).cast("B"))
    return h.hexdigest()


def file_digest(*paths: Path) -> str:
    """SHA-256 of the files' contents, in order."""
    h = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                h.update(block)
        h.update(b"|")
    return h.hexdigest()


def _key(**parts: Any) -> str:
    text = json.dumps({**parts, "versions": _versions()}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


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


def convert_to_onnx(model_file: Path, params_file: Path, out_file: Path, opset: int = OPSET,
                    timeout: float = CONVERT_TIMEOUT) -> Path:
    """Convert an exported Paddle program to ONNX with paddle2onnx, in a child process; write ``out_file`` atomically."""
    try:
        import paddle2onnx  # noqa: F401  (fail here, with the install hint, not in the child)
    except ImportError as exc:
        raise DependencyError(f"paddle2onnx is not importable ({exc}); install it: pip install paddle2onnx==2.1.0") from exc
    out_file = Path(out_file)
    cmd = [sys.executable, "-m", "segzoo.inference.export_cache", "convert", str(model_file), str(params_file),
           str(out_file), "--opset", str(int(opset))]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, errors="replace")
    except subprocess.TimeoutExpired:
        raise ExportError(
            f"paddle2onnx did not convert {model_file} within {timeout:.0f} s; use the paddle engine for this model"
        ) from None
    if proc.returncode != 0 or not out_file.is_file():
        raise ExportError(f"the ONNX conversion of {model_file} is not usable: {_conversion_error(proc)}")
    log.info("converted %s to %s in %.1f s", model_file, out_file, time.perf_counter() - t0)
    return out_file


def _conversion_error(proc: subprocess.CompletedProcess) -> str:
    text = (proc.stderr or "") + "\n" + (proc.stdout or "")
    errors = [m.group(1).strip() for m in re.finditer(r"\[ERROR\]\[(?:Paddle2ONNX|segzoo)\]\s*(.*)", text)]
    if errors:
        return "; ".join(dict.fromkeys(errors))
    lines = [line.strip() for line in text.splitlines() if line.strip() and "Warning" not in line]
    tail = lines[-1] if lines else ""
    what = f"exit status {proc.returncode}" if proc.returncode >= 0 else f"killed by signal {-proc.returncode}"
    return f"{what}{': ' + tail if tail else ''}"


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
                rebuild(target, "its plugin's network exports a faster graph of the same function")
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


def network_rebuild(model_name: str, config: Any, deploy):
    """``rebuild(target, reason)`` for :func:`cached_onnx`: convert the plugin's own network with the export's weights.

    PaddleX's official PP-LiteSeg program pools adaptively, which paddle2onnx
    converts only at a fixed H×W; segzoo's plugin builds the same network
    with a pooling that converts with a dynamic one. The rebuild loads the
    export's parameters into the plugin's network
    (:func:`segzoo.models.network_from_export`), checks that both give the
    same labels on two random inputs (one whose size is no multiple of the
    pooling bins), exports it to a temporary directory and converts that
    (checked against Paddle as every conversion is) into ``target``.
    """

    def rebuild(target: Path, reason: str) -> None:
        import tempfile

        import paddle

        log.info("%s: %s; converting the plugin's own network with the export's weights instead (once) ...",
                 model_name, reason)
        prefix = deploy.model_file.with_suffix("")
        try:
            program = paddle.jit.load(str(prefix))
        except Exception as exc:  # noqa: BLE001 - a program paddle cannot load as a layer
            raise ExportError(f"paddle cannot load {deploy.model_file} as a network: {str(exc).splitlines()[0]}") from exc
        layer, fitted = network_from_export(model_name, config, prefix, program)
        rng = np.random.default_rng(0)
        for h, w in ((256, 256), (200, 328)):
            x = paddle.to_tensor(rng.standard_normal((1, 3, h, w)).astype(np.float32))
            want, got = program(x), layer(x)
            want = np.asarray((want[0] if isinstance(want, (list, tuple)) else want).numpy())
            got = got[0].argmax(1).numpy()
            want = want.argmax(1) if want.ndim == 4 else want.reshape(got.shape)
            agree = float((want == got).mean())
            if agree < 0.999:
                raise ExportError(f"the plugin's {model_name} with the weights of {deploy.model_file} differs from it "
                                  f"at {w}×{h} (labels agree on {agree:.2%} of the pixels)")
        with tempfile.TemporaryDirectory(prefix="segzoo-rebuild-") as tmp:
            out = Path(tmp) / "export"
            export_module.export_model(model_name, out, config=fitted, layer=layer, output_op=deploy.output_op)
            convert_to_onnx(out / "inference.json", out / "inference.pdiparams", target)

    return rebuild


# -- the child process that converts -----------------------------------------------------------------
def _convert_main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m segzoo.inference.export_cache")
    sub = parser.add_subparsers(dest="cmd", required=True)
    conv = sub.add_parser("convert", help="convert inference.json + inference.pdiparams to ONNX")
    conv.add_argument("model_file")
    conv.add_argument("params_file")
    conv.add_argument("out_file")
    conv.add_argument("--opset", type=int, default=OPSET)
    args = parser.parse_args(argv)
    import paddle2onnx

    data = paddle2onnx.export(
        args.model_file,
        args.params_file,
        None,  # no save_file: return the bytes, with no optimize_tool pass
        opset_version=args.opset,
        auto_upgrade_opset=True,
        enable_onnx_checker=True,
        optimize_tool="None",
    )
    problem = validate_conversion(args.model_file, args.params_file, data)
    if problem:
        print(f"[ERROR][segzoo] {problem}", file=sys.stderr)
        return 3
    with atomic_write(args.out_file, "wb") as fh:
        fh.write(data)
    return 0


def validate_conversion(model_file: str, params_file: str, onnx_bytes: bytes, dynamic_hw=(128, 160)) -> Optional[str]:
    """Compare the ONNX model with Paddle Inference (plain CPU kernels) on one random input; ``None`` if they agree.

    The input is the program's fixed ``H×W`` when it has one, else
    ``dynamic_hw``. Labels must agree on 99.9 % of the pixels; scores within
    5e-3 of their range (SeaFormer_base/large's float32 attention reaches
    1.4e-3 on random weights and inputs), with the same argmax on 99.9 %. (paddle2onnx turns
    an adaptive pooling whose input is not a multiple of its bins into a plain
    pooling that averages other windows, for instance: it converts, but the
    masks differ.)
    """
    import onnxruntime as ort
    from paddle import inference as pi

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = default_cpu_threads()
    opts.log_severity_level = 3
    h, w = dynamic_hw
    try:
        sess = ort.InferenceSession(onnx_bytes, sess_options=opts, providers=["CPUExecutionProvider"])
        shape = sess.get_inputs()[0].shape  # ints where fixed, names or None where dynamic
        fixed = [d if isinstance(d, int) and d > 0 else None for d in shape]
        n = fixed[0] or 1
        h, w = fixed[2] or dynamic_hw[0], fixed[3] or dynamic_hw[1]
        x = np.random.default_rng(0).standard_normal((n, 3, h, w)).astype(np.float32)
        got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    except Exception as exc:
        first = str(exc).strip().splitlines()
        return f"ONNX Runtime cannot run it at {w}×{h}: {first[0] if first else type(exc).__name__}"
    config = pi.Config(model_file, params_file)
    config.disable_gpu()
    config.disable_onednn()
    config.set_cpu_math_library_num_threads(default_cpu_threads())
    config.disable_glog_info()
    predictor = pi.create_predictor(config)
    handle = predictor.get_input_handle(predictor.get_input_names()[0])
    handle.reshape(list(x.shape))
    handle.copy_from_cpu(x)
    predictor.run()
    want = predictor.get_output_handle(predictor.get_output_names()[0]).copy_to_cpu()
    if got.shape != want.shape:
        return f"it outputs {list(got.shape)}, Paddle {list(want.shape)} at {w}×{h}"
    if want.ndim == 4:
        rel = float(np.abs(got - want).max() / max(float(np.abs(want).max()), 1e-12))
        agree = float((got.argmax(1) == want.argmax(1)).mean())
        if rel > 5e-3 or agree < 0.999:
            return f"it differs from Paddle at {w}×{h}: scores by {rel:.1e} of their range, argmax on {1 - agree:.2%} of the pixels"
    else:
        agree = float((got == want).mean())
        if agree < 0.999:
            return f"it differs from Paddle at {w}×{h}: labels differ on {1 - agree:.2%} of the pixels"
    return None


if __name__ == "__main__":  # pragma: no cover - run as the conversion child
    sys.exit(_convert_main())
