"""``engine="auto"``: the fastest engine measured for this model on this machine.

On first use for a model, a small probe builds every engine that can run the
model source (``dygraph`` where the source has a network, ``paddle``,
``onnxruntime`` where the card allows ONNX), runs each ``warmup`` times and
then ``repeat`` timed times on one random batch at the card's ``input_size``
(rounded up to its ``size_divisor``), and keeps the engine with the lowest median.
The engines are built as they would be anyway, so exports and conversions
land in the cache and the winner is returned without building it twice.

The verdict is stored in ``cache_dir() / "auto" / "probes.json"`` (written
atomically under a file lock), keyed by the model name, the machine (CPU
model, core count, GPU name when paddle or onnxruntime sees one), the device
kind, the thread count and the versions of segzoo, paddle and onnxruntime,
so a new machine, a driver or version upgrade or another thread count probes
again, and ``engine_options={"reprobe": True}`` forces it. The probe measures
the engine call alone: reading, resizing and normalising are the same code
for every engine. (``benchmarks/run.py`` measures the whole pipeline; it does
not write this table.)

An engine that fails to build or run during the probe is skipped with a log
line (the error is kept in the table); if every candidate fails the last
error is raised.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import statistics
import time
import warnings
from typing import Any, Optional

import numpy as np

from ..device import parse_device
from ..errors import ConfigError, SegzooError
from ..fileio import write_json
from ..paths import cache_dir
from ..registry import get_registry
from .engine_table import ENGINES, Engine, EngineFallbackWarning, default_cpu_threads
from .export_cache import _lock, package_versions
from .sizes import ceil_to

log = logging.getLogger("segzoo")

#: engines the probe compares, fastest-first tie order
CANDIDATES = ("openvino", "onnxruntime", "paddle", "dygraph")
PROBE_WARMUP = 1
PROBE_REPEAT = 3


def probes_file():
    """Where probe verdicts are kept: ``cache_dir() / "auto" / "probes.json"``."""
    return cache_dir() / "auto" / "probes.json"


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or ``platform.processor()``."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_name() -> Optional[str]:
    """The first GPU's name when paddle (CUDA build) sees one, else ``None``."""
    try:
        import paddle

        if paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0:
            return str(paddle.device.cuda.get_device_name(0))
    except Exception:  # pragma: no cover - no GPU stack
        return None
    return None


def machine_key(device_kind: str, threads: int) -> dict:
    """What the probe's verdict depends on besides the model."""
    versions = package_versions("paddlepaddle", "paddlepaddle-gpu", "onnxruntime", "onnxruntime-gpu", "openvino", "paddle2onnx")
    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "gpu": gpu_name() if device_kind == "gpu" else None,
        "device": device_kind,
        "threads": threads,
        "versions": versions,
    }


def _entry_key(model_name: str, machine: dict) -> str:
    text = json.dumps({"model": model_name, **machine}, sort_keys=True)
    return f"{model_name}|{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def read_probes() -> dict:
    """The stored verdicts (``{}`` when there are none or the file is unreadable)."""
    path = probes_file()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _store(key: str, entry: dict) -> None:
    path = probes_file()
    with _lock(path):
        data = read_probes()
        data[key] = entry
        write_json(path, data)


def time_engine(engine: Engine, batch: np.ndarray, warmup: int = PROBE_WARMUP, repeat: int = PROBE_REPEAT) -> float:
    """Median seconds of ``engine.run(batch)`` after ``warmup`` untimed runs."""
    for _ in range(max(0, warmup)):
        engine.run(batch)
    times = []
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        engine.run(batch)
        times.append(time.perf_counter() - t0)
    return float(statistics.median(times))


def _probe_batch(card, engine: Engine) -> np.ndarray:
    if engine.input_hw is not None:
        h, w = engine.input_hw
    else:
        w, h = card.input_size
        h, w = ceil_to(h, card.size_divisor), ceil_to(w, card.size_divisor)
    return np.random.default_rng(0).standard_normal((1, 3, h, w)).astype(np.float32)


def make_auto_engine(model_name: str, config: Any, source: Any, device: Optional[str], options: dict) -> Engine:
    """``create_model(..., engine="auto")``: the stored verdict's engine, or probe and keep the fastest."""
    options = dict(options)
    layer = options.pop("layer", None)
    reprobe = bool(options.pop("reprobe", False))
    candidates = tuple(options.pop("candidates", None) or CANDIDATES)
    unknown = [c for c in candidates if c not in ENGINES or c == "auto"]
    if unknown:
        raise ConfigError(f"engine_options candidates {unknown}: choose among {', '.join(CANDIDATES)}")
    card = get_registry().card(model_name)
    fitting = [c for c in candidates if source.kind in ENGINES[c].sources]
    if not card.export.onnx:
        fitting = [c for c in fitting if c not in ("onnxruntime", "openvino")]
    if parse_device(device)[0] != "cpu":  # segzoo runs OpenVINO on the CPU only
        fitting = [c for c in fitting if c != "openvino"]
    if not fitting:
        raise ConfigError(f"none of the engines {list(candidates)} can run this model source ({source.kind})")
    threads = int(options.get("cpu_threads") or default_cpu_threads())
    kind = parse_device(device)[0]
    machine = machine_key(kind, threads)
    key = _entry_key(model_name, machine)

    def build(name: str) -> Engine:
        spec = ENGINES[name]
        opts = {k: v for k, v in options.items() if k in spec.options}
        if layer is not None:
            opts["layer"] = layer
        return spec.factory(model_name, config, source, device, opts)

    stored = None if reprobe else read_probes().get(key)
    if stored and stored.get("engine") in fitting:
        log.info("%s: engine auto -> %s (probed %s)", model_name, stored["engine"], stored.get("measured_at", "?"))
        return build(stored["engine"])

    times: dict[str, Any] = {}
    best: Optional[tuple[float, Engine]] = None
    last_error: Optional[Exception] = None
    for name in fitting:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", EngineFallbackWarning)
                engine = build(name)
            if engine.name != name:  # a fallback (e.g. a model ONNX cannot take): not a candidate of its own
                times[name] = f"falls back to {engine.name}"
                continue
            seconds = time_engine(engine, _probe_batch(card, engine))
        except (SegzooError, RuntimeError, ValueError, MemoryError) as exc:
            last_error = exc
            times[name] = f"failed: {type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
            log.warning("%s: engine %s failed in the auto probe (%s); skipping it", model_name, name, times[name])
            continue
        times[name] = round(seconds, 5)
        if best is None or seconds < best[0]:
            best = (seconds, engine)
        else:
            del engine
    if best is None:
        assert last_error is not None
        raise last_error
    winner = best[1]
    _store(key, {
        "engine": winner.name,
        "seconds": times,
        "input_size": list(card.input_size),
        "machine": machine,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    })
    log.info("%s: engine auto -> %s (median s per batch: %s)", model_name, winner.name, times)
    return winner
