"""The dataset checker on real files: a good dataset, and one seeded with every problem."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from segzoo.errors import ConfigError, DatasetError
from segzoo.datasets import PROBLEM_CODES, check_dataset, check_dataset_from_config
from segzoo.datasets import cli as ds_cli

PADDLEX_KEYS = {"done_flag", "check_pass", "attributes", "analysis", "dataset_path", "show_type", "dataset_type"}


def _valid_png(path):
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert img is not None and img.size > 0, path
    return img


def test_good_dataset_passes_and_writes_every_output(good_dataset, tmp_path):
    out = tmp_path / "out"
    result = check_dataset(good_dataset, out, progress=False, sample_num=3)
    assert result["check_pass"] is True, result["errors"]
    assert result["errors"] == []
    on_disk = json.loads((out / "check_dataset_result.json").read_text())
    assert on_disk == result
    assert PADDLEX_KEYS <= set(result)
    assert result["done_flag"] is True
    assert result["show_type"] == "image" and result["dataset_type"] == "SegDataset"
    assert result["dataset_path"] == str(good_dataset)
    attrs = result["attributes"]
    assert set(attrs) == {"train_samples", "val_samples", "num_classes", "train_sample_paths", "val_sample_paths"}
    assert attrs["train_samples"] == 8 and attrs["val_samples"] == 4
    assert attrs["num_classes"] == 4 and result["num_classes_source"] == "inferred from train"
    assert len(attrs["train_sample_paths"]) == 3 and len(attrs["val_sample_paths"]) == 3
    for rel in attrs["train_sample_paths"] + attrs["val_sample_paths"]:
        img = _valid_png(out / rel)
        assert img.shape == (48, 64, 3)
    hist = _valid_png(out / result["analysis"]["histogram"])
    assert hist.ndim == 3 and hist.shape[0] > 300 and hist.shape[1] > 300
    stats = {s["class_id"]: s for s in result["class_stats"]}
    assert sorted(stats) == [0, 1, 2, 3]
    for c in (1, 2, 3):
        assert stats[c]["train_images"] == 8 and stats[c]["val_images"] == 4
        assert 0 < stats[c]["train_pixel_share"] < 1
    assert stats[1]["name"] == "disc"
    assert abs(sum(s["train_pixel_share"] for s in stats.values()) - 1) < 1e-4
    # a second run replaces its own overlays
    result2 = check_dataset(good_dataset, out, progress=False, sample_num=1)
    assert len(os.listdir(out / "demo_img")) == 2 and result2["check_pass"]


def _line_no(text: str, needle: str) -> int:
    for i, line in enumerate(text.splitlines(), 1):
        if line.strip().startswith(needle):
            return i
    raise AssertionError(needle)


@pytest.fixture
def bad_dataset(tmp_path, dsutil):
    """A dataset seeded with every per-file and per-list problem at once."""
    root = tmp_path / "bad"
    rng = np.random.default_rng(7)
    dsutil.make_segdataset(root, n_train=3, n_val=2, classes=(1, 2), seed=1)
    img_dir, ann_dir = root / "images", root / "annotations"

    def pair(stem, size=(48, 64), classes=(1, 2)):
        image, mask = dsutil.draw_sample(rng, size, classes)
        dsutil.write_jpg(img_dir / f"{stem}.jpg", image)
        dsutil.write_png(ann_dir / f"{stem}.png", mask)
        return image, mask

    pair("missing_label")
    (ann_dir / "missing_label.png").unlink()
    pair("missing_image")
    (img_dir / "missing_image.jpg").unlink()
    pair("empty_image")
    (img_dir / "empty_image.jpg").write_bytes(b"")
    pair("empty_label")
    (ann_dir / "empty_label.png").write_bytes(b"")
    pair("garbage_image")
    (img_dir / "garbage_image.jpg").write_bytes(os.urandom(500))
    pair("trunc_image")
    data = (img_dir / "trunc_image.jpg").read_bytes()
    (img_dir / "trunc_image.jpg").write_bytes(data[: len(data) // 2])
    pair("garbage_label")
    (ann_dir / "garbage_label.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(100))
    _, m = pair("rgb_label")
    dsutil.write_png(ann_dir / "rgb_label.png", cv2.applyColorMap(m * 60, cv2.COLORMAP_JET))
    _, m = pair("palette_label")  # fine: indices are class ids
    from segzoo.datasets import voc_palette

    (ann_dir / "palette_label.png").write_bytes(dsutil.palette_png(m, voc_palette(256), (0, 1, 4)))
    _, m = pair("zero255_label")
    dsutil.write_png(ann_dir / "zero255_label.png", np.where(m > 0, 255, 0).astype(np.uint8))
    _, m = pair("out_of_range")
    m[:4, :4] = 7
    m[-3:, -3:] = 9
    dsutil.write_png(ann_dir / "out_of_range.png", m)
    _, m = pair("wrong_size")
    dsutil.write_png(ann_dir / "wrong_size.png", cv2.resize(m, (32, 24), interpolation=cv2.INTER_NEAREST))
    image, m = pair("exif_rotated", size=(40, 64))
    jpg = cv2.imencode(".jpg", image)[1].tobytes()
    (img_dir / "exif_rotated.jpg").write_bytes(dsutil.jpeg_with_orientation(jpg, 6))  # read as 40 wide, 64 high
    _, m = pair("sixteen_bit")
    dsutil.write_png(ann_dir / "sixteen_bit.png", m.astype(np.uint16))
    _, m = pair("jpeg_label")
    dsutil.write_jpg(ann_dir / "jpeg_label.jpg", m)
    pair("a_directory")
    (img_dir / "a_directory.jpg").unlink()
    (img_dir / "a_directory.jpg").mkdir()
    pair("val_only_class", classes=(1, 2, 3))

    def line(stem, label_ext=".png"):
        return f"images/{stem}.jpg annotations/{stem}{label_ext}"

    train = (root / "train.txt").read_text().splitlines()
    first_train = train[0]
    train += [
        "",
        line("missing_image"),
        line("missing_label"),
        line("empty_image"),
        line("empty_label"),
        line("garbage_image"),
        line("trunc_image"),
        line("garbage_label"),
        line("rgb_label"),
        line("palette_label"),
        line("zero255_label"),
        line("out_of_range"),
        line("wrong_size"),
        line("exif_rotated"),
        line("sixteen_bit"),
        line("jpeg_label", ".jpg"),
        line("a_directory"),
        "images/only_one_path.jpg",
        "../outside.jpg annotations/x.png",
        first_train,  # the same pair again
    ]
    train_text = "\n".join(train) + "\n"
    (root / "train.txt").write_text("\ufeff" + train_text, encoding="utf-8")
    val = (root / "val.txt").read_text().splitlines()
    val += [line("val_only_class"), first_train]  # class 3 only in val; a train image in val
    val_text = "\n".join(val) + "\n"
    (root / "val.txt").write_text(val_text, encoding="utf-8")
    return root, train_text, val_text


def test_every_problem_is_reported_at_once(bad_dataset, tmp_path):
    root, train_text, val_text = bad_dataset
    out = tmp_path / "out"
    result = check_dataset(root, out, num_classes=4, progress=False)
    assert result["check_pass"] is False
    assert result["done_flag"] is True
    errs = result["errors"]
    got = {(e["code"], e["file"], e["line"]) for e in errs}

    def tl(stem):
        return _line_no(train_text, f"images/{stem}.jpg")

    dup_line = len(train_text.splitlines())
    expected = {
        ("missing_image", "images/missing_image.jpg", tl("missing_image")),
        ("missing_label", "annotations/missing_label.png", tl("missing_label")),
        ("empty_file", "images/empty_image.jpg", tl("empty_image")),
        ("empty_file", "annotations/empty_label.png", tl("empty_label")),
        ("corrupt_image", "images/garbage_image.jpg", tl("garbage_image")),
        ("corrupt_image", "images/trunc_image.jpg", tl("trunc_image")),
        ("corrupt_label", "annotations/garbage_label.png", tl("garbage_label")),
        ("label_not_single_channel", "annotations/rgb_label.png", tl("rgb_label")),
        ("label_0_255", "annotations/zero255_label.png", tl("zero255_label")),
        ("label_out_of_range", "annotations/out_of_range.png", tl("out_of_range")),
        ("size_mismatch", "annotations/wrong_size.png", tl("wrong_size")),
        ("exif_orientation", "images/exif_rotated.jpg", tl("exif_rotated")),
        ("label_not_8bit", "annotations/sixteen_bit.png", tl("sixteen_bit")),
        ("label_jpeg", "annotations/jpeg_label.jpg", tl("jpeg_label")),
        ("unreadable_file", "images/a_directory.jpg", tl("a_directory")),
        ("bad_line", "train.txt", tl("only_one_path")),
        ("outside_root", "train.txt", _line_no(train_text, "../outside.jpg")),
        ("duplicate_entry", "train.txt", dup_line),
        ("train_val_overlap", "val.txt", len(val_text.splitlines())),
        ("class_missing_in_train", "annotations/val_only_class.png", _line_no(val_text, "images/val_only_class")),
    }
    missing = expected - got
    assert not missing, f"not reported: {missing}\nall: {sorted(got)}"
    unexpected = got - expected
    assert not unexpected, f"unexpected: {unexpected}"
    assert tl("palette_label") not in {e["line"] for e in errs if e["list_file"] == "train.txt"}
    assert result["error_counts"]["corrupt_image"] == 2
    by_code = {e["code"]: e for e in errs}
    assert "7, 9" in by_code["label_out_of_range"]["message"]
    assert "divide" in by_code["label_0_255"]["message"]
    assert "EXIF orientation 6" in by_code["exif_orientation"]["message"]
    assert "same image and mask as train.txt line 1" in by_code["duplicate_entry"]["message"]
    assert "class 3" in by_code["class_missing_in_train"]["message"]
    for e in errs:
        assert e["code"] in PROBLEM_CODES
        if e["line"] is not None:
            assert f"line {e['line']}" in e["message"]
    # the overlays and histogram are still written
    assert (out / "histogram.png").is_file()
    assert all((out / p).is_file() for p in result["attributes"]["train_sample_paths"])
    # the summary groups by code and names files
    summary = ds_cli.format_summary(result)
    assert "label_out_of_range (1)" in summary and "annotations/out_of_range.png" in summary


def test_missing_list_file_and_empty_split(good_dataset, tmp_path):
    (good_dataset / "val.txt").unlink()
    r = check_dataset(good_dataset, tmp_path / "o1", progress=False)
    assert not r["check_pass"]
    assert [(e["code"], e["file"], e["line"]) for e in r["errors"]] == [("missing_list_file", "val.txt", None)]
    (good_dataset / "val.txt").write_text("\n\n")
    r = check_dataset(good_dataset, tmp_path / "o2", progress=False)
    assert [(e["code"], e["file"]) for e in r["errors"]] == [("empty_split", "val.txt")]


def test_all_binary_masks_stored_as_0_255(tmp_path, dsutil):
    root = dsutil.make_segdataset(tmp_path / "bin", n_train=4, n_val=2, classes=(1,), class_names=False)
    for p in (root / "annotations").glob("*.png"):
        m = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        dsutil.write_png(p, (m * 255).astype(np.uint8))
    r = check_dataset(root, tmp_path / "o", progress=False)
    assert r["error_counts"] == {"label_0_255": 6}
    # with 255 used as ignore next to real classes, {0,255} masks are legitimate
    root2 = dsutil.make_segdataset(tmp_path / "ign", n_train=4, n_val=2, classes=(1, 2), class_names=False)
    masks = sorted((root2 / "annotations").glob("*.png"))
    m = cv2.imread(str(masks[0]), cv2.IMREAD_UNCHANGED)
    m[:3] = 255
    dsutil.write_png(masks[0], m)
    dsutil.write_png(masks[1], np.where(cv2.imread(str(masks[1]), 0) > 0, 255, 0).astype(np.uint8))
    r2 = check_dataset(root2, tmp_path / "o2", progress=False, num_classes=3)
    assert r2["check_pass"], r2["errors"]


def test_inferred_num_classes_flags_larger_val_values(tmp_path, dsutil):
    root = dsutil.make_segdataset(tmp_path / "d", n_train=3, n_val=2, classes=(1, 2), class_names=False)
    r = check_dataset(root, tmp_path / "o", progress=False)
    assert r["attributes"]["num_classes"] == 3 and r["check_pass"]
    m = cv2.imread(str(root / "annotations" / "val_00001.png"), 0)
    m[:2, :2] = 5
    dsutil.write_png(root / "annotations" / "val_00001.png", m)
    r = check_dataset(root, tmp_path / "o", progress=False)
    codes = {(e["code"], e["file"]) for e in r["errors"]}
    assert ("label_out_of_range", "annotations/val_00001.png") in codes
    assert ("class_missing_in_train", "annotations/val_00001.png") in codes


def test_bad_arguments_are_config_errors(good_dataset, tmp_path):
    with pytest.raises(ConfigError, match="num_classes"):
        check_dataset(good_dataset, tmp_path, num_classes=0)
    with pytest.raises(DatasetError, match="not found"):
        check_dataset(tmp_path / "nope", tmp_path)


def test_from_config_convert_split_check(tmp_path, dsutil):
    src = tmp_path / "lm"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        image, _ = dsutil.draw_sample(rng, (40, 50))
        dsutil.write_jpg(src / f"im{i}.jpg", image)
        shapes = [{"label": "cat", "points": [[5, 5], [30, 6], [20, 30]], "shape_type": "polygon"}]
        if i % 2:
            shapes.append({"label": "dog", "points": [[25, 20], [45, 35]], "shape_type": "rectangle"})
        (src / f"im{i}.json").write_text(
            json.dumps({"imagePath": f"im{i}.jpg", "imageData": None, "shapes": shapes, "imageHeight": 40, "imageWidth": 50})
        )
    dst = tmp_path / "seg"
    cfg = {
        "convert": {"enable": True, "src_dataset_type": "LabelMe", "src_dataset_dir": str(src)},
        "split": {"enable": True, "train_percent": 60, "val_percent": 40},
    }
    r = check_dataset_from_config(cfg, dst, tmp_path / "out", progress=False)
    assert r["convert"]["num_images"] == 5 and r["split"]["val_samples"] == 2
    assert r["attributes"]["train_samples"] == 3 and r["attributes"]["num_classes"] in (2, 3)
    # running the same config again re-converts over its own earlier output
    r = check_dataset_from_config(cfg, dst, tmp_path / "out", progress=False)
    assert r["convert"]["num_images"] == 5
    with pytest.raises(ConfigError, match="CheckDataset.split.val_percent"):
        check_dataset_from_config({"split": {"enable": True, "train_percent": 70, "val_percent": 20}}, dst, tmp_path)
    with pytest.raises(ConfigError, match="src_dataset_type"):
        check_dataset_from_config({"convert": {"enable": True, "src_dataset_type": "COCO"}}, dst, tmp_path)
    with pytest.raises(ConfigError, match="src_dataset_dir"):
        check_dataset_from_config({"convert": {"enable": True, "src_dataset_type": "LabelMe"}}, dst, tmp_path)


def _args(*argv):
    parser = argparse.ArgumentParser()
    ds_cli.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_cli_run_exit_codes_and_summary(good_dataset, bad_dataset, tmp_path, capsys):
    assert ds_cli.run(_args(str(good_dataset), "--output", str(tmp_path / "o"), "--no-progress")) == 0
    out = capsys.readouterr().out
    assert "train: 8 samples, val: 4 samples" in out and "check: passed" in out
    root = bad_dataset[0]
    assert ds_cli.run(_args(str(root), "--output", str(tmp_path / "o2"), "--num-classes", "4", "--no-progress")) == 1
    out = capsys.readouterr().out
    assert "check: FAILED" in out and "missing_image (1)" in out and "images/missing_image.jpg" in out
    with pytest.raises(ConfigError, match="--split"):
        ds_cli.run(_args(str(good_dataset), "--split", "80"))
    with pytest.raises(ConfigError, match="--split.val_percent"):
        ds_cli.run(_args(str(good_dataset), "--split", "80,30"))
    with pytest.raises(ConfigError, match="--convert-src"):
        ds_cli.run(_args(str(good_dataset), "--convert", "labelme"))
    # split then check through the CLI
    assert ds_cli.run(_args(str(good_dataset), "--output", str(tmp_path / "o3"), "--split", "50,50", "--no-progress")) == 0
    assert len((good_dataset / "val.txt").read_text().splitlines()) == 6
    assert (good_dataset / "train.txt.bak").is_file()


def test_progress_bar_goes_to_stderr(good_dataset, tmp_path):
    code = (
        "from segzoo.datasets import check_dataset;"
        f"check_dataset({str(good_dataset)!r}, {str(tmp_path / 'o')!r}, sample_num=0)"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "checking train.txt" in p.stderr and "100%" in p.stderr and p.stdout == ""
