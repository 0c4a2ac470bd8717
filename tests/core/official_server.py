"""A local stand-in for PaddleX's model host: files in the official layout, served from 127.0.0.1.

The server counts every request, honours ``Range`` (or not, when told), can
drop a connection after a given number of bytes, answers 404 for what it does
not hold, and can send slowly (so that two clients overlap). The tests build
what it serves (tars of segzoo's own exports, ``.pdparams``, unsafe tars).
"""

from __future__ import annotations

import http.server
import io
import socketserver
import tarfile
import threading
import time
from pathlib import Path
from typing import Optional


class _Handler(http.server.BaseHTTPRequestHandler):
    server_state: "OfficialServer"

    def log_message(self, *args):  # keep pytest's output clean
        pass

    def do_GET(self):
        try:
            self._serve()
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _serve(self):
        state = self.server_state
        path = self.path.split("?")[0]
        range_header = self.headers.get("Range")
        with state.lock:
            state.requests.append((path, range_header))
            data = state.files.get(path)
            drops = state.drops.get(path)
            drop_after = drops.pop(0) if drops else None
        if data is None:
            self.send_error(404, "Not Found")
            return
        start = 0
        if range_header and state.range_support:
            start = int(range_header.split("=", 1)[1].split("-", 1)[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if drop_after is not None:
            body = body[:drop_after]  # then the connection closes: the client sees a short body
        step = 64 * 1024
        for i in range(0, len(body), step):
            self.wfile.write(body[i : i + step])
            if state.delay_s:
                self.wfile.flush()
                time.sleep(state.delay_s)


class _ThreadingServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


class OfficialServer:
    """``put(rel, data)`` serves ``data`` at ``base_url + rel``; ``count(rel)`` says how often it was asked for."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, Optional[str]]] = []
        self.drops: dict[str, list[int]] = {}
        self.range_support = True
        self.delay_s = 0.0
        self.lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"server_state": self})
        self._server = _ThreadingServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/"

    def put(self, rel: str, data: bytes) -> str:
        self.files["/" + rel.lstrip("/")] = data
        return self.base_url + rel.lstrip("/")

    def drop(self, rel: str, *after_bytes: int) -> None:
        """The next GETs of ``rel`` send only this many bytes each, then close the connection."""
        self.drops["/" + rel.lstrip("/")] = list(after_bytes)

    def count(self, rel: Optional[str] = None) -> int:
        with self.lock:
            if rel is None:
                return len(self.requests)
            return sum(1 for p, _ in self.requests if p == "/" + rel.lstrip("/"))

    def ranges(self, rel: str) -> list[Optional[str]]:
        with self.lock:
            return [r for p, r in self.requests if p == "/" + rel.lstrip("/")]

    def reset(self) -> None:
        with self.lock:
            self.files.clear()
            self.requests.clear()
            self.drops.clear()
        self.range_support = True
        self.delay_s = 0.0

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def tar_folder(folder: Path, top: Optional[str] = "model") -> bytes:
    """A tar of ``folder``'s files under one top-level folder ``top`` (``None``: at the top)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path in sorted(Path(folder).rglob("*")):
            rel = path.relative_to(folder).as_posix()
            tar.add(path, arcname=f"{top}/{rel}" if top else rel, recursive=False)
    return buf.getvalue()


def tar_members(*members: tuple) -> bytes:
    """A tar from ``(name, bytes)`` files and ``(name, tarfile type, linkname)`` links and devices."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for member in members:
            info = tarfile.TarInfo(member[0])
            if len(member) == 2:
                info.size = len(member[1])
                tar.addfile(info, io.BytesIO(member[1]))
            else:
                info.type, info.linkname = member[1], member[2]
                tar.addfile(info)
    return buf.getvalue()


def fake_inference_files(prefix: str = "model/") -> list[tuple[str, bytes]]:
    """The files of an inference folder (contents that only the layout checks care about)."""
    return [
        (prefix + "inference.yml", b"Global: {model_name: X}\n"),
        (prefix + "inference.json", b"{}"),
        (prefix + "inference.pdiparams", b"\0" * 200_000),
    ]
