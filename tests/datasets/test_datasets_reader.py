"""SegDataset reader: list-file rules, decoding, EXIF, palette PNGs, palette helpers."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from segzoo.errors import DatasetError, SegzooError
from segzoo.datasets import (
    SegDataset,
    colorize,
    overlay,
    read_image,
    read_label,
    read_list,
    voc_palette,
)
from segzoo.datasets._imageio import DecodeError, decode_image, decode_label, exif_orientation, oriented_size


def _pair(root, stem, dsutil, rng=None, size=(20, 30)):
    rng = rng or np.random.default_rng(0)
    image, mask = dsutil.draw_sample(rng, size, (1, 2))
    dsutil.write_png(root / "images" / f"{stem}.png", image)
    dsutil.write_png(root / "annotations" / f"{stem}.png", mask)
    return image, mask


def test_reads_the_good_dataset(good_dataset):
    ds = SegDataset(good_dataset, "train")
    assert len(ds) == 8
    assert ds.class_names == ["background", "disc", "box", "triangle"]
    image, label = ds[0]
    assert image.dtype == np.uint8 and image.shape == (48, 64, 3)
    assert label.dtype == np.uint8 and label.shape == (48, 64)
    assert set(np.unique(label)) <= {0, 1, 2, 3}
    s = ds.samples[0]
    assert s.line == 1 and s.list_file.name == "train.txt"
    assert s.image_rel == "images/train_00000.jpg" and s.image.is_absolute()
    assert len(SegDataset(good_dataset, "val")) == 4


def test_list_rules_spaces_tabs_backslashes_blank_lines_bom(tmp_path, dsutil):
    root = tmp_path / "ds"
    rng = np.random.default_rng(1)
    for stem in ["a b", "c", "d e f", "g"]:
        _pair(root, stem, dsutil, rng)
    (root / "annotations" / "c copy.png").write_bytes((root / "annotations" / "c.png").read_bytes())
    text = (
        "\ufeffimages/c.png annotations/c.png\r\n"  # BOM + CRLF
        "\n"
        "   \n"
        "images/a b.png\tannotations/a b.png\n"  # tab, spaces in both paths
        "images/d e f.png annotations/d e f.png\n"  # spaces in both, no tab: resolved by existing files
        "images\\g.png annotations\\g.png\n"  # Windows separators
        "images/c.png annotations/c copy.png\n"  # space only in the mask path
        "  images/g.png     annotations/g.png  \n"
    )
    (root / "train.txt").write_text(text, encoding="utf-8")
    samples = read_list(root, "train.txt")
    got = [(s.line, s.image_rel, s.label_rel) for s in samples]
    assert got == [
        (1, "images/c.png", "annotations/c.png"),
        (4, "images/a b.png", "annotations/a b.png"),
        (5, "images/d e f.png", "annotations/d e f.png"),
        (6, "images/g.png", "annotations/g.png"),
        (7, "images/c.png", "annotations/c copy.png"),
        (8, "images/g.png", "annotations/g.png"),
    ]
    ds = SegDataset(root, "train")
    for i in range(len(ds)):
        img, lbl = ds[i]
        assert img.shape[:2] == lbl.shape


def test_spaces_without_existing_files_use_extension_then_last_run(tmp_path):
    root = tmp_path / "ds"
    root.mkdir()
    (root / "train.txt").write_text(
        "images/x y.jpg annotations/x y.png\nimages/p q r annotations/s\n", encoding="utf-8"
    )
    got = [(s.image_rel, s.label_rel) for s in read_list(root, "train.txt")]
    assert got == [("images/x y.jpg", "annotations/x y.png"), ("images/p q r", "annotations/s")]


@pytest.mark.parametrize(
    "line",
    ["../outside.jpg annotations/a.png", "images/a.png ../../etc/passwd", "/etc/hosts annotations/a.png",
     "C:\\data\\a.jpg annotations/a.png"],
)
def test_paths_outside_the_root_are_rejected_with_file_and_line(tmp_path, line):
    root = tmp_path / "ds"
    root.mkdir()
    (root / "train.txt").write_text("images/a.png annotations/a.png\n" + line + "\n", encoding="utf-8")
    with pytest.raises(DatasetError) as info:
        read_list(root, "train.txt")
    msg = str(info.value)
    assert "train.txt line 2" in msg and "outside" in msg
    assert isinstance(info.value, SegzooError)


def test_absolute_path_inside_the_root_is_accepted(tmp_path):
    root = tmp_path / "ds"
    root.mkdir()
    (root / "train.txt").write_text(f"{root}/images/a.png annotations/a.png\n", encoding="utf-8")
    (s,) = read_list(root, "train.txt")
    assert s.image_rel == "images/a.png"


def test_one_field_line_and_missing_list(tmp_path):
    root = tmp_path / "ds"
    root.mkdir()
    (root / "train.txt").write_text("images/a.png\nimages/b.png annotations/b.png\nonly_one\n", encoding="utf-8")
    with pytest.raises(DatasetError) as info:
        read_list(root, "train.txt")
    assert "line 1" in str(info.value) and "line 3" in str(info.value) and "2 bad line" in str(info.value)
    with pytest.raises(DatasetError, match="val.txt: list file not found"):
        read_list(root, "val.txt")


def test_reader_converts_gray_and_rgba_images_and_names_bad_masks(tmp_path, dsutil):
    root = tmp_path / "ds"
    gray = np.tile(np.arange(30, dtype=np.uint8), (20, 1))
    dsutil.write_png(root / "images" / "g.png", gray)
    rgba = np.dstack([np.full((20, 30, 3), 7, np.uint8), np.full((20, 30), 9, np.uint8)])
    dsutil.write_png(root / "images" / "r.png", rgba)
    dsutil.write_png(root / "annotations" / "m.png", np.ones((20, 30), np.uint8))
    dsutil.write_png(root / "annotations" / "rgb.png", np.ones((20, 30, 3), np.uint8))
    (root / "train.txt").write_text(
        "images/g.png annotations/m.png\nimages/r.png annotations/m.png\nimages/g.png annotations/rgb.png\n"
    )
    ds = SegDataset(root)
    img, _ = ds[0]
    assert img.shape == (20, 30, 3) and (img[:, :, 0] == gray).all() and (img[:, :, 2] == gray).all()
    img, _ = ds[1]
    assert img.shape == (20, 30, 3) and (img == 7).all()
    with pytest.raises(DatasetError, match=r"rgb.png \(train.txt line 3\).*3 channels"):
        ds[2]


def _exif(orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


@pytest.mark.parametrize("container", ["jpeg", "jpeg-pil", "png"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_opencv_imread(tmp_path, dsutil, container, orientation):
    img = np.zeros((40, 60, 3), np.uint8)
    img[:10, :20] = (255, 0, 0)
    img[30:, 50:] = (0, 0, 255)
    img[5:15, 40:55] = (0, 255, 0)
    if container == "jpeg":  # hand-made big-endian APP1 holding only the tag
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 100])
        data = dsutil.jpeg_with_orientation(buf.tobytes(), orientation)
    else:  # written by Pillow: little-endian EXIF in JPEG APP1 / PNG eXIf
        out = io.BytesIO()
        extra = {"quality": 100} if container == "jpeg-pil" else {}
        fmt = "JPEG" if container == "jpeg-pil" else "PNG"
        Image.fromarray(img[:, :, ::-1]).save(out, fmt, exif=_exif(orientation), **extra)
        data = out.getvalue()
    path = tmp_path / ("x.png" if container == "png" else "x.jpg")
    path.write_bytes(data)
    theirs = cv2.imread(str(path), cv2.IMREAD_COLOR)  # applies EXIF orientation
    ours = decode_image(data)
    assert exif_orientation(data) == ours.orientation == orientation
    assert ours.stored_size == (60, 40)
    assert ours.size == oriented_size(60, 40, orientation)
    assert ours.image.shape == theirs.shape and ours.image.dtype == np.uint8
    assert np.array_equal(ours.image, theirs)
    assert np.array_equal(read_image(path), theirs)


def test_masks_are_never_rotated():
    idx = np.zeros((20, 30), np.uint8)
    idx[:5] = 1
    im = Image.fromarray(idx, "P")
    im.putpalette(voc_palette(2).ravel().tolist())
    out = io.BytesIO()
    im.save(out, "PNG", exif=_exif(6))
    assert exif_orientation(out.getvalue()) == 6
    assert np.array_equal(decode_label(out.getvalue()).array, idx)


def test_sample_read_is_exif_upright(tmp_path, dsutil):
    root = tmp_path / "ds"
    img = np.zeros((20, 30, 3), np.uint8)
    img[:, :10] = 255
    ok, buf = cv2.imencode(".jpg", img)
    (root / "images").mkdir(parents=True)
    (root / "images" / "o.jpg").write_bytes(dsutil.jpeg_with_orientation(buf.tobytes(), 6))
    dsutil.write_png(root / "annotations" / "o.png", np.zeros((30, 20), np.uint8))  # upright size
    (root / "train.txt").write_text("images/o.jpg annotations/o.png\n")
    image, label = SegDataset(root)[0]
    assert image.shape == (30, 20, 3) and label.shape == (30, 20)
    assert np.array_equal(read_image(root / "images" / "o.jpg"), image)
    assert image[:8].mean() > 200 and image[-8:].mean() < 50  # rotated: the white band is on top


@pytest.mark.parametrize("repeated", [False, True], ids=["unique-colours", "repeated-colours"])
@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_palette_png_gives_indices_at_every_bit_depth(tmp_path, bits, repeated):
    ncol = 2**bits if bits < 8 else 21
    rng = np.random.default_rng(bits)
    idx = rng.integers(0, ncol, (19, 33)).astype(np.uint8)
    idx[5:15, 10:30] = ncol - 1
    pal = voc_palette(2**bits)
    if repeated:  # the upper half of the palette repeats colour 0: colours cannot tell the indices apart
        pal[max(1, ncol // 2) :] = 0
    im = Image.fromarray(idx, "P")
    im.putpalette(pal.ravel().tolist())
    p = tmp_path / f"p{bits}.png"
    im.save(p, bits=bits) if bits < 8 else im.save(p)
    data = p.read_bytes()
    assert data[24] == bits  # IHDR bit depth: the file really is a {bits}-bit palette PNG
    got = decode_label(data)
    assert got.kind == "palette" and got.format == "png"
    assert got.array.dtype == np.uint8 and np.array_equal(got.array, idx)
    assert np.array_equal(read_label(p), idx)
    got.array[0, 0] = 0  # a writable array, like every decoded array


def test_hand_written_palette_png_with_every_row_filter(dsutil):
    idx = np.random.default_rng(3).integers(0, 6, (23, 37)).astype(np.uint8)
    pal = voc_palette(256)
    pal[6:] = 0
    got = decode_label(dsutil.palette_png(idx, pal, (0, 1, 2, 3, 4)))
    assert got.kind == "palette" and np.array_equal(got.array, idx)


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF"])
def test_palette_masks_in_other_formats_give_indices(tmp_path, fmt):
    idx = np.random.default_rng(6).integers(0, 5, (17, 29)).astype(np.uint8)
    im = Image.fromarray(idx, "P")
    im.putpalette(voc_palette(256).ravel().tolist())
    out = io.BytesIO()
    im.save(out, fmt)
    got = decode_label(out.getvalue())
    assert got.kind == "palette" and np.array_equal(got.array, idx)


def _modes():
    rng = np.random.default_rng(8)
    bgr = cv2.GaussianBlur(rng.integers(0, 256, (31, 45, 3), dtype=np.uint8), (0, 0), 1)
    gray = bgr[:, :, 0]
    pal = Image.fromarray(gray // 16, "P")
    pal.putpalette(rng.integers(0, 256, 768).astype(np.uint8).tolist())

    def cv(ext, arr, *params):
        return lambda: cv2.imencode(ext, arr, list(params))[1].tobytes()

    def pil(im, fmt, **kw):
        def make():
            out = io.BytesIO()
            im.save(out, fmt, **kw)
            return out.getvalue()

        return make

    return {
        "gray8.png": cv(".png", gray),
        "gray16.png": cv(".png", gray.astype(np.uint16) * 257 + 3),
        "bgr16.png": cv(".png", bgr.astype(np.uint16) * 251),
        "bgra.png": cv(".png", np.dstack([bgr, gray])),
        "bgra16.png": cv(".png", np.dstack([bgr, gray]).astype(np.uint16) * 255),
        "la.png": pil(Image.fromarray(np.dstack([gray, bgr[:, :, 1]]), "LA"), "PNG"),
        "palette.png": pil(pal, "PNG"),
        "palette-trns.png": pil(pal, "PNG", transparency=3),
        "palette4.png": pil(pal, "PNG", bits=4),
        "1bit.png": pil(Image.fromarray(gray > 128), "PNG"),
        "gray.jpg": cv(".jpg", gray),
        "progressive.jpg": cv(".jpg", bgr, cv2.IMWRITE_JPEG_PROGRESSIVE, 1),
        "444.jpg": cv(".jpg", bgr, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444),
        "bgr.bmp": cv(".bmp", bgr),
        "palette.bmp": pil(pal, "BMP"),
        "bgr.tif": cv(".tif", bgr),
        "gray16.tif": cv(".tif", gray.astype(np.uint16) * 257),
        "lossless.webp": cv(".webp", bgr, cv2.IMWRITE_WEBP_QUALITY, 101),
        "lossy.webp": cv(".webp", bgr, cv2.IMWRITE_WEBP_QUALITY, 80),
        "rgba.webp": pil(Image.fromarray(np.dstack([bgr, gray]), "RGBA"), "WEBP", lossless=True),
        "palette.gif": pil(pal, "GIF"),
        "bgr.ppm": cv(".ppm", bgr),
        "gray.pgm": cv(".pgm", gray),
        "gray16.pgm": cv(".pgm", gray.astype(np.uint16) * 257 + 3),
    }


@pytest.mark.parametrize("name", list(_modes()))
def test_images_decode_like_opencv_imread(tmp_path, name):
    data = _modes()[name]()
    path = tmp_path / name
    path.write_bytes(data)
    theirs = cv2.imread(str(path), cv2.IMREAD_COLOR)
    ours = decode_image(data).image
    assert ours.dtype == np.uint8 and ours.ndim == 3 and ours.shape[2] == 3
    assert np.array_equal(ours, theirs)


def test_masks_keep_their_values_bit_depth_and_bgr_order():
    rng = np.random.default_rng(9)
    m16 = rng.integers(0, 65536, (12, 17)).astype(np.uint16)
    got = decode_label(cv2.imencode(".png", m16)[1].tobytes())
    assert got.kind == "gray" and got.array.dtype == np.uint16 and np.array_equal(got.array, m16)
    got = decode_label(cv2.imencode(".pgm", m16)[1].tobytes())
    assert got.kind == "gray" and got.array.dtype == np.uint16 and np.array_equal(got.array, m16)
    m8 = rng.integers(0, 256, (12, 17)).astype(np.uint8)
    got = decode_label(cv2.imencode(".png", m8)[1].tobytes())
    assert got.kind == "gray" and got.array.dtype == np.uint8 and np.array_equal(got.array, m8)
    bgr = rng.integers(0, 256, (12, 17, 3)).astype(np.uint8)
    got = decode_label(cv2.imencode(".png", bgr)[1].tobytes())
    assert got.kind == "color" and np.array_equal(got.array, bgr)
    bgra = rng.integers(0, 256, (12, 17, 4)).astype(np.uint8)
    got = decode_label(cv2.imencode(".png", bgra)[1].tobytes())
    assert got.kind == "color" and np.array_equal(got.array, bgra)


def test_palette_helpers():
    pal = voc_palette()
    assert pal.shape == (256, 3) and pal.dtype == np.uint8
    assert pal[0].tolist() == [0, 0, 0] and pal[1].tolist() == [128, 0, 0] and pal[15].tolist() == [192, 128, 128]
    assert pal[255].tolist() == [224, 224, 192]
    assert len({tuple(c) for c in pal}) == 256
    lab = np.array([[0, 1], [2, 255]], np.uint8)
    rgb = colorize(lab)
    assert rgb[0, 1].tolist() == [128, 0, 0] and colorize(lab, bgr=True)[0, 1].tolist() == [0, 0, 128]
    img = np.full((2, 2, 3), 100, np.uint8)
    assert np.array_equal(overlay(img, lab, alpha=0.0), img)
    assert np.array_equal(overlay(img, lab, alpha=1.0), colorize(lab, bgr=True))
    assert overlay(img, lab)[0, 1].tolist() == [50, 50, 114]
    with pytest.raises(ValueError):
        overlay(img, np.zeros((3, 3), np.uint8))


def test_decoder_detects_truncation_and_garbage(dsutil):
    rng = np.random.default_rng(5)
    img, mask = dsutil.draw_sample(rng, (32, 32))
    jpg = cv2.imencode(".jpg", img)[1].tobytes()
    prog = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes()
    png = cv2.imencode(".png", mask)[1].tobytes()
    flipped = bytearray(png)
    flipped[60] ^= 0xFF  # inside the image data

    cases = [
        (jpg[: len(jpg) // 2], "the JPEG is truncated"),
        (jpg[:-2], "the JPEG is truncated"),  # only the end-of-image marker missing
        (prog[: len(prog) * 3 // 4], "the JPEG is truncated"),
        (jpg[:200], "the JPEG is truncated"),  # headers only
        (png[: len(png) - 20], "the PNG is"),
        (png[:-12], "the PNG is truncated"),  # only the IEND chunk missing
        (png[:40], "the PNG is corrupt"),
        (bytes(flipped), "the PNG is corrupt"),
        (b"\x89PNG\r\n\x1a\n" + bytes(100), "the PNG is corrupt"),
        (b"", "empty"),
        (b"not an image at all", "not an image format"),
    ]
    for bad, message in cases:
        for decode in (decode_image, decode_label):
            with pytest.raises(DecodeError, match=message):
                decode(bad)
    assert exif_orientation(jpg[:20]) == 1 and exif_orientation(b"junk") == 1
    assert decode_image(jpg + b"trailing bytes").image.shape == (32, 32, 3)  # data after EOI is fine


def test_non_utf8_line_is_named_and_the_rest_is_read(tmp_path, dsutil):
    root = tmp_path / "ds"
    _pair(root, "a", dsutil)
    (root / "train.txt").write_bytes(
        b"images/a.png annotations/a.png\nimages/caf\xe9.png annotations/a.png\nimages/a.png annotations/a.png\n"
    )
    with pytest.raises(DatasetError, match=r"train.txt line 2: not UTF-8"):
        read_list(root, "train.txt")
    from segzoo.datasets import check_dataset

    r = check_dataset(root, tmp_path / "o", progress=False)
    codes = [(e["code"], e["line"]) for e in r["errors"]]
    assert ("bad_line", 2) in codes and r["attributes"]["train_samples"] == 2


def test_the_datasets_package_never_imports_paddle(good_dataset, tmp_path):
    import os
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import segzoo.datasets as d\n"
        "from segzoo.datasets import cli\n"
        f"d.check_dataset({str(good_dataset)!r}, {str(tmp_path / 'o')!r}, progress=False)\n"
        "d.SegDataset(" + repr(str(good_dataset)) + ")[0]\n"
        "assert not any(m == 'paddle' or m.startswith('paddle.') for m in sys.modules), 'paddle imported'\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
