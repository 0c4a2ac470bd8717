"""SegResult: printing, JSON, images, file names and collisions."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from segzoo import ConfigError
from segzoo.datasets.palette import colorize, voc_palette


def test_print_and_json_keys(tiny, make_image, capsys):
    res = next(tiny.predictor.predict(make_image(1)))
    res.print()
    printed = json.loads(capsys.readouterr().out)
    assert printed == {"res": {"input_path": None, "page_index": None, "pred": "..."}}
    res.print(format_json=False)
    assert capsys.readouterr().out.strip() == "{'res': {'input_path': None, 'page_index': None, 'pred': '...'}}"
    res.print(indent=2)
    assert capsys.readouterr().out.startswith('{\n  "res": {')
    data = res.json
    assert list(data) == ["res"] and list(data["res"]) == ["input_path", "page_index", "pred"]
    assert np.array_equal(np.array(data["res"]["pred"]), res.pred)
    assert res["pred"] is res.pred and res["input_path"] is None


def test_non_ascii_paths_print(tiny, make_image, save_image, tmp_path, capsys):
    path = save_image(tmp_path / "straße_图.png", make_image(2))
    res = next(tiny.predictor.predict(path))
    res.print()
    assert "straße_图.png" in capsys.readouterr().out
    res.print(ensure_ascii=True)
    assert "\\u56fe" in capsys.readouterr().out


def test_img_is_voc_coloured_bgr_and_overlay(tiny, make_image):
    image = make_image(3)
    res = next(tiny.predictor.predict(image))
    img = res.img
    assert set(img) == {"res", "overlay"}
    assert np.array_equal(img["res"], colorize(res.pred, bgr=True))
    assert np.array_equal(img["res"][..., ::-1], voc_palette()[res.pred])  # BGR of the VOC RGB palette
    want = np.clip(np.rint(image.astype(np.float32) * 0.5 + img["res"].astype(np.float32) * 0.5), 0, 255)
    assert np.array_equal(img["overlay"], want.astype(np.uint8))
    assert img["overlay"].dtype == np.uint8 and img["overlay"].shape == image.shape


def test_saving_into_a_directory_uses_paddlex_names(tiny, make_image, save_image, pdf_maker, tmp_path):
    src = save_image(tmp_path / "in" / "street.png", make_image(4))
    pdf = pdf_maker(tmp_path / "in" / "doc.pdf", 2)
    out = tmp_path / "out"
    results = list(tiny.predictor.predict([src, pdf, make_image(5)]))
    for r in results:
        r.save_to_json(out)
        r.save_to_img(out)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{stem}_{kind}"
        for stem in ("street", "doc_0", "doc_1", "array_0")
        for kind in ("res.json", "res.png", "overlay.png")
    )
    saved = json.loads((out / "doc_1_res.json").read_text(encoding="utf-8"))
    assert saved["res"]["input_path"] == str(pdf) and saved["res"]["page_index"] == 1
    assert np.array_equal(np.array(saved["res"]["pred"], np.uint8), results[2].pred)
    png = cv2.imread(str(out / "street_res.png"))
    assert np.array_equal(png, colorize(results[0].pred, bgr=True))
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "temporary files left behind"


def test_saving_to_file_paths(tiny, make_image, tmp_path):
    res = next(tiny.predictor.predict(make_image(6)))
    assert res.save_to_json(tmp_path / "a" / "mine.json") == tmp_path / "a" / "mine.json"
    paths = res.save_to_img(tmp_path / "b" / "mask.png")
    assert paths == {"res": tmp_path / "b" / "mask.png", "overlay": tmp_path / "b" / "mask_overlay.png"}
    assert all(p.is_file() for p in paths.values())
    assert json.loads((tmp_path / "a" / "mine.json").read_text())["res"]["page_index"] is None
    with pytest.raises(ConfigError, match=r"mask\.txt"):
        res.save_to_img(tmp_path / "mask.txt")


def test_same_name_from_different_inputs_gets_a_suffix(tiny, make_image, save_image, tmp_path):
    """a/x.png and b/x.png in one run: the second is saved as x_1; saving again keeps the names."""
    a = save_image(tmp_path / "a" / "x.png", make_image(7))
    b = save_image(tmp_path / "b" / "x.png", make_image(8, (40, 30)))
    c = save_image(tmp_path / "c" / "x_1.png", make_image(9))
    out = tmp_path / "out"
    results = list(tiny.predictor.predict([a, b, c, a]))
    names = [r.save_to_json(out).name for r in results]
    assert names == ["x_res.json", "x_1_res.json", "x_1_1_res.json", "x_res.json"]
    assert results[1].save_to_img(out)["res"].name == "x_1_res.png"
    assert results[1].save_to_json(out).name == "x_1_res.json"
    stored = {n: json.loads((out / n).read_text())["res"]["input_path"] for n in set(names)}
    assert stored == {"x_res.json": str(a), "x_1_res.json": str(b), "x_1_1_res.json": str(c)}
    # another directory starts fresh
    assert results[1].save_to_json(tmp_path / "other").name == "x_res.json"
    # a later run overwrites, as PaddleX does
    again = next(tiny.predictor.predict(b))
    assert again.save_to_json(out).name == "x_res.json"
    assert json.loads((out / "x_res.json").read_text())["res"]["input_path"] == str(b)


def test_more_than_256_classes_give_int32(point_model, make_image):
    import warnings

    from segzoo.inference import create_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = create_model(point_model, num_classes=300, hidden=4, pretrained=False)
    res = next(model.predict(make_image(10)))
    assert res.pred.dtype == np.int32
    assert res.img["res"].shape == (61, 83, 3)
    high = res.pred.copy()
    high[0, 0] = 299
    assert np.array_equal(res.__class__(high, res.input_img).img["res"][0, 0], voc_palette(300)[299][::-1])
