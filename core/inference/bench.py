"""``segzoo benchmark``: per-image latency, directory throughput and peak memory of segzoo's engines.

Each measurement runs in its own child process (``python -m
segzoo.inference.bench --worker SPEC.json``), so its peak RSS is its own and
one engine's warm caches do not help another. A worker:

1. creates the predictor (``load_s``; conversions were done beforehand, so
   this is loading only);
2. predicts one image file ``warmup`` times, then ``repeat`` times, timing
   each call from the path to the label map: reading and decoding,
   pre-processing, the engine and post-processing (``latency_s`` is the
   median);
3. predicts a directory of ``images`` files (same size) with pipelining
   (``prefetch=2``, the default) and without (``prefetch=0``), and reports
   images per second for both;
4. reports its peak resident memory (:func:`peak_rss_mb`).

The model runs with seeded random weights (nothing is downloaded) unless
``--model-dir`` gives weights or an export. ``dygraph`` runs the ``.pdparams``;
``paddle``, ``onnxruntime`` and ``openvino`` run an export of the same weights (made once,
before the workers start; a model whose card says ``onnx_static_hw`` gets one
fixed-shape export per size for ONNX Runtime, as one would deploy it).
``ENGINE:PRECISION`` (``openvino:bf16``) runs an engine in another precision
(``openvino:int8``: a model quantized here by NNCF on drawn images, see
:func:`int8_export`); the table labels what really ran;
the table's ``agree %`` column is each engine's share of pixels equal to the
first engine's mask (dygraph by default), which shows what bf16 costs.

``benchmarks/run.py`` reuses :func:`run_worker` and :func:`measure` to
compare segzoo with paddleseg and PaddleX in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Optional

from ..errors import ConfigError
from ..fileio import write_json
from ..models import build_with_weights
from ..registry import get_registry
from ..weights import save_weights
from . import builtin  # noqa: F401  (registers the built-in engines in the table)
from .builtin import engine_help
from .engine_table import ENGINES, default_cpu_threads
from .export import export_model
from .modeldir import resolve_model_dir
from .onnx import export_onnx

DEFAULT_ENGINES = ("dygraph", "paddle", "onnxruntime", "openvino", "openvino:bf16")
DEFAULT_SIZES = ("512x512", "1024x512")
#: drawn images the benchmark calibrates its INT8 model on (``openvino:int8``)
INT8_CALIBRATION = 16


# -- helpers shared with benchmarks/run.py ------------------------------------------------------------
def parse_wh(text: str) -> tuple[int, int]:
    """``"1024x512"`` → ``(1024, 512)`` (W, H); errors say the expected form."""
    parts = str(text).lower().replace(",", "x").split("x")
    try:
        w, h = (int(p) for p in parts)
    except ValueError:
        raise ConfigError(f"--size {text!r}: give WxH, e.g. 512x512 or 1024x512") from None
    if w <= 0 or h <= 0:
        raise ConfigError(f"--size {text!r}: both sides must be > 0")
    return w, h


def write_images(directory: Path, size: tuple[int, int], count: int, seed: int = 0) -> list[Path]:
    """``count`` drawn-shapes JPEGs of ``size = (W, H)`` in ``directory`` (quality 95)."""
    import cv2
    import numpy as np

    from ..datasets.shapes import draw_sample

    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        image = draw_sample(rng, size, max_shapes=8, min_shapes=4)[0]
        path = directory / f"img_{i:03d}.jpg"
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        if not ok:  # pragma: no cover - OpenCV without a JPEG encoder
            raise RuntimeError("OpenCV cannot encode JPEG")
        path.write_bytes(buf.tobytes())
        paths.append(path)
    return paths


def peak_rss_mb() -> float:
    """This process's peak resident set size in MiB.

    ``VmHWM`` of ``/proc/self/status`` where there is one: ``getrusage``'s
    ``ru_maxrss`` survives ``execve`` on Linux, so a child started from a
    process that had loaded paddle would report its parent's peak.
    """
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def measure(
    predict_one: Callable[[str], Any],
    image: str,
    repeat: int,
    warmup: int,
    predict_dir: Optional[Callable[[str, int], int]] = None,
    images_dir: Optional[str] = None,
    prefetch_modes: tuple = (2, 0),
) -> dict:
    """Time ``predict_one(image)`` and ``predict_dir(directory, prefetch)`` (which returns the image count)."""
    for _ in range(max(0, warmup)):
        predict_one(image)
    times = []
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        predict_one(image)
        times.append(time.perf_counter() - t0)
    out: dict = {"latency_s": statistics.median(times), "latencies_s": [round(t, 5) for t in times]}
    if predict_dir is not None and images_dir is not None:
        for prefetch in prefetch_modes:
            t0 = time.perf_counter()
            n = predict_dir(images_dir, prefetch)
            seconds = time.perf_counter() - t0
            key = "throughput_ips" if prefetch else "throughput_serial_ips"
            out[key] = n / seconds
    return out


def run_worker(spec: dict, python: Optional[str] = None, module: Optional[list] = None,
               timeout: float = 3600, env: Optional[dict] = None) -> dict:
    """Run one measurement ``spec`` in a child process; its JSON answer, or ``{"error": ...}``.

    ``python`` and ``module`` choose the child (default: this interpreter and
    ``-m segzoo.inference.bench``); the spec goes through a temporary file.
    """
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(spec, fh)
        spec_path = fh.name
    cmd = [python or sys.executable] + (module or ["-m", "segzoo.inference.bench"]) + ["--worker", spec_path]
    child_env = dict(os.environ)
    threads = str(spec.get("threads", 2))
    child_env.update({"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "GLOG_minloglevel": "2"})
    child_env.update(env or {})
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=child_env, errors="replace")
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    finally:
        os.unlink(spec_path)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{\"result\""):
            return json.loads(line)["result"]
    text = (proc.stderr or "") + (proc.stdout or "")
    lines = [ln for ln in text.strip().splitlines() if ln.strip() and "warn" not in ln.lower()]
    why = next((ln.strip() for ln in reversed(lines) if "Error" in ln or "error" in ln), lines[-1].strip() if lines else "")
    status = f"exit {proc.returncode}" if proc.returncode >= 0 else f"signal {-proc.returncode}"
    return {"error": f"crashed ({status}): {why[:300]}"}


def _emit(result: dict) -> None:
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    sys.stdout.write("\n" + json.dumps({"result": result}) + "\n")
    sys.stdout.flush()


def _save_mask(path: Optional[str], mask) -> None:
    if path:
        import numpy as np

        np.save(path, np.asarray(mask).astype(np.int32))


def segzoo_worker(spec: dict) -> dict:
    """Measure one segzoo engine (the worker side of :func:`run_worker`)."""
    import warnings

    import segzoo

    warnings.simplefilter("ignore")
    t0 = time.perf_counter()
    options = {"cpu_threads": spec["threads"]} if spec["engine"] != "dygraph" else None
    if spec.get("precision") and options is not None:
        options["precision"] = spec["precision"]
    model = segzoo.create_model(spec["model"], model_dir=spec["model_dir"], device="cpu", engine=spec["engine"],
                                engine_options=options)
    load_s = time.perf_counter() - t0

    def one(path):
        return next(iter(model.predict(path, prefetch=0))).pred

    def directory(path, prefetch):
        return sum(1 for _ in model.predict(path, prefetch=prefetch))

    _save_mask(spec.get("mask_out"), one(spec["image"]))
    result = measure(one, spec["image"], spec["repeat"], spec["warmup"], directory, spec.get("images_dir"))
    result.update(load_s=load_s, engine_used=engine_label(model.engine))
    return result


def engine_label(engine) -> str:
    """What really ran: ``openvino``, ``openvino:bf16``, ``openvino:int8`` (fp32 is left unsaid)."""
    precision = getattr(engine, "precision", None)
    return engine.name if precision in (None, "fp32") else f"{engine.name}:{precision}"


def _asked(engine: str) -> str:
    return engine[: -len(":fp32")] if engine.endswith(":fp32") else engine


# -- segzoo benchmark -------------------------------------------------------------------------------
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Measure segzoo's engines on one model: median per-image latency (read, pre-process, infer, "
        "post-process), directory throughput with and without pipelining, and peak memory; each "
        "engine in its own process. Random seeded weights unless --model-dir is given."
    )
    p.add_argument("--model", required=True, help="model name (segzoo list-models)")
    p.add_argument("--model-dir", help="weights (.pdparams / a directory) or an exported directory to measure")
    p.add_argument("--engines", default=",".join(DEFAULT_ENGINES),
                   help=f"comma-separated engines, ENGINE:PRECISION for another precision "
                   f"(default {','.join(DEFAULT_ENGINES)}); the engines: {engine_help()}")
    p.add_argument("--size", action="append", help="image size WxH (repeatable; default 512x512 and 1024x512)")
    p.add_argument("--repeat", type=int, default=10, help="timed predictions per engine and size (default 10)")
    p.add_argument("--warmup", type=int, default=2, help="untimed predictions first (default 2)")
    p.add_argument("--images", type=int, default=8, help="images in the throughput directory (default 8; 0 skips it)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads per engine (default: the cores, at most 8)")
    p.add_argument("--json", dest="json_out", help="also write the results to this JSON file")


def prepare_sources(model_name: str, engines: list, sizes: list, work: Path, model_dir: Optional[str]) -> dict:
    """Weights and exports the workers run, made once: ``{(engine, (W, H)): model_dir}``."""
    import paddle

    registry = get_registry()
    card = registry.card(model_name)
    sources: dict = {}
    layer = config = weights = None
    source = resolve_model_dir(model_dir) if model_dir else None
    if source is None or source.kind == "weights":
        config = registry.config(model_name)
        if source is None:
            paddle.seed(0)
            layer = registry.build_model(model_name, config)
            weights = save_weights(layer, work / "weights" / "model.pdparams")
        else:
            layer, config = build_with_weights(model_name, config, source.weights, False)
            weights = source.weights
        layer.eval()
    export_dir = None
    for engine in engines:
        for size in sizes:
            if engine == "dygraph":
                if weights is None:
                    raise ConfigError(f"{model_dir} is an exported directory; the dygraph engine needs weights (.pdparams)")
                sources[(engine, size)] = str(weights)
                continue
            if layer is None:  # an exported directory was given: every engine runs it as it is
                sources[(engine, size)] = str(model_dir)
                if engine in ("onnxruntime", "openvino") and card.export.onnx:
                    export_onnx(model_name, registry.config(model_name), source.deploy)  # the engines' conversion
                continue
            if engine in ("onnxruntime", "openvino") and card.export.onnx and card.export.onnx_static_hw:
                w, h = size  # images go into the network at their own size: one conversion for that size
                target = work / f"export_{w}x{h}"
                if not target.exists():
                    export_model(model_name, target, config=config, layer=layer, input_shape=[1, 3, h, w])
                sources[(engine, size)] = str(target)
            else:
                if export_dir is None:
                    export_dir = export_model(model_name, work / "export", config=config, layer=layer)
                sources[(engine, size)] = str(export_dir)
            if engine in ("onnxruntime", "openvino") and card.export.onnx:
                export_onnx(model_name, config, resolve_model_dir(sources[(engine, size)]).deploy)  # now, not in load_s
    return sources


def int8_export(model_name: str, export_dir: str, work: Path, size: tuple[int, int], threads: int) -> str:
    """A copy of ``export_dir`` carrying an INT8 model quantized by NNCF on drawn images of ``size`` (once)."""
    import shutil

    import cv2

    from .create import create_model
    from .int8 import CARRIED, network_input, quantize_onnx
    from .precision import cpu_flags, overflow_fix_for

    out = work / "export_int8"
    out.mkdir(parents=True, exist_ok=True)
    for path in Path(export_dir).iterdir():
        if path.is_file() and path.name.startswith("inference."):
            shutil.copy2(path, out / path.name)
    fp32 = create_model(model_name, model_dir=export_dir, engine="openvino", device="cpu",
                        engine_options={"precision": "fp32", "cpu_threads": threads})
    if getattr(fp32.engine, "per_size", True):
        raise ConfigError(f"{model_name} converts to ONNX per input size, which INT8 does not quantize")
    files = write_images(work / "int8_calibration", size, INT8_CALIBRATION, seed=3)
    fix, why = overflow_fix_for(cpu_flags())
    print(f"  quantizing {model_name} to INT8 on {len(files)} drawn images (overflow fix {fix}) ...", file=sys.stderr)
    samples = [network_input(fp32, cv2.imread(str(p))) for p in files]
    quantize_onnx(fp32.engine.model_for(None), samples, len(samples), fix, out / CARRIED,
                  {"model": model_name, "outputs": fp32.engine.outputs, "overflow_fix_why": why})
    return str(out)


def run(args) -> int:
    """``segzoo benchmark``: measure, print the table, exit 1 if a measurement failed."""

    card = get_registry().card(args.model)
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = [e for e in engines if e.split(":")[0] not in ENGINES]
    if unknown or not engines:
        raise ConfigError(f"--engines {args.engines!r}: unknown {unknown}; choose from {', '.join(sorted(ENGINES))}")
    sizes = [parse_wh(s) for s in (args.size or DEFAULT_SIZES)]
    if args.repeat < 1 or args.warmup < 0 or args.images < 0:
        raise ConfigError("--repeat must be >= 1, --warmup and --images >= 0")
    threads = args.threads or default_cpu_threads()
    rows = []
    old_home = os.environ.get("SEGZOO_HOME")
    with tempfile.TemporaryDirectory(prefix="segzoo-bench-") as tmp:
        work = Path(tmp)
        os.environ["SEGZOO_HOME"] = str(work / "cache")  # conversions stay out of the user's cache
        try:
            rows = _measure_all(card, engines, sizes, work, args, threads)
        finally:
            if old_home is None:
                os.environ.pop("SEGZOO_HOME", None)
            else:
                os.environ["SEGZOO_HOME"] = old_home
    _print_table(card, rows, args, threads)
    if args.json_out:
        write_json(args.json_out, {"model": card.name, "threads": threads, "rows": rows})
    return 1 if any("error" in r for r in rows) else 0


def _measure_all(card, engines, sizes, work: Path, args, threads: int) -> list:
    rows = []
    print(f"preparing {card.name} ({', '.join(engines)}) ...", file=sys.stderr)
    sources = prepare_sources(card.name, sorted({e.split(":")[0] for e in engines}), sizes, work, args.model_dir)
    for size in sizes:
        image = write_images(work / f"one_{size[0]}x{size[1]}", size, 1, seed=1)[0]
        images_dir = None
        if args.images:
            images_dir = str(work / f"dir_{size[0]}x{size[1]}")
            write_images(Path(images_dir), size, args.images, seed=2)
        reference = None
        for engine in engines:
            name, _, precision = engine.partition(":")
            mask = work / f"mask_{name}_{precision or 'fp32'}_{size[0]}x{size[1]}.npy"
            source = sources[(name, size)]
            if precision == "int8":  # an exported folder that carries its INT8 model, quantized here once
                source = sources.setdefault(("int8", None), int8_export(card.name, source, work, sizes[0], threads))
            spec = {"kind": "segzoo", "model": card.name, "engine": name, "precision": precision or None,
                    "model_dir": source, "image": str(image), "images_dir": images_dir,
                    "repeat": args.repeat, "warmup": args.warmup, "threads": threads, "mask_out": str(mask)}
            print(f"  {engine} {size[0]}x{size[1]} ...", file=sys.stderr)
            res = run_worker(spec)
            if mask.is_file():
                import numpy as np

                got = np.load(mask)
                reference = got if reference is None else reference
                res["agree"] = float((got == reference).mean()) if got.shape == reference.shape else 0.0
            rows.append({"engine": engine, "size": f"{size[0]}x{size[1]}", **res})
    return rows


def _print_table(card, rows: list, args, threads: int) -> None:
    from prettytable import PrettyTable

    table = PrettyTable(["engine", "size", "latency ms", "img/s pipelined", "img/s serial", "peak RSS MB", "load s",
                         "agree %"])
    for r in rows:
        if "error" in r:
            table.add_row([r["engine"], r["size"], r["error"][:60], "-", "-", "-", "-", "-"])
            continue
        used = r["engine"] if r.get("engine_used") == _asked(r["engine"]) else f"{r['engine']} ({r.get('engine_used')})"
        agree = f"{100 * r['agree']:.2f}" if r.get("agree") is not None else "-"
        table.add_row([used, r["size"], f"{1000 * r['latency_s']:.1f}", _f(r.get("throughput_ips")),
                       _f(r.get("throughput_serial_ips")), f"{r['peak_rss_mb']:.0f}", f"{r['load_s']:.1f}", agree])
    table.align = "r"
    print(table)
    weights = f"weights from {args.model_dir}" if args.model_dir else "random seeded weights"
    print(f"{card.name}, {threads} threads, {weights}; latency = median of {args.repeat} after {args.warmup} "
          "warm-up (read + pre-process + infer + post-process); agree % = pixels equal to the first engine's mask; "
          "(in brackets) what ran where it is not what was asked")
    if any(r["engine"].endswith(":int8") for r in rows):
        print(f"openvino:int8 = the model quantized here by NNCF, calibrated on {INT8_CALIBRATION} drawn-shape images "
              "of the first size (its speed; its accuracy on your data: segzoo quantize)")


def _f(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def _worker_main(path: str) -> int:
    spec = json.loads(Path(path).read_text())
    kind = spec.get("kind", "segzoo")
    if kind != "segzoo":
        raise SystemExit(f"unknown worker kind {kind!r}")
    _emit(segzoo_worker(spec))
    return 0


if __name__ == "__main__":  # pragma: no cover - the measurement child
    parser = argparse.ArgumentParser(prog="python -m segzoo.inference.bench")
    parser.add_argument("--worker", required=True, help="JSON spec of one measurement")
    sys.exit(_worker_main(parser.parse_args().worker))
