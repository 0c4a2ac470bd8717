"""`segzoo evaluate` gives paddleseg's own ``evaluate`` mIoU, on a val set of odd-sized images.

The weights are the shipped demo model (SeaFormer_tiny trained on drawn
shapes); the val set is six drawn-shapes images whose sides are not multiples
of 32 (61 to 200 pixels, one portrait). paddleseg's ``paddleseg.core.evaluate``
runs the same weights over paddleseg's own ``Dataset`` reader with its
``Normalize`` transform, each image at its own size, and counts with its own
metrics (through segzoo's Paddle 3 fix of ``calculate_area``). mIoU, Acc and
Kappa must agree to 4 decimals. Padding to 32, as segzoo's evaluation did
before, feeds other pixels to a model with global context.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

import segzoo
from segzoo.cli import main
from segzoo.datasets.shapes import draw_sample
from segzoo.weights import load_weights

SIZES = [(131, 97), (101, 75), (150, 113), (83, 61), (200, 150), (97, 131)]
DEMO = Path(segzoo.__file__).parent / "assets" / "demo" / "demo.pdparams"


@pytest.fixture(scope="module")
def odd_val(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("odd_val")
    (root / "images").mkdir()
    (root / "annotations").mkdir()
    rng = np.random.default_rng(5)
    lines = []
    for i, size in enumerate(SIZES):
        image, label = draw_sample(rng, size, max_shapes=5, min_shapes=3)
        cv2.imwrite(str(root / "images" / f"{i}.png"), image)
        cv2.imwrite(str(root / "annotations" / f"{i}.png"), label)
        lines.append(f"images/{i}.png annotations/{i}.png")
    for split in ("train", "val"):
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root


def paddleseg_evaluate(dataset_root: Path) -> tuple[float, float, float]:
    """paddleseg's own evaluation of the demo weights: ``(mIoU, Acc, Kappa)``."""
    from segzoo_plugins import import_paddleseg

    import_paddleseg()
    from paddleseg import transforms as T
    from paddleseg.core import evaluate
    from paddleseg.datasets import Dataset

    registry = segzoo.get_registry()
    config = registry.config("SeaFormer_tiny", num_classes=4)
    layer = registry.build_model("SeaFormer_tiny", config)
    assert load_weights(layer, DEMO).complete
    layer.eval()
    dataset = Dataset(mode="val", dataset_root=str(dataset_root), val_path=str(dataset_root / "val.txt"),
                      num_classes=4, transforms=[T.Normalize(mean=config.mean, std=config.std)])
    miou, acc, _, _, kappa = evaluate(layer, dataset, num_workers=0, print_detail=False)
    return float(miou), float(acc), float(kappa)


def test_segzoo_evaluate_equals_paddleseg_evaluate_on_odd_sizes(odd_val, tmp_path, capsys):
    out = tmp_path / "eval"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main(["evaluate", "-o", "Global.model=SeaFormer_tiny", "-o", f"Global.dataset_dir={odd_val}",
                     "-o", f"Evaluate.weight_path={DEMO}", "-o", f"Global.output={out}", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((out / "evaluate_result.json").read_text())["metrics"]
    miou, acc, kappa = paddleseg_evaluate(odd_val)
    assert 0.3 < miou < 1.0, "the demo model must see something in these images for the check to mean anything"
    assert round(metrics["mIoU"], 4) == round(miou, 4)
    assert round(metrics["Acc"], 4) == round(acc, 4)
    assert round(metrics["Kappa"], 4) == round(kappa, 4)
