"""A server that stalls mid-file ends the download within ``SEGZOO_DOWNLOAD_TIMEOUT`` (default: a minute).

The server is a real socket on 127.0.0.1: it announces 1 MiB, sends 64 KiB,
then sends nothing more and keeps the connection open, as a stalled host does.
"""

from __future__ import annotations

import http.server
import threading
import time

import pytest

from segzoo import download
from segzoo.errors import DownloadError

ANNOUNCED = 1 << 20
SENT = 64 * 1024


class _Stalling(http.server.BaseHTTPRequestHandler):
    release: threading.Event
    requests: list

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.requests.append(self.headers.get("Range"))
        self.send_response(200)
        self.send_header("Content-Length", str(ANNOUNCED))
        self.end_headers()
        try:
            self.wfile.write(b"\0" * SENT)
            self.wfile.flush()
        except OSError:
            return
        self.release.wait(30)  # then nothing, until the test ends


@pytest.fixture()
def stalling():
    release = threading.Event()
    handler = type("Handler", (_Stalling,), {"release": release, "requests": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/w.pdparams", handler.requests
    finally:
        release.set()
        server.shutdown()
        server.server_close()


def test_a_stalled_download_gives_up_within_the_timeout(stalling, tmp_path, monkeypatch):
    url, requests = stalling
    monkeypatch.setenv(download.TIMEOUT_ENV, "2")
    monkeypatch.setattr(download, "BACKOFF_S", 0.01)
    t0 = time.monotonic()
    with pytest.raises(DownloadError) as err:
        download.fetch_file(url, tmp_path / "c" / "w.pdparams")
    elapsed = time.monotonic() - t0
    assert 1.9 < elapsed < 6, elapsed  # two waits of 1 s; before, each of 4 tries waited 60 s
    text = str(err.value)
    assert url in text and "no data came for 2 s" in text and f"{download.TIMEOUT_ENV}=" in text
    assert requests == [None, f"bytes={SENT}-"]  # the second wait was on a fresh connection, resuming
    assert sorted(p.name for p in (tmp_path / "c").iterdir() if not p.name.endswith(".lock")) == []


def test_the_default_gives_up_within_two_minutes_and_a_bad_setting_is_named(monkeypatch, tmp_path):
    monkeypatch.delenv(download.TIMEOUT_ENV, raising=False)
    waits = download.download_timeout() + sum(download.BACKOFF_S * 2**i for i in range(download.ATTEMPTS - 1))
    assert waits <= 120
    monkeypatch.setenv(download.TIMEOUT_ENV, "soon")
    with pytest.raises(DownloadError, match="SEGZOO_DOWNLOAD_TIMEOUT='soon' is not a number of seconds"):
        download.download("http://127.0.0.1:9/x", tmp_path / "x.part")
