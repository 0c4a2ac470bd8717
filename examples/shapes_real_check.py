#!/usr/bin/env python
"""Train a model from scratch on drawn shapes with `segzoo train`, then check the exported model.

What it does, end to end, the way a user would:

1. draws a SegDataset of shapes (``segzoo.datasets.shapes.make_shapes_dataset``);
2. writes a config with ``segzoo config MODEL`` plus overrides;
3. runs ``segzoo train -c cfg.yaml`` (a real subprocess; it exports ``best_model/inference``);
4. evaluates the best weights on the val split (``segzoo.training.evaluate``);
5. predicts the val images with the *exported* model (Paddle Inference) and with the
   dygraph weights, and compares the masks pixel by pixel;
6. exits 0 when the exported model reaches ``--target`` val mIoU (0.85) and its masks
   agree with the dygraph ones, 1 otherwise.

The drawn shapes are kept 3 px apart, each in a colour at least 80 (BGR distance)
from the background under it, with radii of 10-25 % of the 128 px image side;
train and val are drawn alike. Random scaling is off (``--scale 1 1``), flips and
photometric distortion are on.

Prints the numbers::

    python examples/shapes_real_check.py                        # PP-LiteSeg-T, the default settings
    python examples/shapes_real_check.py --model SeaFormer_tiny --iters 1000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="segzoo's real check on drawn shapes")
    p.add_argument("--model", default="PP-LiteSeg-T")
    p.add_argument("--iters", type=int, default=1500)
    p.add_argument("--batch-size", type=int, default=4, help="images per iteration per process")
    p.add_argument("--processes", type=int, default=2, help="data-parallel CPU processes (1.6x faster on 2 cores)")
    p.add_argument("--size", type=int, default=128, help="side of the drawn images")
    p.add_argument("--num-train", type=int, default=2000)
    p.add_argument("--num-val", type=int, default=50)
    p.add_argument("--lr", type=float, default=2e-3, help="AdamW learning rate")
    p.add_argument("--overlap", action=argparse.BooleanOptionalAction, default=False,
                   help="let drawn shapes overlap (default: kept 3 px apart)")
    p.add_argument("--min-contrast", type=float, default=80.0,
                   help="least BGR distance between a shape's colour and the background under it")
    p.add_argument("--extent", type=float, nargs=2, default=(0.1, 0.25), metavar=("MIN", "MAX"),
                   help="shape radius range, as a fraction of the image side")
    p.add_argument("--scale", type=float, nargs=2, default=(1.0, 1.0), metavar=("MIN", "MAX"),
                   help="random-scale augmentation range (1 1: off)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--target", type=float, default=0.85,
                   help="val mIoU the exported model must reach (exit status 1 below it, or if under 99.9 %% of its "
                        "pixels agree with the dygraph weights)")
    p.add_argument("--workdir", type=Path, help="keep everything here (default: a temp dir)")
    p.add_argument("-o", dest="overrides", action="append", default=[], help="more -o overrides for the config")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    import numpy as np

    from segzoo.config import default_config, load_config, render_config
    from segzoo.datasets import SegDataset
    from segzoo.datasets.shapes import make_shapes_dataset
    from segzoo.inference import create_model
    from segzoo.training import evaluate
    from segzoo.training.metrics import ConfusionMatrix

    ctx = tempfile.TemporaryDirectory(prefix="segzoo-real-check-") if args.workdir is None else None
    work = Path(ctx.name) if ctx else args.workdir
    work.mkdir(parents=True, exist_ok=True)
    data = make_shapes_dataset(work / "shapes", num_train=args.num_train, num_val=args.num_val,
                               size=(args.size, args.size), seed=args.seed, overlap=args.overlap,
                               min_contrast=args.min_contrast, extent=tuple(args.extent))
    out = work / "output"
    overrides = [
        "Global.mode=train", f"Global.dataset_dir={data}", f"Global.output={out}", "Global.device=cpu",
        "Train.num_classes=4", f"Train.epochs_iters={args.iters}", f"Train.batch_size={args.batch_size}",
        f"Train.num_processes={args.processes}",
        f"Train.crop_size=[{args.size},{args.size}]", f"Train.learning_rate={args.lr}",
        f"Train.warmup_steps={min(100, args.iters // 10)}", f"Train.eval_interval={max(args.iters // 8, 1)}",
        "Train.log_interval=50", "Train.keep_checkpoints=2", f"Train.seed={args.seed}",
        "Train.pretrain_weight_path=null",  # from scratch (the default fetches the official backbone weights)
        f"Train.augment.min_scale={args.scale[0]}", f"Train.augment.max_scale={args.scale[1]}",
        "Model.optimizer=adamw", "Model.weight_decay=0.01", *args.overrides,
    ]
    cfg = load_config(data=default_config(args.model).model_dump(mode="json"), overrides=overrides)
    cfg_path = work / "cfg.yaml"
    cfg_path.write_text(render_config(cfg), encoding="utf-8")

    cmd = [sys.executable, "-c", "import sys; from segzoo.cli import main; sys.exit(main())",
           "train", "-c", str(cfg_path), "--no-progress"]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    minutes = (time.perf_counter() - t0) / 60
    result = json.loads((out / "train_result.json").read_text())

    best = out / "best_model"
    val = SegDataset(data, "val")
    images = [val[i][0] for i in range(len(val))]
    labels = [val[i][1] for i in range(len(val))]
    metrics = evaluate(args.model, data, best / "model.pdparams", output_dir=work / "eval", progress=False,
                       verbose=False)["metrics"]

    exported = create_model(args.model, model_dir=best / "inference", device="cpu")  # Paddle Inference
    dygraph = create_model(args.model, model_dir=best / "model.pdparams", device="cpu", num_classes=4)
    pred_exp = exported.predict_arrays(images, batch_size=8)
    pred_dyg = dygraph.predict_arrays(images, batch_size=8)
    cm_exp = ConfusionMatrix(4)
    background_only = ConfusionMatrix(4)
    same = total = 0
    for pe, pd, lab in zip(pred_exp, pred_dyg, labels):
        cm_exp.update(pe, lab)
        background_only.update(np.zeros_like(lab), lab)
        same += int((pe == pd).sum())
        total += pe.size

    print()
    print(f"model                         {args.model} (from scratch), {args.iters} iterations x batch "
          f"{args.batch_size} x {args.processes} process(es), {args.num_train} train / {args.num_val} val images")
    print(f"segzoo train wall time        {minutes:.1f} min (CPU)")
    print(f"best val mIoU during training {100 * result['best_score']:.2f} % (iteration {result['best_iter']})")
    print(f"evaluate(best weights)        mIoU {100 * metrics['mIoU']:.2f} %, Acc {100 * metrics['Acc']:.2f} %, "
          f"Kappa {metrics['Kappa']:.4f}, Dice {100 * metrics['Dice']:.2f} %")
    exported_miou = cm_exp.compute()["mIoU"]
    agree = same >= 0.999 * total  # float noise may flip a near-tie pixel
    print(f"exported model on val         mIoU {100 * exported_miou:.2f} %")
    print(f"exported vs dygraph masks     {100 * same / total:.4f} % of pixels identical")
    print(f"all-background baseline       mIoU {100 * background_only.compute()['mIoU']:.2f} %")
    print(f"outputs in                    {out}")
    passed = exported_miou >= args.target and agree
    print(f"real check                    {'PASSED' if passed else 'FAILED'}: exported mIoU "
          f"{100 * exported_miou:.2f} % (target {100 * args.target:.0f} %), masks "
          f"{'agree' if agree else 'differ'} ({100 * same / total:.4f} %)")
    if ctx:
        ctx.cleanup()
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
