"""``segzoo quantize``: post-training INT8 of a model with NNCF, calibrated on the user's images and measured on their val split.

1. The model (a name, an exported directory or weights) is opened on the
   openvino engine in fp32, exactly as ``predict`` opens it; its converted
   ONNX file is what NNCF quantizes (``nncf.quantize``), so the INT8 model is
   the same function as the fp32 one.
2. Calibration inputs are the network inputs of ``--subset`` images (default
   300, a seeded sample) of the dataset's train split, or of a folder of
   images (``--images DIR``): read, resized and normalised by the predictor
   itself (nothing is run in fp32 for them).
3. The INT8 model lands in the exports cache, keyed by the weights, the
   calibration set and the settings (:mod:`segzoo.inference.int8`); a second
   run with the same inputs reuses it, and its report when the val split is
   the same.
4. The report runs fp32 and INT8 over the dataset's val split: both mIoUs,
   the drop, the share of pixels whose label is the same, and the speed-up
   measured here. An INT8 model whose drop exceeds ``--max-drop`` (points of
   mIoU, default 1.0) is not kept, unless ``--force``.
5. ``--precision int8`` (``engine_options={"precision": "int8"}``) then runs it
   in predict, evaluate, serve and benchmark; ``--output DIR`` also writes an
   exported folder that carries it (``DIR/int8/``).

8-bit saturation on CPUs without VNNI: NNCF's overflow fix is chosen from the
CPU's flags (:func:`segzoo.inference.precision.overflow_fix_for`) unless
``--overflow-fix`` names one; the report says which.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shutil
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import ConfigError, DatasetError, InputError
from ..fileio import check_output_dir, write_json
from ..inference.int8 import (MODEL_XML, carry, entry_dir, import_nncf, keep_int8, network_input, quantize_onnx,
                              read_meta, remove_entry, weights_identity)
from ..inference.precision import cpu_flags, cpu_name, overflow_fix_for

log = logging.getLogger("segzoo")

OVERFLOW_FIXES = ("auto", "disable", "first_layer_only", "enable")
#: val images timed for the speed-up (after the evaluation pass compiled their shapes)
TIMED_IMAGES = 20


# -- the calibration and validation images -------------------------------------------------------------
def calibration_files(dataset: Optional[str], images: Optional[str], subset: int) -> list[Path]:
    """The image files to calibrate on: a seeded sample of ``subset`` from the train split or the folder."""
    if images is not None:
        from ..inference.inputs import walk_directory
        from ..datasets.listfile import IMAGE_EXTENSIONS

        folder = Path(images).expanduser()
        if not folder.is_dir():
            raise InputError(f"--images {folder}: not a directory; give a folder of calibration images")
        files = sorted(p for p in walk_directory(folder) if p.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise InputError(f"--images {folder}: the folder holds no images ({', '.join(IMAGE_EXTENSIONS)}); "
                             "give a folder of calibration images")
    else:
        from ..datasets import SegDataset

        train = SegDataset(dataset, "train")
        if len(train) == 0:
            raise DatasetError(f"{train.list_file}: the train split is empty; calibration needs its images "
                               "(or give --images DIR)")
        files = [s.image for s in train.samples]
    if len(files) > subset:
        pick = np.random.default_rng(0).choice(len(files), subset, replace=False)
        files = [files[i] for i in sorted(pick)]
    return files


def files_digest(files: list[Path]) -> str:
    """SHA-256 of the calibration files' contents, in order."""
    h = hashlib.sha256()
    for path in files:
        h.update(Path(path).read_bytes())
        h.update(b"|")
    return h.hexdigest()


def read_val(dataset: str, num_classes: int, ignore_index: int) -> list[tuple]:
    """``(image, label)`` of the val split, every label checked against ``num_classes`` first."""
    from ..datasets import SegDataset

    val = SegDataset(dataset, "val")
    if len(val) == 0:
        raise DatasetError(f"{val.list_file}: the val split is empty; the INT8 model is measured on it")
    pairs = []
    for i in range(len(val)):
        image, label = val[i]
        bad = (label != ignore_index) & (label >= num_classes)
        if bad.any():
            raise DatasetError(
                f"{val.samples[i].label}: label value {int(label[bad].max())} >= num_classes ({num_classes}); "
                "fix the mask (run `segzoo check-dataset`) or give the model's --num-classes"
            )
        pairs.append((image, label))
    return pairs


# -- the report ------------------------------------------------------------------------------------------
def compare(fp32, int8, pairs: list, num_classes: int, ignore_index: int) -> dict:
    """mIoU of both predictors on ``pairs``, their pixel agreement and the speed-up of INT8 (timed here)."""
    from .metrics import ConfusionMatrix, compute_metrics

    cms = {"fp32": ConfusionMatrix(num_classes, ignore_index), "int8": ConfusionMatrix(num_classes, ignore_index)}
    same = total = 0
    for image, label in pairs:
        a = fp32.predict_arrays([image])[0]
        b = int8.predict_arrays([image])[0]
        cms["fp32"].update(a, label)
        cms["int8"].update(b, label)
        same += int((a == b).sum())
        total += a.size
    seconds = {}
    timed = [image for image, _ in pairs[:TIMED_IMAGES]]
    for name, predictor in (("fp32", fp32), ("int8", int8)):
        t0 = time.perf_counter()
        for image in timed:
            predictor.predict_arrays([image])
        seconds[name] = (time.perf_counter() - t0) / len(timed)
    miou = {k: 100.0 * float(np.nan_to_num(compute_metrics(cm.matrix)["mIoU"])) for k, cm in cms.items()}
    return {
        "miou_fp32": miou["fp32"], "miou_int8": miou["int8"], "drop": miou["fp32"] - miou["int8"],
        "agreement": same / float(total), "ms_fp32": 1000 * seconds["fp32"], "ms_int8": 1000 * seconds["int8"],
        "speedup": seconds["fp32"] / seconds["int8"] if seconds["int8"] > 0 else float("nan"),
        "val_images": len(pairs), "timed_images": len(timed),
    }


def quantize(
    model_name: Optional[str],
    model_dir: Optional[str] = None,
    *,
    dataset: Optional[str] = None,
    images: Optional[str] = None,
    subset: int = 300,
    max_drop: float = 1.0,
    force: bool = False,
    output: Optional[str] = None,
    overflow_fix: str = "auto",
    cpu_threads: Optional[int] = None,
    num_classes: Optional[int] = None,
) -> dict:
    """Quantize a model to INT8, measure it, keep it if it passes; return the report (see the module docstring)."""
    from ..inference.create import create_model
    from ..inference.modeldir import resolve_model_dir
    from ..inference.openvino import OpenVinoEngine
    from ..inference.predictor import Predictor

    if dataset is None and images is None:
        raise ConfigError("give calibration images: --dataset DIR (its train split) or --images DIR")
    if subset < 1:
        raise ConfigError(f"--subset {subset}: must be >= 1")
    if max_drop < 0:
        raise ConfigError(f"--max-drop {max_drop}: must be >= 0 (points of mIoU)")
    if overflow_fix not in OVERFLOW_FIXES:
        raise ConfigError(f"--overflow-fix {overflow_fix!r}: choose one of {', '.join(OVERFLOW_FIXES)}")
    if dataset is None and not force:
        raise ConfigError("without --dataset there are no labels to measure the mIoU drop on; give --dataset DIR "
                          "(its val split), or --force to keep the INT8 model unmeasured")
    if output is not None:
        check_output_dir(output, "--output")
    import_nncf()  # before any work: without NNCF nothing can be quantized
    files = calibration_files(dataset, images, subset)
    options: dict = {"precision": "fp32"}
    if cpu_threads:
        options["cpu_threads"] = cpu_threads
    if model_dir is not None and resolve_model_dir(model_dir).kind != "inference":
        options["output_op"] = "none"  # scores, not an argmax: the INT8 model then serves predict_scores too
    overrides = {"num_classes": num_classes} if num_classes else {}
    fp32 = create_model(model_name, model_dir=model_dir, engine="openvino", device="cpu", engine_options=options,
                        **overrides)
    if not isinstance(fp32.engine, OpenVinoEngine) or fp32.engine.per_size:
        raise ConfigError(f"{fp32.model_name} does not run on the openvino engine with one converted model, "
                          "which INT8 quantizes; it cannot be quantized")
    cfg = fp32.config
    pairs = read_val(dataset, cfg.num_classes, cfg.ignore_index) if dataset is not None else []

    if overflow_fix == "auto":
        fix, why = overflow_fix_for(cpu_flags())
    else:
        fix, why = overflow_fix, "asked for with --overflow-fix"
    identity = weights_identity(fp32.model_name, fp32.source, fp32.layer)
    calibration = files_digest(files)
    entry = entry_dir(fp32.model_name, identity, calibration, fix, len(files))
    meta = read_meta(entry)
    reused = meta is not None
    if not reused:
        from ..datasets.segdataset import read_image

        print(f"quantizing {fp32.model_name} to INT8 on {len(files)} calibration images "
              f"(overflow fix: {fix}; {why}) ...", file=sys.stderr, flush=True)
        samples = (network_input(fp32, read_image(path)) for path in files)
        t0 = time.perf_counter()
        quantize_onnx(fp32.engine.model_for(None), samples, len(files), fix, entry, {
            "model": fp32.model_name, "weights": identity, "calibration": calibration,
            "outputs": fp32.engine.outputs, "cpu": cpu_name(), "overflow_fix_why": why,
        })
        log.info("%s: quantized in %.1f s into %s", fp32.model_name, time.perf_counter() - t0, entry)
        meta = read_meta(entry)
    report: dict = {"model": fp32.model_name, "entry": str(entry), "reused": reused, "overflow_fix": meta["overflow_fix"],
                    "overflow_fix_why": meta.get("overflow_fix_why", ""), "calibration_images": meta["calibration_images"],
                    "cpu": cpu_name()}
    val_key = _pairs_digest(pairs)
    earlier = _read_report(entry) if reused else None
    if pairs and earlier is not None and earlier.get("val_key") == val_key:  # measured on this very val split
        report.update({k: v for k, v in earlier.items() if k not in report})
    elif pairs:
        engine = OpenVinoEngine(lambda hw: entry / MODEL_XML, outputs=meta.get("outputs", "scores"), device="cpu",
                                cpu_threads=cpu_threads, precision="int8")
        int8 = Predictor(fp32.model_name, cfg, engine, fp32.source, layer=fp32.layer)
        report.update(compare(fp32, int8, pairs, cfg.num_classes, cfg.ignore_index), val_key=val_key)
    if pairs and report["drop"] > max_drop and not force:
        if not reused:
            remove_entry(entry)
        raise ConfigError(
            f"{fp32.model_name}: INT8 mIoU {report['miou_int8']:.2f} vs fp32 {report['miou_fp32']:.2f} is a drop of "
            f"{report['drop']:.2f} points, above --max-drop {max_drop:g}; the INT8 model was not kept (more or "
            "other calibration images may help; --force keeps it)"
        )
    keep_int8(identity, entry)
    write_json(entry / "report.json", report)
    if output is not None:
        report["output"] = str(_write_output(fp32, entry, Path(output).expanduser()))
    return report


def _pairs_digest(pairs: list) -> str:
    h = hashlib.sha256()
    for image, label in pairs:
        h.update(np.ascontiguousarray(image).tobytes())
        h.update(np.ascontiguousarray(label).tobytes())
    return h.hexdigest()


def _read_report(entry: Path) -> Optional[dict]:
    try:
        return json.loads((entry / "report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _write_output(fp32, entry: Path, out: Path) -> Path:
    """An exported folder at ``out`` that carries the INT8 model of ``entry`` in ``out/int8``."""
    if fp32.source.kind == "inference":
        out.mkdir(parents=True, exist_ok=True)
        deploy = fp32.source.deploy
        for path in sorted(deploy.model_file.parent.iterdir()):
            if path.is_file() and path.name.startswith("inference."):
                shutil.copy2(path, out / path.name)
    else:
        fp32.export(out)
    return carry(entry, out)


# -- the command -----------------------------------------------------------------------------------------
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Quantize a model to INT8 with NNCF (post-training, calibrated on your images), measure fp32 and INT8 "
        "on the dataset's val split (mIoU, drop, pixel agreement, speed-up here) and keep it in segzoo's cache "
        "if the drop is at most --max-drop; then run it with --precision int8."
    )
    p.add_argument("--model", help="model name (segzoo list-models); optional with an exported --model-dir")
    p.add_argument("--model-dir", help="exported inference directory, or a .pdparams file / directory holding one")
    p.add_argument("--num-classes", type=int, help="class count of the weights (read from them when left out)")
    p.add_argument("--dataset", help="SegDataset folder: calibration on its train split, the report on its val split")
    p.add_argument("--images", help="folder of calibration images (instead of the dataset's train split)")
    p.add_argument("--subset", type=int, default=300, help="calibration images (a seeded sample; default 300)")
    p.add_argument("--max-drop", type=float, default=1.0, help="largest mIoU drop kept, in points (default 1.0)")
    p.add_argument("--force", action="store_true", help="keep the INT8 model whatever its drop")
    p.add_argument("--output", help="also write an exported folder carrying the INT8 model (in DIR/int8)")
    p.add_argument("--overflow-fix", default="auto", choices=OVERFLOW_FIXES,
                   help="NNCF's fix of 8-bit saturation; auto: 'disable' on CPUs with VNNI/AMX, else "
                   "'first_layer_only'")
    p.add_argument("--cpu-threads", type=int, help="CPU threads of OpenVINO")


def run(args) -> int:
    report = quantize(args.model, args.model_dir, dataset=args.dataset, images=args.images, subset=args.subset,
                      max_drop=args.max_drop, force=args.force, output=args.output, overflow_fix=args.overflow_fix,
                      cpu_threads=args.cpu_threads, num_classes=args.num_classes)
    print(format_report(report))
    return 0


def format_report(r: dict) -> str:
    """The report as a few lines of text."""
    lines = [f"{r['model']}: INT8 model {'reused from' if r['reused'] else 'kept in'} {r['entry']}",
             f"  calibration: {r['calibration_images']} images; overflow fix: {r['overflow_fix']} "
             f"({r['overflow_fix_why']})"]
    if "miou_fp32" in r:
        lines += [
            f"  mIoU on val ({r['val_images']} images): fp32 {r['miou_fp32']:.2f}, INT8 {r['miou_int8']:.2f}, "
            f"drop {r['drop']:.2f} points",
            f"  pixels with the same label: {100 * r['agreement']:.2f} %",
            f"  speed here ({r['cpu']}, {r['timed_images']} images): fp32 {r['ms_fp32']:.1f} ms, INT8 "
            f"{r['ms_int8']:.1f} ms per image, {r['speedup']:.2f}x",
        ]
        if r["speedup"] < 1:
            lines.append("  INT8 is not faster than fp32 here at these image sizes (small images, CPUs with bf16, and "
                         "transformers on CPUs without VNNI gain least): keep fp32, or compare with segzoo benchmark "
                         "--engines openvino,openvino:bf16,openvino:int8")
    else:
        lines.append("  not measured: no --dataset (kept with --force)")
    if r.get("output"):
        lines.append(f"  exported folder carrying it: {r['output']}")
    lines.append("  run it with --precision int8 (engine_options={'precision': 'int8'})")
    return "\n".join(lines)
