"""LabelMe conversion against labelme's own example and its VOC masks.

The labelme 6.3.1 sdist (GPL) is downloaded at test time into a cache
directory outside the repository (``$SEGZOO_TEST_CACHE`` or
``~/.cache/segzoo-tests``); nothing from it is ever committed.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from segzoo.errors import DatasetError
from segzoo.datasets import SegDataset, check_dataset, convert_labelme, read_label

LABELME = "labelme-6.3.1"
EXAMPLE = f"{LABELME}/examples/semantic_segmentation"
# Measured on labelme 6.3.1's three example images: 0.20% of all pixels differ
# (0.14-0.26% per image), every one on a polygon edge (labelme fills with
# PIL.ImageDraw, segzoo with cv2.fillPoly). The bound leaves room for other
# OpenCV builds.
MAX_DISAGREEMENT = 0.005


def _cache_dir() -> Path:
    return Path(os.environ.get("SEGZOO_TEST_CACHE") or Path.home() / ".cache" / "segzoo-tests")


@pytest.fixture(scope="module")
def labelme_example() -> Path:
    cache = _cache_dir()
    target = cache / EXAMPLE
    if (target / "data_annotated").is_dir() and (target / "data_dataset_voc" / "class_names.txt").is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    sdist = cache / f"{LABELME}.tar.gz"
    if not sdist.is_file():
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               "labelme==6.3.1", "-d", str(cache)]
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as exc:
            pytest.skip(f"cannot download the labelme 6.3.1 sdist (no network?): {exc}")
        if p.returncode != 0 or not sdist.is_file():
            tail = (p.stderr or p.stdout).strip().splitlines()[-1:] or [""]
            pytest.skip(f"cannot download the labelme 6.3.1 sdist (no network?): {tail[0]}")
    with tarfile.open(sdist) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith(EXAMPLE + "/")]
        try:
            tar.extractall(cache, members=members, filter="data")
        except TypeError:  # Python without extraction filters
            tar.extractall(cache, members=members)
    return target


def _their_label(path: Path) -> np.ndarray:
    try:
        import PIL.Image
    except ImportError:  # PIL comes with imgviz; without it our own palette reader is used
        return read_label(path)
    with PIL.Image.open(path) as im:
        assert im.mode == "P"
        return np.asarray(im)


def _edge_band(shapes, shape_hw) -> np.ndarray:
    """Pixels within about 1.5 px of any drawn shape outline."""
    band = np.zeros(shape_hw, np.uint8)
    for s in shapes:
        pts = np.round((np.asarray(s["points"], float) - 0.5) * 256).astype(np.int32)
        cv2.polylines(band, [pts], True, 1, thickness=3, lineType=cv2.LINE_8, shift=8)
    return band.astype(bool)


def test_matches_labelme_voc_masks(labelme_example, tmp_path):
    src = labelme_example / "data_annotated"
    voc = labelme_example / "data_dataset_voc"
    dst = tmp_path / "seg"
    report = convert_labelme(src, dst)
    assert report.num_images == 3 and report.layout == "flat" and report.uses_ignore
    assert report.class_names[0] == "_background_"
    assert report.train_samples + report.val_samples == 3 and report.val_samples == 1
    assert (dst / "class_name.txt").read_text().splitlines() == report.class_names
    theirs = [n.strip() for n in (voc / "class_names.txt").read_text().splitlines() if n.strip()]
    mapping = np.zeros(256, np.int64)
    for ours_id, name in enumerate(report.class_names):
        mapping[ours_id] = theirs.index(name)  # by name
    mapping[255] = 255
    total_diff = total = 0
    for json_path in sorted(src.glob("*.json")):
        stem = json_path.stem
        ours = read_label(dst / "annotations" / f"{stem}.png")
        raw = cv2.imread(str(dst / "annotations" / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
        assert raw.ndim == 2 and raw.dtype == np.uint8  # single-channel 8-bit PNG
        their = _their_label(voc / "SegmentationClass" / f"{stem}.png")
        assert np.array_equal(read_label(voc / "SegmentationClass" / f"{stem}.png"), their)  # our palette reader
        npy = np.load(voc / "SegmentationClassNpy" / f"{stem}.npy")
        assert np.array_equal(np.where(npy == -1, 255, npy), their)
        assert ours.shape == their.shape
        diff = mapping[ours] != their
        data = json.loads(json_path.read_text())
        band = _edge_band(data["shapes"], ours.shape)
        assert not (diff & ~band).any(), f"{stem}: {int((diff & ~band).sum())} differing pixels away from edges"
        assert diff.mean() < MAX_DISAGREEMENT, f"{stem}: {diff.mean():.4%}"
        total_diff += int(diff.sum())
        total += diff.size
        # the copied image is the original, byte for byte
        assert (dst / "images" / f"{stem}.jpg").read_bytes() == (src / f"{stem}.jpg").read_bytes()
    assert total_diff / total < MAX_DISAGREEMENT
    print(f"labelme disagreement: {total_diff} of {total} pixels ({total_diff / total:.3%})")
    # the converted dataset reads and checks (its 3 images leave some val classes out of train)
    assert len(SegDataset(dst, "train")) == report.train_samples
    result = check_dataset(dst, tmp_path / "check", progress=False)
    assert set(result["error_counts"]) <= {"class_missing_in_train"}


def _image(tmp_path_or_dir: Path, name: str, size=(30, 40)) -> Path:
    img = np.full((*size, 3), 90, np.uint8)
    p = tmp_path_or_dir / name
    p.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(p), img)
    return p


def _json(path: Path, image_path, shapes, image_data=None, hw=(30, 40)):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {"version": "5.0.1", "flags": {}, "shapes": shapes, "imagePath": image_path, "imageData": image_data,
             "imageHeight": hw[0], "imageWidth": hw[1]}
        )
    )


def _poly(label, pts=((2, 2), (20, 3), (10, 20)), **extra):
    return {"label": label, "points": [list(p) for p in pts], "group_id": None, "shape_type": "polygon",
            "flags": {}, **extra}


def test_class_numbering_shape_order_and_shape_types(tmp_path):
    src = tmp_path / "lm"
    _image(src, "a.jpg")
    _image(src, "b.png")
    _image(src, "c.jpg")
    _json(src / "a.json", "a.jpg", [
        _poly("zebra", ((0, 0), (40, 0), (40, 30), (0, 30))),
        _poly("__ignore__", ((30, 20), (39, 20), (39, 29), (30, 29))),
        {"label": "apple", "points": [[1, 1], [9, 9]], "shape_type": "rectangle"},
        {"label": "wire", "points": [[1, 1], [9, 9]], "shape_type": "line"},
        {"label": "dot", "points": [[5, 5]], "shape_type": "point"},
    ])
    mask_bits = np.zeros((4, 5), np.uint8)
    mask_bits[1:3, 1:4] = 255
    mask_b64 = base64.b64encode(cv2.imencode(".png", mask_bits)[1].tobytes()).decode()
    _json(src / "b.json", "b.png", [
        {"label": "_background_", "points": [[1, 1], [3, 3]], "shape_type": "rectangle"},
        {"label": "kiwi", "points": [[20, 15], [20, 20]], "shape_type": "circle"},
        {"label": "zebra", "points": [[30, 2], [34, 5]], "shape_type": "mask", "mask": mask_b64},
    ])
    _json(src / "c.json", "c.jpg", [_poly("apple")])
    report = convert_labelme(src, tmp_path / "seg")
    assert report.class_names == ["_background_", "zebra", "apple", "kiwi"]  # first appearance, sorted files
    assert report.skipped_shapes == 2 and len(report.warnings) == 2
    assert {w["shape"] for w in report.warnings} == {3, 4} and all(w["file"] == "a.json" for w in report.warnings)
    a = read_label(tmp_path / "seg" / "annotations" / "a.png")
    assert a[15, 15] == 1 and a[25, 35] == 255 and a[5, 5] == 2  # later shapes overwrite earlier ones
    b = read_label(tmp_path / "seg" / "annotations" / "b.png")
    assert b[17, 20] == 3 and b[0, 0] == 0 and b[3, 32] == 1 and b[2, 30] == 0
    assert (tmp_path / "seg" / "images" / "b.png").is_file()
    names = (tmp_path / "seg" / "class_name.txt").read_text().splitlines()
    assert names == ["_background_", "zebra", "apple", "kiwi"]


def test_errors_are_reported_together_and_leave_no_output(tmp_path):
    src = tmp_path / "lm"
    _image(src, "good.jpg")
    _json(src / "good.json", "good.jpg", [_poly("cat")])
    (src / "broken.json").write_text('{"shapes": [\n  {"label": "cat",, }\n]}')
    _json(src / "lost.json", "nowhere/lost.jpg", [_poly("cat")])
    _image(src, "short.jpg")
    _json(src / "short.json", "short.jpg", [_poly("cat"), _poly("dog", ((1, 1), (5, 5)))])
    dst = tmp_path / "out" / "seg"
    with pytest.raises(DatasetError) as info:
        convert_labelme(src, dst)
    msg = str(info.value)
    assert "broken.json: not valid JSON" in msg and "line 2 column" in msg
    assert "lost.json: image not found" in msg and "nowhere/lost.jpg" in msg
    assert "short.json: shape #1" in msg and "at least 3 points" in msg
    problems = info.value.problems
    assert {p["file"] for p in problems} == {"broken.json", "lost.json", "short.json"}
    assert [p["shape"] for p in problems if p["file"] == "short.json"] == [1]
    assert not dst.exists()
    assert list((tmp_path / "out").iterdir()) == []  # no temporary sibling left either


def test_image_data_fallback_and_paddlex_layout(tmp_path):
    src = tmp_path / "px"
    for i in range(4):
        _image(src / "images", f"im{i}.jpg")
        _json(src / "annotations" / f"im{i}.json", f"../images/im{i}.jpg", [_poly("road")])
    # imagePath written as on another machine: found through images/<basename>
    _json(src / "annotations" / "im0.json", "C:\\data\\images\\im0.jpg", [_poly("car")])
    # no image file at all, but embedded imageData
    payload = base64.b64encode(cv2.imencode(".png", np.full((30, 40, 3), 50, np.uint8))[1].tobytes()).decode()
    _json(src / "annotations" / "emb.json", "gone.png", [_poly("road")], image_data=payload)
    (src / "train_anno_list.txt").write_text("annotations/im0.json\nannotations/im1.json\nannotations/emb.json\n")
    (src / "val_anno_list.txt").write_text("annotations/im2.json\r\n\nannotations\\im3.json\n")
    report = convert_labelme(src, tmp_path / "seg")
    assert report.layout == "paddlex" and report.num_images == 5
    assert (report.train_samples, report.val_samples) == (3, 2)
    assert report.class_names == ["_background_", "road", "car"]  # emb.json sorts first
    assert (tmp_path / "seg" / "images" / "emb.png").is_file()
    val = (tmp_path / "seg" / "val.txt").read_text().splitlines()
    assert val == ["images/im2.jpg annotations/im2.png", "images/im3.jpg annotations/im3.png"]
    assert check_dataset(tmp_path / "seg", tmp_path / "chk", progress=False)["check_pass"]


def test_seeded_split_overwrite_and_exif(tmp_path, dsutil):
    src = tmp_path / "lm"
    for i in range(10):
        _image(src, f"s{i}.jpg")
        _json(src / f"s{i}.json", f"s{i}.jpg", [_poly("a")])
    r1 = convert_labelme(src, tmp_path / "d1", seed=3)
    r2 = convert_labelme(src, tmp_path / "d2", seed=3)
    assert (r1.train_samples, r1.val_samples) == (8, 2)
    assert (tmp_path / "d1" / "val.txt").read_text() == (tmp_path / "d2" / "val.txt").read_text()
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(DatasetError, match="not empty"):
        convert_labelme(src, other)
    assert (other / "keep.txt").read_text() == "mine"
    convert_labelme(src, other, overwrite=True)
    assert not (other / "keep.txt").exists() and (other / "train.txt").is_file()
    convert_labelme(src, tmp_path / "d1", seed=4)  # its own earlier output: replaced without overwrite
    with pytest.raises(DatasetError, match="overlaps"):
        convert_labelme(src, src / "inside")
    # an EXIF-rotated JPEG: the mask is drawn at the upright size labelme shows
    exif_src = tmp_path / "exif"
    exif_src.mkdir()
    jpg = cv2.imencode(".jpg", np.full((30, 40, 3), 80, np.uint8))[1].tobytes()
    for name in ("r0", "r1"):
        (exif_src / f"{name}.jpg").write_bytes(dsutil.jpeg_with_orientation(jpg, 6))
        _json(exif_src / f"{name}.json", f"{name}.jpg", [_poly("a")], hw=(40, 30))
    convert_labelme(exif_src, tmp_path / "exif_seg")
    assert read_label(tmp_path / "exif_seg" / "annotations" / "r0.png").shape == (40, 30)
    assert check_dataset(tmp_path / "exif_seg", tmp_path / "c", progress=False)["check_pass"]
