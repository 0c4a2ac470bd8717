"""Fixtures of the inference tests: small real models, drawn images, a local HTTP server.

* ``point_model``: a test plugin ("InferTestPointNet") registered at run time
  whose network is two 1×1 convolutions: every pixel's scores depend on that
  pixel only, so padding, cropping, resizing and sliding windows can be
  checked exactly against numpy. Its layer records the input shapes it saw.
* ``tiny``: SeaFormer_tiny (4 classes) with seeded moderate weights, its
  ``.pdparams`` and an argmax export of it: a real network with global
  context, fast enough for many calls.
* ``http_server``: a threaded ``http.server`` on 127.0.0.1 with normal, slow,
  dripping, oversized and missing endpoints.
"""

from __future__ import annotations

import http.server
import math
import socketserver
import threading
import time
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

import segzoo
from segzoo import ExportSupport, ModelCard, ModelConfig, ModelPlugin
from segzoo.datasets.shapes import draw_sample

POINT_NAME = "InferTestPointNet"
FIXED_NAME = "InferTestFixedNet"
PADDED_NAME = "InferTestPaddedNet"
NOEXPORT_NAME = "InferTestNoExport"


def moderate_weights(layer, seed: int = 0, scale: float = 1.0) -> None:
    """Seeded weights with moderate activations (random init makes some logits ~1e-13 or ~1e6).

    Weights with 2+ dims: N(0, scale / fan_in); BatchNorm variances 1 + 0.1|n|;
    1-D ``weight``/``scale`` (BatchNorm/LayerNorm gains) 1 + 0.02 n; the rest 0.02 n;
    integer buffers are left alone.
    """
    rng = np.random.default_rng(seed)
    new = {}
    for name, tensor in layer.state_dict().items():
        shape = tuple(tensor.shape)
        leaf = name.rpartition(".")[2]
        n = rng.standard_normal(shape).astype(np.float32)
        if "float" not in str(tensor.dtype):
            continue  # integer buffers (indices, counters) keep their values
        if leaf == "_variance":
            value = 1 + 0.1 * np.abs(n)
        elif len(shape) >= 2:
            fan_in = int(np.prod(shape[1:])) if len(shape) > 2 else shape[0]
            value = n * np.float32(math.sqrt(scale / fan_in))
        elif leaf in ("weight", "scale"):
            value = 1 + 0.02 * n
        else:
            value = 0.02 * n
        new[name] = value.astype(np.float32)
    layer.set_state_dict(new)


@pytest.fixture(scope="session")
def set_moderate_weights():
    return moderate_weights


# -- a pointwise test model -----------------------------------------------------------------------
class PointConfig(ModelConfig):
    """Config of the pointwise test network."""

    hidden: int = 8


def _build_point(config):
    import paddle

    class PointNet(paddle.nn.Layer):
        def __init__(self, num_classes, hidden):
            super().__init__()
            self.conv1 = paddle.nn.Conv2D(3, hidden, 1)
            self.conv2 = paddle.nn.Conv2D(hidden, num_classes, 1)
            self.seen = []

        def forward(self, x):
            if not paddle.in_dynamic_mode():
                return [self.conv2(paddle.nn.functional.relu(self.conv1(x)))]
            self.seen.append(tuple(x.shape))
            return [self.conv2(paddle.nn.functional.relu(self.conv1(x)))]

    paddle.seed(7)
    return PointNet(config.num_classes, config.hidden)


def point_numpy(layer, config, bgr: np.ndarray) -> np.ndarray:
    """The point network's scores ``C×H×W`` computed with numpy from its weights."""
    rgb = bgr[:, :, ::-1].astype(np.float32) / 255.0
    x = (rgb - np.asarray(config.mean, np.float32)) / np.asarray(config.std, np.float32)
    w1 = layer.conv1.weight.numpy()[:, :, 0, 0]
    b1 = layer.conv1.bias.numpy()
    w2 = layer.conv2.weight.numpy()[:, :, 0, 0]
    b2 = layer.conv2.bias.numpy()
    hidden = np.maximum(np.einsum("hwc,kc->hwk", x, w1) + b1, 0)
    return (np.einsum("hwk,ck->hwc", hidden, w2) + b2).transpose(2, 0, 1)


@pytest.fixture(scope="session")
def point_numpy_scores():
    """``f(layer, config, bgr) -> C×H×W`` scores of the point network, in numpy."""
    return point_numpy


def _register(plugin):
    registry = segzoo.get_registry()
    if plugin.card.name in registry.list_models():
        registry.unregister(plugin.card.name)
    segzoo.register_plugin(plugin)
    return plugin.card.name


@pytest.fixture(scope="session")
def point_model():
    """Register the pointwise model (3 classes, input_size 32×32; fed at each image's own size)."""
    card = ModelCard(
        name=POINT_NAME,
        family="inference-tests",
        dataset="none",
        num_classes=3,
        input_size=(32, 32),
        size_divisor=16,
        config_class=PointConfig,
    )
    name = _register(ModelPlugin(card, build=_build_point))
    yield name
    segzoo.get_registry().unregister(name)


@pytest.fixture(scope="session")
def padded_point_model():
    """The pointwise network under a card that says its network needs sides that are multiples of 16."""
    card = ModelCard(
        name=PADDED_NAME,
        family="inference-tests",
        dataset="none",
        num_classes=3,
        input_size=(32, 32),
        size_divisor=16,
        pad_to=16,
        pad_reason="a test card: pretends its network takes only multiples of 16",
        config_class=PointConfig,
    )
    name = _register(ModelPlugin(card, build=_build_point))
    yield name
    segzoo.get_registry().unregister(name)


@pytest.fixture(scope="session")
def fixed_model():
    """The pointwise network under a card that exports only at 1×3×32×32."""
    card = ModelCard(
        name=FIXED_NAME,
        family="inference-tests",
        dataset="none",
        num_classes=3,
        size_divisor=16,
        export=ExportSupport(dynamic_shape=False, fixed_input_shape=(1, 3, 32, 32)),
        config_class=PointConfig,
    )
    name = _register(ModelPlugin(card, build=_build_point))
    yield name
    segzoo.get_registry().unregister(name)


@pytest.fixture(scope="session")
def noexport_model():
    card = ModelCard(
        name=NOEXPORT_NAME,
        family="inference-tests",
        dataset="none",
        num_classes=3,
        export=ExportSupport(static=False, note="the test network refuses static graphs"),
        config_class=PointConfig,
    )
    name = _register(ModelPlugin(card, build=_build_point))
    yield name
    segzoo.get_registry().unregister(name)


@pytest.fixture()
def point(point_model):
    """A fresh predictor of the point model (its layer's ``seen`` list starts empty)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return segzoo.create_model(point_model, device="cpu", pretrained=False, engine="dygraph")  # its layer records what it sees


# -- SeaFormer_tiny with seeded weights --------------------------------------------------------------
class Tiny:
    name = "SeaFormer_tiny"

    def __init__(self, root: Path):
        import paddle

        from segzoo.inference import Predictor, export_model
        from segzoo.weights import save_weights

        registry = segzoo.get_registry()
        self.config = registry.config(self.name, num_classes=4)
        paddle.seed(0)
        self.layer = registry.build_model(self.name, self.config)
        moderate_weights(self.layer, seed=0, scale=2.0)
        self.layer.eval()
        self.weights = save_weights(self.layer, root / "tiny" / "model.pdparams")
        self.export_dir = export_model(self.name, root / "tiny_export", config=self.config, layer=self.layer)
        self.predictor = Predictor.from_model(self.name, self.config, self.layer)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    return Tiny(tmp_path_factory.mktemp("tiny"))


# -- images -----------------------------------------------------------------------------------------
def shapes(seed: int, size=(83, 61)) -> np.ndarray:
    """A drawn-shapes BGR image of ``size = (W, H)``."""
    return draw_sample(np.random.default_rng(seed), size, max_shapes=5, min_shapes=3)[0]


@pytest.fixture(scope="session")
def make_image():
    return shapes


def write_image(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ext = path.suffix.lower()
    ok, buf = cv2.imencode(".jpg" if ext == ".jpeg" else (".tif" if ext == ".tiff" else ext), image)
    assert ok, path
    path.write_bytes(buf.tobytes())
    return path


@pytest.fixture(scope="session")
def save_image():
    return write_image


def make_pdf(path: Path, pages: int = 2) -> Path:
    """A PDF of ``pages`` small pages drawn with matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    path.parent.mkdir(parents=True, exist_ok=True)
    with PdfPages(path) as pdf:
        for i in range(pages):
            fig = plt.figure(figsize=(1.0 + 0.5 * i, 0.75))
            fig.patch.set_facecolor((0.9, 0.2 * i, 0.3))
            plt.plot([0, 1], [i, 1 - i], linewidth=6)
            pdf.savefig(fig, facecolor=fig.get_facecolor())
            plt.close(fig)
    return path


@pytest.fixture(scope="session")
def pdf_maker():
    return make_pdf


# -- a local HTTP server -------------------------------------------------------------------------------
class _Handler(http.server.BaseHTTPRequestHandler):
    routes: dict = {}

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):
        try:
            self._serve()
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _serve(self):
        path = self.path.split("?")[0]
        if path == "/slow":
            time.sleep(3.0)
            body = self.routes.get("/img.png", (b"", ""))[0]
            self._send(body, "image/png")
        elif path == "/drip":  # each chunk is quick, the whole body takes ~3 s
            body = self.routes["/img.png"][0]
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            step = max(1, len(body) // 20)
            for i in range(0, len(body), step):
                self.wfile.write(body[i : i + step])
                self.wfile.flush()
                time.sleep(0.15)
        elif path == "/big":  # declares a large body
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(50 * 1024 * 1024))
            self.end_headers()
            self.wfile.write(b"\0" * 65536)
        elif path == "/big-chunked":  # no Content-Length, keeps sending
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()
            for _ in range(64):
                self.wfile.write(b"\0" * 65536)
        elif path == "/redirect":  # 302 to /img.png
            self.send_response(302)
            self.send_header("Location", "/img.png")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif path in self.routes:
            body, ctype = self.routes[path]
            self._send(body, ctype)
        else:
            self.send_error(404, "no such file")

    def _send(self, body: bytes, ctype: str):
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


@pytest.fixture(scope="session")
def http_server():
    """``(base_url, routes)``: put ``routes["/x.png"] = (bytes, content_type)`` to serve a file."""
    routes: dict = {}
    handler = type("Handler", (_Handler,), {"routes": routes})
    server = _Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", routes
    server.shutdown()
    server.server_close()
