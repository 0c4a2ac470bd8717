"""SegDataset reader: list-file rules, decoding, EXIF, palette PNGs, palette helpers."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest

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
from segzoo.datasets._imageio import decode_image, decode_label


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


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_opencv(dsutil, orientation):
    img = np.zeros((40, 60, 3), np.uint8)
    img[:10, :20] = (255, 0, 0)
    img[30:, 50:] = (0, 0, 255)
    img[5:15, 40:55] = (0, 255, 0)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 100])
    data = dsutil.jpeg_with_orientation(buf.tobytes(), orientation)
    ours = decode_image(data)
    theirs = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)  # applies EXIF
    assert ours.orientation == orientation
    assert ours.stored_size == (60, 40)
    assert ours.image.shape == theirs.shape
    assert np.array_equal(ours.image, theirs)


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


@pytest.mark.parametrize("filters", [(0,), (1,), (2,), (3,), (4,), (0, 1, 2, 3, 4)])
def test_palette_png_gives_indices_even_with_repeated_colours(filters, dsutil):
    pil = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(3)
    idx = rng.integers(0, 6, (23, 37)).astype(np.uint8)
    idx[5:15, 10:30] = 4
    unique_pal = voc_palette(256)
    repeated = voc_palette(256)
    repeated[6:] = 0  # padded palette: colour of index 0 repeats -> ambiguous colours
    for pal in (unique_pal, repeated):
        data = dsutil.palette_png(idx, pal, filters)
        ref = np.asarray(pil.open(io.BytesIO(data)))
        got = decode_label(data)
        assert got.kind == "palette"
        assert np.array_equal(ref, idx)
        assert np.array_equal(got.array, idx)


def test_pil_palette_png_and_low_bit_depths(tmp_path):
    pil = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(4)
    for ncol, bits in ((2, 1), (4, 2), (16, 4), (21, 8)):
        idx = rng.integers(0, ncol, (19, 33)).astype(np.uint8)
        im = pil.fromarray(idx, "P")
        im.putpalette(voc_palette(ncol).ravel().tolist())
        p = tmp_path / f"p{bits}.png"
        im.save(p, bits=bits) if bits < 8 else im.save(p)
        assert np.array_equal(read_label(p), idx)


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
    png = cv2.imencode(".png", mask)[1].tobytes()
    from segzoo.datasets._imageio import DecodeError

    for bad in (jpg[: len(jpg) // 2], b"", b"not an image at all"):
        with pytest.raises(DecodeError):
            decode_image(bad)
    for bad in (png[: len(png) - 20], png[:40], b""):
        with pytest.raises(DecodeError):
            decode_label(bad)


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
