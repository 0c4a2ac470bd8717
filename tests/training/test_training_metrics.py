"""Metrics from confusion matrices, checked against numbers computed by hand."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from segzoo.training.metrics import ConfusionMatrix, compute_metrics, format_table, to_jsonable


def test_matrix_counts_true_rows_predicted_columns_and_skips_ignore():
    label = np.array([[0, 0, 1], [1, 2, 255]])
    pred = np.array([[0, 1, 1], [2, 2, 0]])
    cm = ConfusionMatrix(3, ignore_index=255)
    cm.update(pred, label)
    # true 0: predicted 0, 1; true 1: predicted 1, 2; true 2: predicted 2; the 255 pixel is not counted
    expected = np.array([[1, 1, 0], [0, 1, 1], [0, 0, 1]])
    np.testing.assert_array_equal(cm.matrix, expected)
    assert cm.matrix.sum() == 5


def test_metrics_match_hand_computation():
    # rows: true class, columns: predicted; class 2 is predicted 5 times but never labelled
    m = np.array([[50, 10, 0], [5, 30, 5], [0, 0, 0]])
    r = compute_metrics(m)
    # class 0: TP 50, FP 5, FN 10 ; class 1: TP 30, FP 10, FN 10 ; class 2: TP 0, FP 5, FN 0
    assert r["class_IoU"][0] == pytest.approx(50 / 65)
    assert r["class_IoU"][1] == pytest.approx(30 / 50)
    assert r["class_IoU"][2] == 0.0  # predicted but absent from the labels: counts as 0
    assert r["mIoU"] == pytest.approx((50 / 65 + 30 / 50 + 0) / 3)
    assert r["class_Dice"][0] == pytest.approx(100 / 115)
    assert r["class_Dice"][1] == pytest.approx(60 / 80)
    assert r["class_Acc"][0] == pytest.approx(50 / 60) == r["class_Recall"][0]
    assert r["class_Acc"][1] == pytest.approx(30 / 40)
    assert math.isnan(r["class_Acc"][2])  # no labelled pixel: undefined
    assert r["class_Precision"][0] == pytest.approx(50 / 55)
    assert r["class_Precision"][1] == pytest.approx(30 / 40)
    assert r["class_Precision"][2] == 0.0
    total = 100
    assert r["Acc"] == pytest.approx(80 / total)
    assert r["mAcc"] == pytest.approx((50 / 60 + 30 / 40) / 2)  # NaN left out
    pe = (60 * 55 + 40 * 40 + 0 * 5) / total**2
    assert r["Kappa"] == pytest.approx((0.8 - pe) / (1 - pe))
    assert r["Dice"] == pytest.approx((100 / 115 + 60 / 80 + 0) / 3)
    assert r["pixels"] == total


def test_class_absent_everywhere_is_nan_and_left_out_of_the_means():
    label = np.array([0, 0, 1, 1, 255, 3])
    pred = np.array([0, 1, 1, 1, 2, 3])
    cm = ConfusionMatrix(4)
    cm.update(pred, label)
    r = cm.compute()
    # class 2 is predicted only on the ignored pixel: absent from labels and from counted predictions
    assert math.isnan(r["class_IoU"][2]) and math.isnan(r["class_Dice"][2])
    ious = [1 / 2, 2 / 3, 1.0]
    assert r["mIoU"] == pytest.approx(sum(ious) / 3)
    assert r["Acc"] == pytest.approx(4 / 5)
    # JSON: NaN becomes null
    text = json.dumps(to_jsonable(r), allow_nan=False)
    assert json.loads(text)["class_IoU"][2] is None


def test_streaming_equals_one_shot_and_merge():
    rng = np.random.default_rng(3)
    labels = [rng.integers(0, 5, size=(7, 9)) for _ in range(4)]
    for lab in labels:
        lab[rng.random(lab.shape) < 0.1] = 255
    preds = [rng.integers(0, 5, size=(7, 9)) for _ in range(4)]
    stream = ConfusionMatrix(5)
    for p, lab in zip(preds, labels):
        stream.update(p, lab)
    whole = ConfusionMatrix(5)
    whole.update(np.stack(preds), np.stack(labels))
    np.testing.assert_array_equal(stream.matrix, whole.matrix)
    a, b = ConfusionMatrix(5), ConfusionMatrix(5)
    for p, lab in zip(preds[:2], labels[:2]):
        a.update(p, lab)
    for p, lab in zip(preds[2:], labels[2:]):
        b.update(p, lab)
    a.merge(b)
    np.testing.assert_array_equal(a.matrix, whole.matrix)
    # against a direct count
    lab = np.concatenate([x.ravel() for x in labels])
    pr = np.concatenate([x.ravel() for x in preds])
    keep = lab != 255
    direct = np.zeros((5, 5), int)
    np.add.at(direct, (lab[keep], pr[keep]), 1)
    np.testing.assert_array_equal(whole.matrix, direct)


def test_out_of_range_labels_are_counted_apart_and_shapes_must_match():
    cm = ConfusionMatrix(2)
    cm.update(np.array([0, 1, 1]), np.array([0, 7, 1]))
    assert cm.out_of_range == 1
    assert cm.matrix.sum() == 2
    with pytest.raises(ValueError, match="differ in shape"):
        cm.update(np.zeros((2, 2)), np.zeros((2, 3)))


def test_perfect_and_single_class_kappa():
    assert compute_metrics(np.diag([5, 5]))["Kappa"] == pytest.approx(1.0)
    only = compute_metrics(np.array([[9, 0], [0, 0]]))
    assert only["Kappa"] == 1.0 and only["mIoU"] == 1.0  # class 1 absent everywhere: NaN, left out
    worst = compute_metrics(np.array([[0, 5], [5, 0]]))
    assert worst["Kappa"] == pytest.approx(-1.0) and worst["mIoU"] == 0.0


def test_table_lists_every_class_under_the_summary():
    r = compute_metrics(np.array([[3, 1], [0, 4]]))
    text = format_table(r, ["bg", "fg"])
    lines = text.splitlines()
    assert lines[0].startswith("mIoU: ")
    assert any("| bg" in ln and "75.00" in ln for ln in lines)  # IoU of bg = 3/4
    assert any("| fg" in ln and "80.00" in ln for ln in lines)  # IoU of fg = 4/5


def test_an_undefined_cell_prints_a_dash_and_the_table_says_why_once():
    # class 1 is labelled but never predicted: its Precision is 0/0; class 2 appears nowhere
    r = compute_metrics(np.array([[3, 0, 0], [2, 0, 0], [0, 0, 0]]))
    text = format_table(r, ["bg", "fg", "none"])
    assert "nan" not in text.lower()
    fg = next(ln for ln in text.splitlines() if ln.startswith("| fg"))
    assert [c.strip() for c in fg.strip("|").split("|")] == ["fg", "0.00", "0.00", "–", "0.00", "0.00"]
    assert text.count("Precision of a class never predicted") == 1
    assert text.splitlines()[-1].startswith("–: undefined")
    assert "undefined" not in format_table(compute_metrics(np.array([[3, 1], [0, 4]])), ["bg", "fg"])
