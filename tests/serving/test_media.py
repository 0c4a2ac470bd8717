"""Request images in, label maps out: base64, URL checks, the pixel limit before decoding, PNGs."""

from __future__ import annotations

import base64
import functools
import io
import struct
import time
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from segzoo.datasets.palette import voc_palette
from segzoo.serving.media import (
    ServeError,
    check_public_url,
    colour_png,
    decode_base64,
    header_size,
    image_kind,
    label_png,
    load_image,
    parse_target_size,
)

from .conftest import drawn, encode


@functools.lru_cache(maxsize=4)
def png_bomb(width: int, height: int) -> bytes:
    """A valid 8-bit grayscale PNG of zeros: tiny on the wire, ``width × height`` bytes once decoded."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    comp = zlib.compressobj(9)
    row = b"\0" * (width + 1)  # filter byte + pixels
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_image_kind_tells_urls_from_base64():
    assert image_kind("https://example.com/a.png") == "url"
    assert image_kind("  HTTP://example.com/a.png") == "url"
    assert image_kind(base64.b64encode(b"\x89PNG....").decode()) == "base64"
    for bad in ("file:///etc/passwd", "ftp://host/a.png", "gopher://x", "javascript://x"):
        with pytest.raises(ServeError) as err:
            image_kind(bad)
        assert err.value.status == 400 and bad.split(":")[0].lower() in str(err.value)


def test_decode_base64_variants():
    data = bytes(range(256)) * 3
    text = base64.b64encode(data).decode()
    assert decode_base64(text) == data
    assert decode_base64("data:image/png;base64," + text) == data
    wrapped = "\n".join(text[i : i + 76] for i in range(0, len(text), 76))
    assert decode_base64(wrapped) == data
    assert decode_base64(base64.urlsafe_b64encode(data).decode().rstrip("=")) == data
    for bad in ("!!!not base64!!!", "data:image/png,rawbytes", ""):
        with pytest.raises(ServeError) as err:
            decode_base64(bad)
        assert err.value.status == 400


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/a.png",
        "http://127.1.2.3:8080/a.png",
        "http://localhost/a.png",
        "http://[::1]/a.png",
        "http://[::ffff:127.0.0.1]/a.png",
        "http://10.0.0.7/a.png",
        "http://172.16.5.4/a.png",
        "http://192.168.1.1/a.png",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/a.png",
        "http://0.0.0.0/a.png",
        "http://[fe80::1]/a.png",
        "http://[fd00::1]/a.png",
        "http://2130706433/a.png",  # 127.0.0.1 as one number
        "http://0x7f000001/a.png",
    ],
)
def test_non_public_addresses_are_refused(url):
    with pytest.raises(ServeError) as err:
        check_public_url(url)
    assert err.value.status == 400
    assert "--allow-private-urls" in str(err.value) or "cannot resolve" in str(err.value)


def test_public_address_literals_pass():
    check_public_url("http://93.184.216.34/a.png")  # IP literals need no DNS
    check_public_url("https://[2606:2800:220:1:248:1893:25c8:1946]:8443/a.png")


def test_url_without_host_is_refused():
    with pytest.raises(ServeError):
        check_public_url("http:///a.png")


def test_header_size_reads_no_pixels():
    bomb = png_bomb(10000, 10000)  # 100 MP of zeros in ~100 KB
    assert len(bomb) < 200_000
    start = time.perf_counter()
    assert header_size(bomb) == (10000, 10000)
    assert time.perf_counter() - start < 0.5  # decoding would take seconds and 100+ MB
    assert header_size(b"not an image") is None


def png_header_only(width: int, height: int) -> bytes:
    """The first chunk of a PNG claiming ``width × height`` (what a bomb's header says)."""
    full = png_bomb(16, 16)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr) & 0xFFFFFFFF)
    return full[:8] + chunk + full[33:]


def test_load_image_refuses_bombs_before_decoding():
    # below and above Pillow's own limit (MAX_IMAGE_PIXELS: a warning at 89 MP, an error at 179 MP)
    for data, size in ((png_bomb(10000, 10000), "10000×10000"), (png_header_only(30000, 30000), "900,000,000 pixels")):
        with pytest.raises(ServeError) as err:
            load_image(data, max_pixels=300 * 300)
        assert err.value.status == 413 and size in str(err.value)


def test_load_image_decodes_like_predict():
    img = drawn(1)
    out = load_image(encode(img, ".png"), max_pixels=10**6)
    assert out.dtype == np.uint8 and np.array_equal(out, img)
    with pytest.raises(ServeError) as err:
        load_image(b"%PDF-1.4 ...", max_pixels=10**6)
    assert err.value.status == 400 and "PDF" in str(err.value)
    with pytest.raises(ServeError) as err:
        load_image(encode(img, ".png")[:200], max_pixels=10**6)  # truncated
    assert err.value.status == 400


def test_parse_target_size():
    assert parse_target_size(None, 10**6) is None
    assert parse_target_size(-1, 10**6) == (-1, -1)
    assert parse_target_size(64, 10**6) == (64, 64)
    assert parse_target_size([96, 64], 10**6) == (96, 64)
    assert parse_target_size("96,64", 10**6) == (96, 64)
    assert parse_target_size("[96, 64]", 10**6) == (96, 64)
    assert parse_target_size("", 10**6) is None
    for bad in (0, -5, [0, 3], "abc"):
        with pytest.raises(ServeError) as err:
            parse_target_size(bad, 10**6)
        assert err.value.status == 422 and "targetSize" in str(err.value)
    with pytest.raises(ServeError) as err:
        parse_target_size([2000, 2000], 10**6)
    assert err.value.status == 422 and "limit" in str(err.value)


def test_label_png_round_trips_class_ids():
    labels = np.random.default_rng(0).integers(0, 21, (37, 53)).astype(np.uint8)
    im = Image.open(io.BytesIO(label_png(labels)))
    assert im.mode == "P"
    assert np.array_equal(np.asarray(im), labels)
    # viewers see the VOC colours
    rgb = np.asarray(im.convert("RGB"))
    assert np.array_equal(rgb, voc_palette(256)[labels])
    assert np.array_equal(cv2.imdecode(np.frombuffer(colour_png(labels), np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1], rgb)
    wide = np.random.default_rng(1).integers(0, 300, (9, 11)).astype(np.int32)
    im16 = Image.open(io.BytesIO(label_png(wide)))
    assert np.array_equal(np.asarray(im16).astype(np.int64), wide)
