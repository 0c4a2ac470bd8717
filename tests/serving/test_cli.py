"""``segzoo serve`` on the command line: clean errors for bad flags, worker processes."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from .conftest import ServerProcess, b64, drawn, encode, free_port, segzoo_command


def run_serve(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        segzoo_command() + ["serve", *args], capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--model", "SeaFormer_tinyy"], "Did you mean: SeaFormer_tiny"),
        (["--max-batch-size", "0"], "--max-batch-size"),
        (["--batch-timeout-ms", "-1"], "--batch-timeout-ms"),
        (["--workers", "0"], "--workers"),
        (["--max-body-mb", "0"], "--max-body-mb"),
        (["--url-timeout", "0"], "--url-timeout"),
        (["--model", "SeaFormer_tiny", "--model-dir", "/nonexistent/weights.pdparams"], "/nonexistent"),
    ],
)
def test_bad_flags_exit_2_with_one_line(args, fragment):
    proc = run_serve("--port", str(free_port()), *args)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert "segzoo serve: error:" in proc.stderr and fragment in proc.stderr


def test_a_port_in_use_is_a_clean_error():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        proc = run_serve("--port", str(port))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"127.0.0.1:{port}" in proc.stderr and "--port" in proc.stderr


def test_help_lists_the_flags():
    proc = run_serve("--help")
    assert proc.returncode == 0
    for flag in ("--model", "--model-dir", "--workers", "--max-batch-size", "--batch-timeout-ms",
                 "--allow-private-urls", "--device", "--engine"):
        assert flag in proc.stdout


@pytest.mark.slow
def test_workers_each_load_their_own_model(tmp_path: Path, reference):
    server = ServerProcess(["--workers", "2", "--device", "cpu", "--no-access-log"], tmp_path / "w.log")
    try:
        server.wait_ready()
        # every worker says it loaded the model; wait until both have (the second may still be loading)
        pids: set[int] = set()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            pids = {int(p) for p in re.findall(r"worker (\d+) loaded", server.log())}
            if len(pids) == 2:
                break
            time.sleep(0.2)
        assert len(pids) == 2, server.log()[-2000:]
        assert server.pid not in pids  # the parent only supervises
        for pid in pids:  # children of the server process, alive
            status = Path(f"/proc/{pid}/status").read_text()
            assert re.search(rf"^PPid:\s+{server.pid}$", status, re.M)
        img = drawn(5)
        want = reference.predict_arrays([img])[0]
        seen = set()
        for _ in range(6):  # new connections; whichever worker answers gives the same labels
            r = httpx.post(server.url + "/semantic-segmentation", json={"image": b64(encode(img))}, timeout=60)
            res = r.json()["result"]
            assert np.array_equal(np.asarray(res["labelMap"]).reshape(res["size"]), want)
            seen.add(httpx.get(server.url + "/health", timeout=10).json()["result"]["pid"])
        assert seen <= pids
    finally:
        server.stop()


def test_the_command_module_is_cheap_to_import():
    code = (
        "import sys, segzoo.serving, segzoo.serving.cli\n"
        "heavy = [m for m in ('paddle', 'fastapi', 'uvicorn', 'cv2') if m in sys.modules]\n"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
