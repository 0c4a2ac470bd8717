"""Load-test ``segzoo serve``: throughput and latency with dynamic batching on and off.

Starts ``segzoo serve`` twice on 127.0.0.1 (``--max-batch-size B`` and ``--max-batch-size 1``,
same model and flags otherwise), then for R rounds fires N requests from C concurrent clients at
each in turn (base64 PNGs of drawn-shapes images, ``visualize`` off; only one server is loaded at
a time, and alternating makes a change in the machine's load hit both alike). Prints the median
requests/s over the rounds, p50/p90/p99 latency over all of them, the server's mean batch size
and RSS, and the ratios.

    python benchmarks/serve_load.py                       # the built-in demo model, 128×128 images
    python benchmarks/serve_load.py --requests 400 --concurrency 32 --size 256
    python benchmarks/serve_load.py --model PP-LiteSeg-T --model-dir out/best_model/inference
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

    def __init__(self, extra: list[str]):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile("w+b", prefix="segzoo-serve-", suffix=".log", delete=False)
        exe = shutil.which("segzoo")
        cmd = [exe] if exe else [sys.executable, "-c", "import sys; from segzoo.cli import main; sys.exit(main())"]
        self.proc = subprocess.Popen(
            cmd + ["serve", "--host", "127.0.0.1", "--port", str(self.port), "--no-access-log", *extra],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
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


def main(argv=None) -> int:
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
    args = p.parse_args(argv)

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
