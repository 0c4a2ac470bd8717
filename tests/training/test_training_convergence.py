"""PP-LiteSeg-T trained from scratch on drawn shapes learns them, and its export predicts the same masks.

A small version of ``examples/shapes_real_check.py``: the same drawn shapes
(kept apart, contrasting colours), one process, 400 iterations of 4 images,
about 2.5 minutes on 2 CPU cores. That is early in PP-LiteSeg-T's curve (the
example needs 1200 iterations of 8 for 0.85): measured mIoU 0.33 against
0.19 for all background, Cohen's kappa 0.45, shapes-vs-background IoU 0.49.
The bounds are about half of those gains. They are relative to what a model
that learned nothing gets on the same val split: predicting all background
(or any single class, or classes at random) gives kappa 0 and no shape
pixels, so they cannot pass by chance.
"""

from __future__ import annotations

import numpy as np
import pytest

from segzoo.datasets import SegDataset
from segzoo.datasets.shapes import make_shapes_dataset
from segzoo.training import evaluate, train
from segzoo.training.metrics import ConfusionMatrix, compute_metrics

ITERS = 400


@pytest.mark.slow
def test_ppliteseg_learns_shapes_and_its_export_agrees(tmp_path):
    data = make_shapes_dataset(tmp_path / "shapes", num_train=400, num_val=16, size=(128, 128), seed=11,
                               overlap=False, min_contrast=80)
    out = tmp_path / "out"
    cfg = {
        "Global": {"model": "PP-LiteSeg-T", "mode": "train", "dataset_dir": str(data), "device": "cpu",
                   "output": str(out)},
        "Train": {"num_classes": 4, "epochs_iters": ITERS, "batch_size": 4, "crop_size": [128, 128],
                  "learning_rate": 2e-3, "warmup_steps": 20, "eval_interval": ITERS, "log_interval": 50,
                  "augment": {"min_scale": 1.0, "max_scale": 1.0}, "export": True, "pretrain_weight_path": None},
        "Model": {"optimizer": "adamw", "weight_decay": 0.01},
    }
    result = train(cfg, progress=False)
    assert result["export"]["exported"] is True

    val = SegDataset(data, "val")
    labels = [val[i][1] for i in range(len(val))]
    nothing = ConfusionMatrix(4)
    for lab in labels:
        nothing.update(np.zeros_like(lab), lab)
    baseline = nothing.compute()["mIoU"]  # all background: IoU of class 0 only, about 0.2

    ev = evaluate("PP-LiteSeg-T", data, out / "best_model" / "model.pdparams", progress=False, verbose=False)
    m = np.array(ev["confusion_matrix"])
    assert ev["metrics"]["mIoU"] == pytest.approx(result["best_score"])
    assert ev["metrics"]["mIoU"] >= baseline + 0.07, (ev["metrics"]["mIoU"], baseline)
    assert ev["metrics"]["Kappa"] >= 0.25, ev["metrics"]["Kappa"]
    # shapes vs background (the three shape classes merged): shape pixels are found, not guessed
    fg = compute_metrics(np.array([[m[0, 0], m[0, 1:].sum()], [m[1:, 0].sum(), m[1:, 1:].sum()]]))
    assert fg["class_IoU"][1] >= 0.3, fg["class_IoU"]

    # the exported model (Paddle Inference) predicts the masks of the trained weights
    from segzoo.inference import create_model

    images = [val[i][0] for i in range(len(val))]
    exported = create_model("PP-LiteSeg-T", model_dir=out / "best_model" / "inference", device="cpu")
    dygraph = create_model("PP-LiteSeg-T", model_dir=out / "best_model" / "model.pdparams", device="cpu")
    same = [np.mean(a == b) for a, b in zip(exported.predict_arrays(images), dygraph.predict_arrays(images))]
    assert min(same) >= 0.999, same
