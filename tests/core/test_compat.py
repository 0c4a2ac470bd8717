"""Each Paddle 3 fix for paddleseg 2.8.0: the original code fails, the fixed code gives the right value."""

import subprocess
import sys

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


# --- speed fix: the channel max of PP-LiteSeg's attention fusion -----------------------------------------


def _grad_node_names(tensor) -> set:
    """Names of every backward node reachable from ``tensor`` (its autograd graph)."""
    names, seen, stack = set(), set(), [tensor.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node.node_ptr() in seen:
            continue
        seen.add(node.node_ptr())
        names.add(node.name())
        stack.extend(node.next_functions)
    return names


def test_fused_channel_max_has_the_values_and_gradients_of_paddle_max():
    from paddleseg.models.layers import tensor_fusion_helper as helper

    original = compat.ORIGINALS["tensor_fusion_helper.avg_max_reduce_channel_helper"]
    paddle.seed(1)
    data = paddle.randn([2, 16, 5, 7])
    grads = []
    for fn in (original, helper.avg_max_reduce_channel_helper):
        x = data.clone()
        x.stop_gradient = False
        out = fn(x)
        (out * paddle.arange(out.numel()).reshape(out.shape).astype("float32")).sum().backward()
        grads.append((out.numpy(), x.grad.numpy()))
    np.testing.assert_array_equal(grads[0][0], grads[1][0])
    np.testing.assert_allclose(grads[0][1], grads[1][1], rtol=1e-6, atol=1e-6)
    # no gradient wanted (inference, export): the original op
    with paddle.no_grad():
        np.testing.assert_array_equal(helper.avg_max_reduce_channel_helper(data).numpy(), original(data).numpy())


def test_ppliteseg_training_step_has_no_slow_max_backward():
    """PP-LiteSeg's UAFM fusion runs its channel max through topk in training (no MaxGradNode)."""
    from paddleseg.models.layers import tensor_fusion_helper as helper

    from segzoo.models import build_model

    net = build_model("PP-LiteSeg-T", num_classes=3)
    net.train()
    x = paddle.randn([2, 3, 64, 64])
    names = _grad_node_names(sum(out.mean() for out in net(x)))
    assert "TopkGradNode" in names and "MaxGradNode" not in names, sorted(names)

    fast = helper.avg_max_reduce_channel_helper
    helper.avg_max_reduce_channel_helper = compat.ORIGINALS["tensor_fusion_helper.avg_max_reduce_channel_helper"]
    try:  # without the fix, the same step goes through paddle.max's backward
        assert "MaxGradNode" in _grad_node_names(sum(out.mean() for out in net(x)))
    finally:
        helper.avg_max_reduce_channel_helper = fast


def test_original_calculate_area_fails_on_paddle3():
    """paddleseg's evaluate counts every image with calculate_area; Paddle 3's 0-D sums break its concat."""
    from paddleseg.utils import metrics

    assert metrics.calculate_area.__module__ == "segzoo_plugins.paddleseg_compat"  # first use: it runs, then is fixed
    pred = paddle.to_tensor(np.array([[[0, 1, 1], [2, 2, 0]]], np.int64))
    label = paddle.to_tensor(np.array([[[0, 1, 2], [2, 255, 0]]], np.int64))
    with pytest.raises(Exception, match="axis is expected to be in range"):
        compat.ORIGINALS["metrics.calculate_area"](pred, label, 3)


def test_fixed_calculate_area_counts_each_class():
    from paddleseg.utils import metrics

    pred = paddle.to_tensor(np.array([[[0, 1, 1], [2, 2, 0]]], np.int64))
    label = paddle.to_tensor(np.array([[[0, 1, 2], [2, 255, 0]]], np.int64))
    intersect, predicted, labelled = (t.numpy().tolist() for t in metrics.calculate_area(pred, label, 3))
    assert intersect == [2, 1, 1]  # class 0: two hits; 1: one; 2: one (the ignored pixel counts nowhere)
    assert predicted == [2, 2, 1]
    assert labelled == [2, 1, 2]


def test_importing_paddleseg_defers_scikit_learn_until_its_metrics_are_used():
    """paddleseg.utils.metrics imports scikit-learn (most of paddleseg's import time); segzoo runs it on first use."""
    code = (
        "import sys\n"
        "from segzoo_plugins import paddleseg_compat as compat\n"
        "compat.import_paddleseg()\n"
        "from paddleseg.utils import metrics\n"
        "import paddleseg.core.val\n"  # binds metrics without using it, as paddleseg's own modules do
        "assert 'sklearn' not in sys.modules, 'scikit-learn imported with paddleseg'\n"
        "assert metrics.calculate_area is compat._calculate_area\n"  # first use: it runs, and is fixed
        "assert 'sklearn.metrics' in sys.modules and callable(metrics.auc_roc)\n"
        "assert 'metrics.calculate_area' in compat.ORIGINALS\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-2000:]
