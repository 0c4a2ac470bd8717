"""Evaluation on a SegDataset split: ``segzoo evaluate`` and the evaluations during training.

Each image is predicted whole at its own size (padded to the model's
``size_divisor`` and cropped back), its argmax is compared with the label in
a streaming :class:`~segzoo.training.metrics.ConfusionMatrix`, and the
metrics come from the accumulated matrix (see :mod:`segzoo.training.metrics`
for the definitions and how classes without data are treated).

:func:`evaluate` writes ``evaluate_result.json`` (PaddleX's file, with
``metrics.mIoU``) and ``confusion_matrix.png`` into the output folder and
prints the summary with the per-class table under it.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union


from ..errors import ConfigError
from ..fileio import write_json
from .metrics import ConfusionMatrix, compute_metrics, format_table, to_jsonable

__all__ = ["evaluate", "evaluate_layer", "RESULT_FILE", "MATRIX_PNG"]

PathLike = Union[str, os.PathLike]
RESULT_FILE = "evaluate_result.json"
MATRIX_PNG = "confusion_matrix.png"

log = logging.getLogger("segzoo.train")


def _label_maps(model_name: str, model_config, layer) -> Callable[[list], list]:
    """A function from a list of BGR images to their predicted label maps (``H×W``, at each image's size)."""
    from ..inference import Predictor

    predictor = Predictor.from_model(model_name, model_config, layer)

    def run(images: list) -> list:
        return predictor.predict_arrays(images, batch_size=len(images), target_size=-1)

    return run


def evaluate_layer(
    model_name: str,
    model_config,
    layer,
    dataset,
    num_classes: Optional[int] = None,
    progress: bool = False,
    batch_size: int = 1,
    desc: str = "evaluate",
) -> ConfusionMatrix:
    """The confusion matrix of ``layer`` (in eval mode) over ``dataset`` (a ``SegDataset``)."""
    import paddle

    nc = int(num_classes or model_config.num_classes)
    cm = ConfusionMatrix(nc, model_config.ignore_index)
    was_training = layer.training
    layer.eval()
    predict = _label_maps(model_name, model_config, layer)
    try:
        from tqdm import tqdm

        bar = tqdm(total=len(dataset), desc=desc, file=sys.stderr, disable=not progress, leave=False,
                   dynamic_ncols=True)
        with paddle.no_grad():
            i = 0
            while i < len(dataset):
                chunk = [dataset[j] for j in range(i, min(i + batch_size, len(dataset)))]
                preds = predict([img for img, _ in chunk])
                for pred, (_, label) in zip(preds, chunk):
                    cm.update(pred, label)
                bar.update(len(chunk))
                i += len(chunk)
        bar.close()
    finally:
        if was_training:
            layer.train()
    if cm.out_of_range:
        log.warning(
            "%d labelled pixels have values >= num_classes (%d) and were left out; run `segzoo check-dataset`",
            cm.out_of_range,
            nc,
        )
    return cm


def evaluate(
    model_name: str,
    dataset_dir: PathLike,
    weights: Optional[PathLike] = None,
    *,
    split: str = "val",
    config: Any = None,
    num_classes: Optional[int] = None,
    output_dir: Optional[PathLike] = None,
    device: Optional[str] = None,
    layer=None,
    class_names: Optional[Sequence[str]] = None,
    progress: bool = True,
    verbose: bool = True,
) -> dict:
    """Evaluate a model on a split of a SegDataset; write the results; return them.

    Args:
        model_name: a registered model.
        dataset_dir: the SegDataset folder; ``split`` names its list (``val``).
        weights: a ``.pdparams`` file or a checkpoint folder (``iter_N``,
            ``best_model``); must fit the model. Not needed with ``layer``.
        config: the model's config (object or dict of fields); ``num_classes``
            overrides it. Without a class count, it is read from the weights.
        output_dir: where ``evaluate_result.json`` and ``confusion_matrix.png``
            go (nothing is written when ``None``).
        layer: an already built network to evaluate instead of building one.
        class_names: names for the table; default ``class_name.txt``.
        verbose: print the summary and per-class table on stdout.

    Returns: the dict written to ``evaluate_result.json``: ``metrics``
    (``mIoU``, ``Acc``, ``mAcc``, ``Kappa``, ``Dice``, ``class_*`` lists;
    ``None`` where undefined), ``confusion_matrix``, and what was evaluated.
    """
    from ..datasets import SegDataset
    from ..registry import get_registry

    registry = get_registry()
    if config is None:
        overrides: dict = {}
    elif isinstance(config, dict):
        overrides = dict(config)
    else:
        overrides = config.model_dump()
    overrides.pop("pretrained", None)
    if num_classes:
        overrides["num_classes"] = num_classes
    dataset = SegDataset(dataset_dir, split)
    if len(dataset) == 0:
        raise ConfigError(f"{dataset.list_file}: the {split} split is empty; nothing to evaluate")
    if layer is None:
        if weights is None:
            raise ConfigError("Evaluate.weight_path: give the weights to evaluate (a .pdparams file or checkpoint folder)")
        from ..inference import create_model

        # the class count comes from the weights unless the config gives it
        predictor = create_model(model_name, model_dir=weights, device=device, engine="dygraph", **overrides)
        layer, cfg = predictor.layer, predictor.config
    else:
        cfg = registry.config(model_name, overrides)
    cm = evaluate_layer(model_name, cfg, layer, dataset, cfg.num_classes, progress=progress)
    metrics = compute_metrics(cm.matrix)
    names = list(class_names or dataset.class_names or [])
    result = {
        "done_flag": True,
        "model_name": model_name,
        "weight_path": str(weights) if weights is not None else None,
        "dataset_dir": str(dataset_dir),
        "split": split,
        "samples": len(dataset),
        "num_classes": cfg.num_classes,
        "ignore_index": cfg.ignore_index,
        "class_names": names or None,
        "metrics": to_jsonable(metrics),
        "confusion_matrix": cm.matrix.tolist(),
        "out_of_range_pixels": cm.out_of_range,
        "nan_policy": "a class without data has NaN (null) scores, left out of the means (as MMSegmentation)",
    }
    table = format_table(metrics, names)
    if output_dir is not None:
        from .plots import confusion_matrix_png

        out = Path(output_dir)
        confusion_matrix_png(cm.matrix, out / MATRIX_PNG, names, title=f"{model_name} on {Path(dataset_dir).name}/{split}")
        result["confusion_matrix_png"] = MATRIX_PNG
        write_json(out / RESULT_FILE, result)
    if verbose:
        print(f"{model_name} on {dataset_dir} ({split}, {len(dataset)} images)")
        print(table)
    return result
