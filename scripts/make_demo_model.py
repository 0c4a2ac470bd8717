#!/usr/bin/env python
"""Build segzoo's built-in demo model: SeaFormer_tiny trained on drawn shapes by segzoo's own trainer.

Writes into ``core/assets/demo/`` (the package's ``segzoo/assets/demo``):

* ``demo.pdparams`` -- the best weights, stored as float16 (``segzoo.weights.load_weights``
  casts them to the model's dtype);
* ``demo.onnx`` + ``demo.onnx.json`` -- the ONNX conversion of those weights (class scores, any
  H×W; float16 storage), which the exports cache runs in place: the first ``segzoo predict`` on a
  fresh machine converts nothing (``segzoo.inference.netcache``);
* ``demo.onnx.bf16.json`` -- whether bf16 agrees with fp32 for demo.onnx (measured where the CPU has bf16),
  so the openvino engine does not measure it on a fresh machine (``segzoo.inference.precision``);
* ``demo.png`` -- a drawn-shapes picture that is not in the training set;
* ``demo.yml`` -- ``model_name``, ``num_classes``, ``weights``, ``image``, ``class_names``,
  ``miou`` (in %, measured with the float16 file on the validation split), and how it was
  made (command, seed, iterations, dataset, date, versions).

Re-runnable by anyone: everything is seeded, and on the same versions of Paddle and segzoo
the CPU run gives the same weights. Takes a few minutes on 2 CPU cores::

    python scripts/make_demo_model.py                  # the shipped settings
    python scripts/make_demo_model.py --iters 200 --output /tmp/demo   # a quick try
    python scripts/make_demo_model.py --onnx-only      # convert the shipped weights again (after
                                                       # a change to the network or to paddle2onnx)
"""

from __future__ import annotations

import argparse
import datetime
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = REPO / "core" / "assets" / "demo"

MODEL = "SeaFormer_tiny"
DATA_SEED = 20240601  # training / validation shapes
IMAGE_SEED = 777  # demo.png: a seed make_shapes_dataset never uses for this dataset's samples
TRAIN_SEED = 0


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="demo directory to write")
    p.add_argument("--iters", type=int, default=5000, help="training iterations")
    p.add_argument("--batch-size", type=int, default=4, help="images per iteration per process")
    p.add_argument("--processes", type=int, default=2,
                   help="data-parallel CPU processes (2 on 2 cores is 1.6x faster than 1)")
    p.add_argument("--size", type=int, default=128, help="side of the drawn-shapes images")
    p.add_argument("--num-train", type=int, default=2000)
    p.add_argument("--num-val", type=int, default=50)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--workdir", type=Path, help="keep the dataset and training output here (default: a temp dir)")
    p.add_argument("--onnx-only", action="store_true",
                   help="only write demo.onnx (+ .json) again, from the demo.pdparams already in --output")
    return p.parse_args(argv)


def write_demo_onnx(demo_dir: Path) -> Path:
    """``demo.onnx`` + ``demo.onnx.json``: the demo weights converted, built as ``segzoo predict`` builds them."""
    import yaml

    from segzoo.inference import create_model
    from segzoo.inference.netcache import write_shipped_onnx

    info = yaml.safe_load((demo_dir / "demo.yml").read_text(encoding="utf-8"))
    # the network load_demo() builds: the same config and weights, so the same identity
    predictor = create_model(info["model_name"], model_dir=demo_dir / info["weights"], device="cpu",
                             num_classes=int(info["num_classes"]), engine="dygraph")
    out = write_shipped_onnx(info["model_name"], predictor.config, predictor.layer, demo_dir / "demo.onnx")
    print(f"wrote {out} ({out.stat().st_size / 2**20:.2f} MB)")
    write_bf16_verdict(info, demo_dir)
    return out


def write_bf16_verdict(info: dict, demo_dir: Path) -> None:
    """``demo.onnx.bf16.json``: whether bf16 agrees with fp32 for demo.onnx, measured as the openvino engine
    measures it once per conversion (segzoo.inference.precision.default_precision), so a fresh machine measures
    nothing. Kept when it was measured on this very file (it records the file's digest).

    Needs a CPU with native bf16; elsewhere an old verdict stays, which the engine ignores once demo.onnx changed.
    """
    import os
    import shutil

    import numpy as np

    import segzoo
    from segzoo.inference.engine_table import default_cpu_threads
    from segzoo.inference.precision import cpu_capabilities, default_precision, shipped_verdict, verdict_dir

    onnx_file = demo_dir / "demo.onnx"
    if "BF16" not in cpu_capabilities():
        print(f"{shipped_verdict(onnx_file).name} not measured: this CPU has no native bf16")
        return
    registry = segzoo.get_registry()
    name = info["model_name"]
    config = registry.config(name, num_classes=int(info["num_classes"]))

    def preprocess(image):
        return np.ascontiguousarray(registry.preprocess(name, config, image), dtype=np.float32)

    saved = {k: os.environ.pop(k, None) for k in ("SEGZOO_HOME", "SEGZOO_PRECISION")}
    with tempfile.TemporaryDirectory(prefix="segzoo-demo-verdict-") as home:
        os.environ["SEGZOO_HOME"] = home
        try:
            _, why = default_precision(name, onnx_file, preprocess, registry.card(name).size_divisor,
                                       default_cpu_threads())
            measured = verdict_dir() / (onnx_file.name + ".json")
            if measured.is_file():
                shutil.copyfile(measured, shipped_verdict(onnx_file))
                print(f"wrote {shipped_verdict(onnx_file)}: {why}")
            else:
                print(f"{shipped_verdict(onnx_file)} is up to date: {why}")
        finally:
            os.environ.pop("SEGZOO_HOME", None)
            os.environ.update({k: v for k, v in saved.items() if v is not None})


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.onnx_only:
        write_demo_onnx(args.output)
        return 0
    import cv2
    import numpy as np
    import paddle
    import yaml

    import segzoo
    from segzoo.datasets.shapes import CLASS_NAMES, make_shapes_dataset, shapes_image
    from segzoo.fileio import atomic_write, write_bytes
    from segzoo.training import evaluate, train
    from segzoo.weights import read_state_dict, save_weights

    work_ctx = tempfile.TemporaryDirectory(prefix="segzoo-demo-") if args.workdir is None else None
    work = Path(work_ctx.name) if work_ctx else args.workdir
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    data = make_shapes_dataset(work / "shapes", num_train=args.num_train, num_val=args.num_val,
                               size=(args.size, args.size), seed=DATA_SEED)
    config = {
        "Global": {"model": MODEL, "mode": "train", "dataset_dir": str(data), "device": "cpu",
                   "output": str(work / "output")},
        "Train": {
            "num_classes": len(CLASS_NAMES),
            "epochs_iters": args.iters,
            "batch_size": args.batch_size,
            "num_processes": args.processes,
            "learning_rate": args.lr,
            "warmup_steps": min(100, args.iters // 10),
            "crop_size": [args.size, args.size],
            "eval_interval": max(args.iters // 6, 1),
            "log_interval": 50,
            "keep_checkpoints": 1,
            "seed": TRAIN_SEED,
            "pretrain_weight_path": None,  # from scratch: the demo must build without the network
            "export": False,
            "augment": {"min_scale": 0.75, "max_scale": 1.5},
        },
    }
    result = train(config, progress=sys.stderr.isatty())
    best = work / "output" / result["models"]["best"]["pdparams"]
    train_seconds = time.perf_counter() - t0

    # the shipped file: float16, a few MB
    args.output.mkdir(parents=True, exist_ok=True)
    state = read_state_dict(best)
    half = {k: (v.astype("float16") if v.dtype == paddle.float32 else v) for k, v in state.items()}
    weights = args.output / "demo.pdparams"
    save_weights(half, weights)

    # measured with the float16 file, as users get it
    metrics = evaluate(MODEL, data, weights, num_classes=len(CLASS_NAMES), device="cpu", progress=False,
                       verbose=False)["metrics"]
    miou = round(100 * metrics["mIoU"], 2)

    image, _ = shapes_image(IMAGE_SEED)
    ok, png = cv2.imencode(".png", image)
    assert ok
    write_bytes(args.output / "demo.png", png.tobytes())

    info = {
        "model_name": MODEL,
        "num_classes": len(CLASS_NAMES),
        "weights": weights.name,
        "image": "demo.png",
        "class_names": list(CLASS_NAMES),
        "miou": miou,
        "miou_on": f"{args.num_val} drawn-shapes validation images ({args.size}x{args.size}, whole image), float16 weights",
        "made_by": {
            "command": ("python scripts/make_demo_model.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))).strip(),
            "trainer": "segzoo.training.train (segzoo's own loop)",
            "seed": TRAIN_SEED,
            "dataset": {"generator": "segzoo.datasets.shapes.make_shapes_dataset", "seed": DATA_SEED,
                        "num_train": args.num_train, "num_val": args.num_val, "size": [args.size, args.size]},
            "image_seed": IMAGE_SEED,
            "iterations": args.iters,
            "batch_size": args.batch_size,
            "num_processes": args.processes,
            "learning_rate": args.lr,
            "best_iter": result["best_iter"],
            "train_minutes": round(train_seconds / 60, 1),
            "date": datetime.date.today().isoformat(),
            "versions": {"segzoo": segzoo.__version__, "paddlepaddle": paddle.__version__,
                         "numpy": np.__version__, "opencv": cv2.__version__, "python": platform.python_version()},
            "machine": f"{platform.machine()}, CPU only",
        },
    }
    with atomic_write(args.output / "demo.yml") as fh:
        fh.write("# The built-in demo model (segzoo predict with no arguments). Made by scripts/make_demo_model.py;\n")
        fh.write("# miou is in %.\n")
        yaml.safe_dump(info, fh, sort_keys=False, allow_unicode=True)
    write_demo_onnx(args.output)
    size_mb = weights.stat().st_size / 2**20
    print(f"wrote {args.output}: demo.pdparams ({size_mb:.2f} MB, float16), demo.png, demo.yml; "
          f"val mIoU {miou} % after {args.iters} iterations ({train_seconds / 60:.1f} min)")
    if work_ctx:
        work_ctx.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
