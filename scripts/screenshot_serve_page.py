"""Take docs/serve-page.png: the page of ``segzoo serve`` (the built-in demo) after segmenting the demo picture.

    python scripts/screenshot_serve_page.py [--output docs/serve-page.png]

Starts ``segzoo serve`` (no --model: the demo) on a free port of 127.0.0.1, opens ``/`` in headless
chromium (Debian's chromium + chromium-driver, driven by Selenium: ``pip install "segzoo[browser]"``),
uploads the demo picture, waits for the answer and saves a screenshot.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=str(ROOT / "docs" / "serve-page.png"))
    parser.add_argument("--size", default="1280,1010", help="window W,H")
    args = parser.parse_args()

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from segzoo.inference.demo import read_demo_yml

    port = free_port()
    exe = shutil.which("segzoo") or sys.argv[0]
    server = subprocess.Popen([exe, "serve", "--port", str(port), "--device", "cpu", "--no-access-log"],
                              start_new_session=True)
    profile = tempfile.mkdtemp(prefix="segzoo-shot-")
    driver = None
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(600):
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        options = webdriver.ChromeOptions()
        options.binary_location = shutil.which("chromium")
        for flag in FLAGS + [f"--window-size={args.size}", f"--user-data-dir={profile}"]:
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
        driver.get(url + "/")
        time.sleep(1.0)  # /health fills the header
        for _ in range(2):  # the second answer shows the warm latency (the first compiles the engine for its size)
            driver.execute_script("document.body.dataset.state = 'idle'")
            driver.find_element("id", "file").send_keys(str(read_demo_yml()["image"]))
            for _ in range(600):
                if driver.execute_script("return document.body.dataset.state") in ("done", "error"):
                    break
                time.sleep(0.1)
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        shot = driver.get_screenshot_as_png()
        from PIL import Image  # 256 colours: a third of the size, the same picture

        image = Image.open(io.BytesIO(shot)).convert("RGB")
        image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(args.output, optimize=True)
        print(f"wrote {args.output}")
    finally:
        if driver is not None:
            driver.quit()
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)
        shutil.rmtree(profile, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
