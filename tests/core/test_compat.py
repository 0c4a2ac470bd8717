"""Each Paddle 3 fix for paddleseg 2.8.0: the original code fails, the fixed code gives the right value."""

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

from segzoo import compat

compat.import_paddleseg()
from paddleseg.models.losses import CrossEntropyLoss, OhemCrossEntropyLoss  # noqa: E402


@pytest.fixture
def batch():
    paddle.seed(0)
    logits = paddle.randn([2, 4, 6, 5])
    labels = paddle.randint(0, 4, [2, 6, 5])
    labels[0, 0, :] = 255  # a row of ignored pixels
    return logits, labels


def reference_ce(logits, labels, weight=None, ignore=255):
    """Cross entropy by hand in numpy: sum of weighted -log p over valid pixels / sum of their weights."""
    x = logits.numpy().transpose(0, 2, 3, 1).reshape(-1, logits.shape[1]).astype(np.float64)
    y = labels.numpy().reshape(-1)
    valid = y != ignore
    x, y = x[valid], y[valid]
    logp = x - x.max(1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(1, keepdims=True))
    w = np.ones(len(y)) if weight is None else np.asarray(weight)[y]
    return float((-logp[np.arange(len(y)), y] * w).sum() / w.sum())


def test_original_cross_entropy_fails_on_paddle3(batch):
    original = compat.ORIGINALS["CrossEntropyLoss._post_process_loss"]
    loss_fn = CrossEntropyLoss()
    logits, labels = batch
    logit = logits.transpose([0, 2, 3, 1])
    per_pixel = F.cross_entropy(logit, labels, ignore_index=255, reduction="none")
    with pytest.raises(Exception, match="(?i)type promotion|data type"):
        original(loss_fn, logit, labels, None, per_pixel)


def test_fixed_cross_entropy_matches_hand_computation(batch):
    logits, labels = batch
    got = float(CrossEntropyLoss()(logits, labels))
    assert got == pytest.approx(reference_ce(logits, labels), rel=1e-4)


def test_fixed_cross_entropy_with_class_weights(batch):
    logits, labels = batch
    weight = [1.0, 2.0, 0.5, 3.0]
    got = float(CrossEntropyLoss(weight=weight)(logits, labels))
    # paddle's F.cross_entropy with weights already scales each pixel; paddleseg divides by the mean coefficient
    assert got == pytest.approx(reference_ce(logits, labels, weight), rel=1e-4)


def test_fixed_cross_entropy_top_k_keeps_the_hardest_pixels(batch):
    logits, labels = batch
    all_pixels = float(CrossEntropyLoss()(logits, labels))
    hardest = float(CrossEntropyLoss(top_k_percent_pixels=0.25)(logits, labels))
    assert hardest > all_pixels


def test_original_ohem_fails_on_paddle3(batch):
    original = compat.ORIGINALS["OhemCrossEntropyLoss.forward"]
    logits, labels = batch
    with pytest.raises(Exception, match="(?i)type promotion|data type"):
        original(OhemCrossEntropyLoss(thresh=0.7, min_kept=10), logits, labels)


def test_fixed_ohem_keeps_only_hard_pixels(batch):
    logits, labels = batch
    # with thresh 1.0 every valid pixel is "hard": plain cross entropy over the valid pixels
    everything = float(OhemCrossEntropyLoss(thresh=1.0, min_kept=10)(logits, labels))
    assert everything == pytest.approx(reference_ce(logits, labels), rel=1e-4)
    # a low threshold keeps only the pixels whose true-class probability is below it (or the min_kept lowest)
    prob = F.softmax(logits, axis=1).numpy()
    y = labels.numpy()
    valid = y != 255
    p_true = np.take_along_axis(prob, np.where(valid, y, 0)[:, None], 1)[:, 0]
    min_kept = 10
    kth = np.sort(p_true[valid])[min_kept - 1]
    threshold = max(0.3, kth)
    keep = valid & (p_true < threshold)
    masked = np.where(keep, y, 255)
    expected = reference_ce(logits, paddle.to_tensor(masked))
    got = float(OhemCrossEntropyLoss(thresh=0.3, min_kept=min_kept)(logits, labels))
    assert got == pytest.approx(expected, rel=1e-4)


def test_import_paddleseg_keeps_home_clean(tmp_path, monkeypatch):
    import subprocess
    import sys

    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    code = "import segzoo.compat as c; c.import_paddleseg(); import os; print(os.environ['SEG_HOME'])"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip().startswith(str(tmp_path / ".cache" / "segzoo"))
    assert not (tmp_path / ".paddleseg").exists()
