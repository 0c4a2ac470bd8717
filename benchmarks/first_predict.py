#!/usr/bin/env python
"""The README's first command on a fresh machine: `segzoo predict` (the built-in demo) with an empty cache.

Each run is a new process with a new, empty ``SEGZOO_HOME``, timed from start
to exit (wall clock), as a new user meets it. Two variants, interleaved so a
load that changes during the run hits both alike:

* ``shipped``: as installed: the demo's ONNX conversion ships in the package
  (``segzoo/assets/demo/demo.onnx``) and runs in place;
* ``convert``: the same command with the shipped conversion hidden
  (``segzoo.inference.netcache.SHIPPED_ROOT`` pointed at an empty folder), i.e.
  what every fresh machine paid before it shipped: an export and a
  paddle2onnx conversion;

and, for reference, ``warm``: `segzoo predict` again in the last ``convert``
run's home (nothing left to do once).

    python benchmarks/first_predict.py --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUN = """
import sys
from pathlib import Path
if sys.argv[1] == "convert":
    import segzoo.inference.netcache as netcache
    netcache.SHIPPED_ROOT = Path(sys.argv[3])
from segzoo.cli import main
sys.exit(main(["predict", "--output", sys.argv[2]]))
"""


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def run_once(variant: str, work: Path, home: Path) -> tuple[float, float]:
    """``(wall seconds, CPU seconds)`` of one `segzoo predict` (CPU: user + system of the process and its children,
    which a loaded machine inflates less than the wall clock)."""
    env = {k: v for k, v in os.environ.items() if k not in ("SEGZOO_DEMO_DIR", "SEGZOO_ENGINE")}
    env["SEGZOO_HOME"] = str(home)
    (work / "nothing").mkdir(exist_ok=True)
    cmd = [sys.executable, "-c", RUN, variant, str(work / "out"), str(work / "nothing")]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{variant} failed:\n{done.stderr[-3000:]}")
    return seconds, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("--repeat", type=int, default=3, help="runs of each variant")
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args(argv)
    times: dict = {"shipped": [], "convert": [], "warm": []}
    cpu: dict = {k: [] for k in times}
    with tempfile.TemporaryDirectory(prefix="segzoo-first-predict-") as tmp:
        work = Path(tmp)
        for i in range(args.repeat):
            for variant in ("convert", "shipped"):
                home = work / f"home-{variant}-{i}"
                wall, used = run_once(variant, work, home)
                times[variant].append(wall)
                cpu[variant].append(used)
            wall, used = run_once("shipped", work, work / f"home-convert-{i}")
            times["warm"].append(wall)
            cpu["warm"].append(used)
    rows = {k: {"median_s": round(statistics.median(v), 2), "runs_s": [round(x, 2) for x in v],
                "cpu_median_s": round(statistics.median(cpu[k]), 2)} for k, v in times.items()}
    ratio = rows["shipped"]["median_s"] / rows["convert"]["median_s"]
    print(f"CPU: {cpu_model()}")
    for k, row in rows.items():
        print(f"{k:8s} wall median {row['median_s']:6.2f} s  runs {row['runs_s']}   CPU median {row['cpu_median_s']:6.2f} s")
    print(f"shipped / convert: {ratio:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"cpu": cpu_model(), "rows": rows, "ratio": round(ratio, 3)}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
