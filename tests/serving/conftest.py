"""Fixtures of the service tests: real ``segzoo serve`` processes, a local image host, references.

* ``server``: ``segzoo serve`` on the built-in demo model (SeaFormer_tiny, 4 classes) with
  ``--allow-private-urls`` and small limits (body 1 MiB, 300×300 pixels, URL 1 s / 512 KiB),
  started once per module on a free port of 127.0.0.1 and stopped at the end.
* ``strict_server``: the same without ``--allow-private-urls`` (the SSRF refusals).
* ``image_host``: a threaded ``http.server`` on 127.0.0.1 serving drawn images and the bad
  cases: slow, oversized, not an image, missing.
* ``reference``: the same demo model loaded in the test process, to compare with ``predict()``.
"""

from __future__ import annotations

import base64
import http.server
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

from segzoo.datasets.shapes import draw_sample

# the limits the test servers run with
MAX_BODY_MB = 1.0
MAX_PIXELS = 300 * 300
URL_TIMEOUT = 1.0
URL_MAX_MB = 0.5
STARTUP_TIMEOUT = 180.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def segzoo_command() -> list[str]:
    exe = shutil.which("segzoo")
    return [exe] if exe else [sys.executable, "-c", "import sys; from segzoo.cli import main; sys.exit(main())"]


def rss_kb(pid: int) -> int:
    """Resident memory of a process, from /proc (no psutil)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


class ServerProcess:
    """``segzoo serve ...`` in a subprocess on 127.0.0.1, its output in a log file."""

    def __init__(self, args: list[str], log_path: Path, port: int | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = open(log_path, "wb")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            segzoo_command() + ["serve", "--host", "127.0.0.1", "--port", str(self.port), *args],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT) -> "ServerProcess":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"segzoo serve exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"segzoo serve did not answer /health within {timeout:.0f} s:\n{self.log()[-3000:]}")

    def health(self) -> dict:
        return httpx.get(self.url + "/health", timeout=10).json()["result"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # the session holds only this server (and its workers)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._log.close()


def limit_args() -> list[str]:
    return [
        "--max-body-mb", str(MAX_BODY_MB),
        "--max-pixels", str(MAX_PIXELS),
        "--url-timeout", str(URL_TIMEOUT),
        "--url-max-mb", str(URL_MAX_MB),
        "--device", "cpu",
        "--no-access-log",
    ]


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """Both test servers, started together (their models load in parallel)."""
    logs = tmp_path_factory.mktemp("serve_logs")
    main = ServerProcess(limit_args() + ["--allow-private-urls"], logs / "main.log")
    strict = ServerProcess(limit_args(), logs / "strict.log")
    try:
        main.wait_ready()
        strict.wait_ready()
        yield main, strict
    finally:
        main.stop()
        strict.stop()


@pytest.fixture(scope="module")
def server(servers) -> ServerProcess:
    return servers[0]


@pytest.fixture(scope="module")
def strict_server(servers) -> ServerProcess:
    return servers[1]


@pytest.fixture(scope="module")
def reference():
    """The demo predictor in this process: what ``segzoo predict`` computes."""
    from segzoo.inference.demo import load_demo

    predictor, _ = load_demo(device="cpu")
    return predictor


# -- images -------------------------------------------------------------------------------------------
def drawn(seed: int, size=(160, 120)) -> np.ndarray:
    """A drawn-shapes BGR image of ``size = (W, H)`` (not square, to catch W/H swaps)."""
    return draw_sample(np.random.default_rng(seed), size)[0]


def encode(image: np.ndarray, ext: str = ".png") -> bytes:
    ok, buf = cv2.imencode(ext, image)
    assert ok
    return buf.tobytes()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# -- the image host -----------------------------------------------------------------------------------
class ImageHost:
    """What the local image host serves; ``url(path)`` is its address."""

    def __init__(self, port: int):
        self.port = port
        self.files: dict[str, tuple[bytes, str]] = {}

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


@pytest.fixture(scope="module")
def image_host():
    host = ImageHost(0)
    big = b"\x89PNG\r\n\x1a\n" + b"\0" * int(URL_MAX_MB * 1024 * 1024 * 2)

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep the test output clean
            pass

        def do_GET(self):
            try:
                self._get()
            except OSError:  # the segzoo server hung up (as it should, on slow or huge answers)
                pass

        def _get(self):
            if self.path == "/slow.png":  # headers only after 3 × the server's URL timeout
                time.sleep(3 * URL_TIMEOUT)
            if self.path == "/drip.png":  # headers at once, then a byte every 0.3 s for 3 × the timeout
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.end_headers()
                try:
                    for _ in range(int(10 * URL_TIMEOUT)):
                        self.wfile.write(b"\0")
                        self.wfile.flush()
                        time.sleep(0.3)
                except OSError:
                    pass
                return
            if self.path in ("/huge.png", "/huge-chunked.png"):
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                if self.path == "/huge.png":
                    self.send_header("Content-Length", str(len(big)))
                self.end_headers()
                try:
                    self.wfile.write(big)
                except OSError:
                    pass
                return
            entry = host.files.get(self.path)
            if entry is None:
                self.send_error(404)
                return
            data, kind = entry
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    host.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield host
    finally:
        httpd.shutdown()
        httpd.server_close()
