"""Evaluation on a SegDataset split: ``segzoo evaluate`` and the evaluations during training.

Each image is predicted whole at its own size, as paddleseg's ``evaluate``
does (through the same :class:`~segzoo.inference.Predictor` as ``predict``:
no padding, except for a card's ``pad_to``), its argmax is compared with the label in
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
from typing import Any, Callable, Collection, Optional, Sequence, Union

from ..config import explicit_model_fields, model_fields_for_weights, weights_path
from ..device import set_device
from ..errors import ConfigError
from ..fileio import check_output_dir, write_json
from ..inference.engine_table import default_engine, engine_spec
from ..inference.modeldir import ModelSource, resolve_model_dir
from ..inference.predictor import Predictor
from ..models import build_with_weights, read_saved_run
from ..registry import get_registry
from .metrics import ConfusionMatrix, compute_metrics, format_table, to_jsonable
from .plots import confusion_matrix_png

__all__ = ["evaluate", "evaluate_layer", "evaluate_config", "RESULT_FILE", "MATRIX_PNG"]

PathLike = Union[str, os.PathLike]
RESULT_FILE = "evaluate_result.json"
MATRIX_PNG = "confusion_matrix.png"

log = logging.getLogger("segzoo.train")


def _label_maps(model_name: str, model_config, layer, engine: Optional[str] = None,
                device: Optional[str] = None, engine_options: Optional[dict] = None) -> Callable[[list], list]:
    """A function from a list of BGR images to their predicted label maps (``H×W``, at each image's size).

    ``engine`` ``None`` or ``"dygraph"`` runs ``layer`` itself (the trainer's
    evaluations); another engine runs an export of it (cached, see
    :func:`segzoo.inference.engines.default_engine`).
    """
    if engine in (None, "dygraph"):
        predictor = Predictor.from_model(model_name, model_config, layer)
    else:
        source = ModelSource("weights")
        spec = engine_spec(engine, source.kind)
        options = {"layer": layer, "output_op": "argmax"} if "output_op" in spec.options else {"layer": layer}
        options.update(engine_options or {})  # e.g. {"precision": "int8"}: the model `segzoo quantize` made
        predictor = Predictor(model_name, model_config, spec.factory(model_name, model_config, source, device, options),
                              source, layer=layer)

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
    engine: Optional[str] = None,
    device: Optional[str] = None,
    engine_options: Optional[dict] = None,
) -> ConfusionMatrix:
    """The confusion matrix of ``layer`` (in eval mode) over ``dataset`` (a ``SegDataset``).

    ``engine``: ``None``/``"dygraph"`` runs the layer itself; another engine name runs an export of it.
    """
    import paddle

    nc = int(num_classes or model_config.num_classes)
    cm = ConfusionMatrix(nc, model_config.ignore_index)
    was_training = layer.training
    layer.eval()
    predict = _label_maps(model_name, model_config, layer, engine, device, engine_options)
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


def _build(model_name: str, weights: PathLike, overrides: dict, given: set, device: Optional[str]):
    """The network of ``weights`` (a ``.pdparams`` file or a folder holding one), in eval mode, and its config."""
    source = resolve_model_dir(weights)
    if source.kind != "weights":
        raise ConfigError(
            f"Evaluate.weight_path: {weights} is an exported inference model; evaluate the .pdparams it was "
            "exported from (e.g. output/best_model/model.pdparams)"
        )
    set_device(device)
    config = get_registry().config(model_name, overrides)
    layer, config = build_with_weights(model_name, config, source.weights, given)
    layer.eval()
    return layer, config


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
    explicit: Optional[Collection[str]] = None,
    engine: Optional[str] = None,
    precision: Optional[str] = None,
) -> dict:
    """Evaluate a model on a split of a SegDataset; write the results; return them.

    Args:
        model_name: a registered model.
        dataset_dir: the SegDataset folder; ``split`` names its list (``val``).
        weights: a ``.pdparams`` file or a checkpoint folder (``iter_N``,
            ``best_model``); must fit the model. Not needed with ``layer``.
        config: the model's config (object or dict of fields); ``num_classes``
            overrides it. Fields it leaves out come from the run's config
            saved beside the weights (``config.yaml`` of a ``segzoo train``
            checkpoint), the class count else from the weights' shapes.
        explicit: the fields of ``config`` that win over the weights' saved
            config (default: all of them); the others yield to it (the CLI
            passes the ``-o`` keys, so a config file's defaults yield).
        output_dir: where ``evaluate_result.json`` and ``confusion_matrix.png``
            go (nothing is written when ``None``).
        layer: an already built network to evaluate instead of building one.
        class_names: names for the table; default ``class_name.txt``.
        verbose: print the summary and per-class table on stdout.
        engine: what predicts the weights' masks; default the fast engine
            ``create_model`` would pick (ONNX Runtime on the CPU for models
            that convert), ``"dygraph"`` for the reference. A ``layer`` given
            in memory runs on dygraph unless an engine is named.
        precision: the openvino engine's precision (``"fp32"``, ``"bf16"``,
            ``"int8"``: the model ``segzoo quantize`` made of these weights).

    Returns: the dict written to ``evaluate_result.json``: ``metrics``
    (``mIoU``, ``Acc``, ``mAcc``, ``Kappa``, ``Dice``, ``class_*`` lists;
    ``None`` where undefined), ``confusion_matrix``, and what was evaluated.
    """
    from ..datasets import SegDataset

    registry = get_registry()
    if config is None:
        overrides: dict = {}
    elif isinstance(config, dict):
        overrides = dict(config)
    else:
        overrides = config.model_dump()
    overrides.pop("pretrained", None)
    given = set(overrides) if explicit is None else set(explicit)
    if num_classes:
        overrides["num_classes"] = num_classes
        given.add("num_classes")
    if output_dir is not None:
        check_output_dir(output_dir, "output_dir")  # before the model is built, not after the evaluation
    dataset = SegDataset(dataset_dir, split)
    if len(dataset) == 0:
        raise ConfigError(f"{dataset.list_file}: the {split} split is empty; nothing to evaluate")
    if layer is None:
        if weights is None:
            raise ConfigError("Evaluate.weight_path: give the weights to evaluate (a .pdparams file or checkpoint folder)")
        layer, cfg = _build(model_name, weights, overrides, given, device)
        names = dataset.class_names
        if names and len(names) != cfg.num_classes:
            log.warning(
                "%s predicts %d classes, but %s lists %d; the table follows the weights", weights,
                cfg.num_classes, Path(dataset_dir) / "class_name.txt", len(names),
            )
    else:
        cfg = registry.config(model_name, overrides)
    if precision is not None:
        engine = engine or "openvino"
    elif engine is None and weights is not None:
        engine = default_engine("weights", model_name, device)
    cm = evaluate_layer(model_name, cfg, layer, dataset, cfg.num_classes, progress=progress, engine=engine,
                        device=device, engine_options={"precision": precision} if precision else None)
    metrics = compute_metrics(cm.matrix)
    names = list(class_names or dataset.class_names or [])
    result = {
        "done_flag": True,
        "model_name": model_name,
        "weight_path": str(weights) if weights is not None else None,
        "dataset_dir": str(dataset_dir),
        "split": split,
        "engine": (engine or "dygraph") + (f":{precision}" if precision else ""),
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
        out = Path(output_dir)
        confusion_matrix_png(cm.matrix, out / MATRIX_PNG, names, title=f"{model_name} on {Path(dataset_dir).name}/{split}")
        result["confusion_matrix_png"] = MATRIX_PNG
        write_json(out / RESULT_FILE, result)
    if verbose:
        print(f"{model_name} on {dataset_dir} ({split}, {len(dataset)} images)")
        print(table)
    return result


def evaluate_config(cfg, progress: bool = True, explicit: Collection[str] = (), precision: Optional[str] = None) -> dict:
    """``Global.mode=evaluate`` of a validated config: ``Evaluate.weight_path`` (else the run's best) on the val split.

    ``explicit``: the ``Section.key`` names the caller set on purpose (the ``-o``
    keys); their model fields win over the run's ``config.yaml`` saved beside
    the weights (see :mod:`segzoo.models`).
    """
    weights = weights_path(cfg.Evaluate.weight_path, cfg, "Evaluate")
    return evaluate(
        cfg.Global.model,
        cfg.Global.dataset_dir or _run_dataset_dir(weights),
        weights,
        config=model_fields_for_weights(cfg),
        explicit=explicit_model_fields(explicit),
        output_dir=cfg.output_dir,
        device=cfg.Global.device,
        progress=progress,
        precision=precision,
    )


def _run_dataset_dir(weights: Path) -> str:
    """The dataset the weights were trained on (their run's config.yaml), for an evaluation that names none."""
    saved = read_saved_run(weights)
    if saved is None or not saved.dataset_dir:
        raise ConfigError("Global.dataset_dir: required for mode evaluate; set -o Global.dataset_dir=DIR")
    print(f"evaluating on {saved.dataset_dir}, the dataset the weights were trained on ({saved.source})", file=sys.stderr)
    return saved.dataset_dir
