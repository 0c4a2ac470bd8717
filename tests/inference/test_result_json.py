"""save_to_json writes PaddleX's JSON: the same data as ``res.json``, indented, one mask row per line."""

from __future__ import annotations

import json

import numpy as np

from segzoo.inference.result import SegResult


def _result(pred):
    image = np.zeros((*pred.shape, 3), np.uint8)
    return SegResult(input_img=image, pred=pred, input_path="street.jpg", page_index=None, name="street")


def test_saved_json_parses_to_the_result_and_keeps_one_row_per_line(tmp_path):
    pred = np.random.default_rng(0).integers(0, 19, (37, 53)).astype(np.uint8)
    res = _result(pred)
    path = res.save_to_json(tmp_path)
    assert path.name == "street_res.json"
    text = path.read_text()
    assert json.loads(text) == res.json == {"res": {"input_path": "street.jpg", "page_index": None, "pred": pred.tolist()}}
    assert len(text.splitlines()) == 37 + 8  # the 8 lines of the envelope and one line per row
    assert text.startswith('{\n    "res": {\n        "input_path": "street.jpg"')
    compact = res.save_to_json(tmp_path / "compact.json", indent=None)
    assert json.loads(compact.read_text()) == res.json and len(compact.read_text().splitlines()) == 1


def test_a_marker_like_input_path_is_not_replaced(tmp_path):
    res = _result(np.ones((2, 3), np.uint8))
    res.input_path = "@@segzoo-pred@@.png"
    assert json.loads(res.save_to_json(tmp_path / "r.json").read_text()) == res.json
