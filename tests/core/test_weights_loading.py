"""load_weights: whole-model and backbone files, the classifier layers of another class count, no stray warnings."""

from __future__ import annotations

import warnings

import numpy as np
import paddle
import pytest

import segzoo
from segzoo.weights import load_weights


def test_another_class_count_skips_only_the_classifiers_without_paddle_warnings(tmp_path):
    paddle.seed(1)
    source = segzoo.build_model("PP-LiteSeg-T", num_classes=19)
    path = tmp_path / "cityscapes.pdparams"
    paddle.save(source.state_dict(), str(path))
    paddle.seed(2)
    model = segzoo.build_model("PP-LiteSeg-T", num_classes=4)
    fresh = {k: v.numpy().copy() for k, v in model.state_dict().items()}

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = load_weights(model, path, quiet=True)
    # Paddle's "Skip loading for X. X is not found in the provided dict." would name tensors left out on purpose
    assert not [w for w in caught if "Skip loading" in str(w.message)]

    heads = [n for n, _, _ in report.classifier(4)]
    assert heads == [f"seg_heads.{i}.conv_out.weight" for i in range(3)]
    assert [n for n, _, _ in report.mismatched] == heads and not report.missing and not report.unexpected
    for key, value in model.state_dict().items():
        want = fresh[key] if key in heads else source.state_dict()[key].numpy()
        np.testing.assert_array_equal(value.numpy(), want, err_msg=key)


def test_a_backbone_file_in_its_own_names_loads_into_the_backbone(tmp_path):
    paddle.seed(1)
    source = segzoo.build_model("PP-LiteSeg-T", num_classes=4)
    backbone = {k[len("backbone."):]: v for k, v in source.state_dict().items() if k.startswith("backbone.")}
    backbone["fc.weight"] = paddle.zeros([8, 8])  # an ImageNet classifier the segmentation backbone lacks
    path = tmp_path / "backbone.pdparams"
    paddle.save(backbone, str(path))
    paddle.seed(2)
    model = segzoo.build_model("PP-LiteSeg-T", num_classes=4)
    fresh = {k: v.numpy().copy() for k, v in model.state_dict().items()}

    report = load_weights(model, path, backbone_prefix="backbone.", quiet=True)
    assert report.prefix == "backbone." and report.unexpected == ["fc.weight"] and not report.missing
    assert len(report.loaded) == len(backbone) - 1 and report.outside == len(fresh) - len(report.loaded)
    assert "into backbone (the file holds its own names)" in report.summary()
    for key, value in model.state_dict().items():
        want = source.state_dict()[key].numpy() if key.startswith("backbone.") else fresh[key]
        np.testing.assert_array_equal(value.numpy(), want, err_msg=key)

    # without the prefix the same names fit nothing: an error, not a silent no-op
    with pytest.raises(segzoo.WeightsError, match="fits this model"):
        load_weights(segzoo.build_model("PP-LiteSeg-T", num_classes=4), path, quiet=True)
