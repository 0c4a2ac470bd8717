"""save_to_json writes PaddleX's JSON: the same data as ``res.json``, indented, one mask row per line."""

from __future__ import annotations

import json

import numpy as np
import pytest

from segzoo.inference.result import SegResult, label_rows_text


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


@pytest.mark.parametrize("dtype, top, shape", [
    (np.uint8, 18, (37, 53)), (np.uint8, 255, (5, 7)), (np.int64, 1000, (4, 9)), (np.int32, 0, (3, 3)),
    (np.uint16, 99, (20, 1)), (np.int64, 100, (6, 30)), (np.int64, 5000, (2, 3)), (np.int32, -3, (2, 2)),
])
def test_mask_rows_are_written_as_json_dumps_writes_them(dtype, top, shape):
    low = min(top, 0)
    pred = np.random.default_rng(abs(top)).integers(low, max(top, 0) + 1, shape).astype(dtype)
    pad = " " * 12
    assert label_rows_text(pred, pad) == ",\n".join(pad + json.dumps(row) for row in pred.tolist())
