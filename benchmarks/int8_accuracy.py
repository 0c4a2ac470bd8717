"""INT8 accuracy on a trained model: the built-in demo (SeaFormer_tiny trained on drawn shapes), quantized by `segzoo quantize`.

    python benchmarks/int8_accuracy.py                 # 300 calibration images, the demo's 50 val images
    python benchmarks/int8_accuracy.py --subset 32     # a quick look

The dataset is the demo's own (``segzoo.datasets.shapes.make_shapes_dataset``
with the seed and sizes of ``core/assets/demo/demo.yml``): calibration on a
seeded sample of its train split, the report on its val split, which are the
50 images the demo's published mIoU was measured on. Prints ``segzoo
quantize``'s report (fp32 and INT8 mIoU, the drop, the pixel agreement, the
speed-up at 128×128) for each overflow fix asked for, and writes it as JSON.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--subset", type=int, default=300, help="calibration images (default 300, segzoo quantize's)")
    p.add_argument("--overflow-fix", nargs="+", default=["auto"], help="auto, disable, first_layer_only, enable")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=str(HERE / "results"), help="directory of the JSON result")
    args = p.parse_args(argv)

    from segzoo.datasets.shapes import make_shapes_dataset
    from segzoo.fileio import write_json
    from segzoo.inference.demo import demo_dir
    from segzoo.training.quantize import format_report, quantize

    demo = yaml.safe_load((demo_dir() / "demo.yml").read_text(encoding="utf-8"))
    data = demo["made_by"]["dataset"]
    reports = []
    with tempfile.TemporaryDirectory(prefix="segzoo-int8-") as tmp:
        os.environ["SEGZOO_HOME"] = str(Path(tmp) / "home")  # this run's conversions and INT8 models only
        root = make_shapes_dataset(Path(tmp) / "shapes", num_train=data["num_train"], num_val=data["num_val"],
                                   size=tuple(data["size"]), seed=data["seed"])
        for fix in args.overflow_fix:
            report = quantize(demo["model_name"], demo_dir() / demo["weights"], dataset=str(root), subset=args.subset,
                              overflow_fix=fix, cpu_threads=args.threads, force=True)
            report["asked_overflow_fix"] = fix
            print(format_report(report))
            reports.append(report)
    stamp = dt.date.today().isoformat()
    path = write_json(Path(args.out) / f"{stamp}-int8-accuracy.json", {
        "date": dt.datetime.now().isoformat(timespec="seconds"), "model": "built-in demo (SeaFormer_tiny, drawn shapes)",
        "published_miou": demo.get("miou"), "subset": args.subset, "threads": args.threads, "reports": reports,
    })
    print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
