"""``create_model``: a ``Predictor`` for a model name, an exported directory, weights or the official model.

It resolves where the model comes from (:mod:`segzoo.inference.modeldir`,
:mod:`segzoo.official`), builds the network with its weights when an engine
needs it (:func:`segzoo.models.build_with_weights`), picks the engine from the
table (:mod:`segzoo.inference.engine_table`) and hands both to
:class:`~segzoo.inference.predictor.Predictor`.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Optional

from ..device import parse_device, set_device
from ..errors import ConfigError
from ..models import build_with_weights, read_saved_run
from ..official import official_inference_dir, resolve_weights
from ..registry import get_registry
from .engine_table import ENGINES, check_options, default_engine, engine_spec
from .inputs import InputLimits
from .modeldir import ModelSource, resolve_model_dir
from .predictor import Predictor, RandomWeightsWarning
from .sizes import (
    DEFAULT_MAX_PIXELS, DEFAULT_PIXEL_LIMIT, check_pixel_limit, check_size_pixels, parse_size, parse_slide,
)


def create_model(
    model_name: Optional[str] = None,
    model_dir=None,
    target_size: Any = None,
    device: Optional[str] = None,
    engine: Optional[str] = None,
    *,
    engine_options: Optional[dict] = None,
    slide_window: Any = None,
    slide_stride: Any = None,
    max_pixels: Optional[int] = DEFAULT_MAX_PIXELS,
    pixel_limit: Optional[int] = DEFAULT_PIXEL_LIMIT,
    url_timeout: float = InputLimits.url_timeout,
    url_max_bytes: int = InputLimits.url_max_bytes,
    **config_overrides,
) -> Predictor:
    """A :class:`Predictor` for ``model_name``: ``segzoo.create_model("PP-LiteSeg-T", model_dir=...)``.

    Args:
        model_name: a registered model (``segzoo list-models``). May be left
            out when ``model_dir`` is an exported directory whose
            ``inference.yml`` names it; a different name there is an error.
        model_dir: an exported PaddleX inference directory, or dygraph weights
            (a ``.pdparams`` file or a directory holding one); nothing is
            downloaded then. Without it and without ``pretrained=``, the model's
            **official inference model** is used, as in PaddleX: from PaddleX's
            cache (``~/.paddlex/official_models/NAME``) when complete, else from
            segzoo's cache, else downloaded into it once (see
            :mod:`segzoo.official`; ``SEGZOO_OFFLINE=1`` forbids the download).
            ``pretrained=False`` builds the network with random weights (a
            :class:`RandomWeightsWarning` says so); ``pretrained="official"``
            loads the official ``.pdparams`` into the dygraph network;
            ``pretrained=<.pdparams path or http(s) URL>`` loads those weights.
        target_size: the default ``target_size`` of :meth:`Predictor.predict`.
        device: ``"cpu"``, ``"gpu"``, ``"gpu:0"``; ``None`` picks a GPU when there is one.
        engine: ``"dygraph"`` (the reference; with a model name and no
            weights it builds the network from the official ``.pdparams``,
            ``pretrained="official"``), ``"paddle"`` (Paddle
            Inference), ``"onnxruntime"``, ``"openvino"`` or ``"auto"`` (the
            fastest measured for this model on this machine, see
            :mod:`segzoo.inference.auto`). ``None`` (the default) is the
            fastest engine whose masks agree with dygraph, by a cheap rule
            (:func:`segzoo.inference.engine_table.default_engine`): ONNX Runtime on
            the CPU for every model that exports with a dynamic H×W and
            converts (converted once per model, cached), Paddle Inference on a
            GPU, else Paddle Inference / dygraph. Engines other than dygraph
            run weights and model names through an export cached in segzoo's
            cache dir.
        engine_options: options of the engine, e.g. ``{"onednn": False,
            "cpu_threads": 4}`` for ``"paddle"``, ``{"cpu_threads": 2}`` for
            ``"onnxruntime"``, ``{"precision": "bf16"}`` for ``"openvino"``.
        slide_window, slide_stride, max_pixels: defaults of the sliding-window
            options of :meth:`Predictor.predict`.
        pixel_limit: the largest image (width × height, after resizing to
            ``target_size``) :meth:`Predictor.predict` accepts; larger ones
            are refused before any buffer is allocated. Default: Pillow's
            decompression-bomb limit (about 179 million pixels); ``None``: no limit.
        url_timeout, url_max_bytes: limits of URL downloads.
        **config_overrides: fields of the model's config (``num_classes=4``,
            ``pretrained="model.pdparams"``, ``mean=...``).

    With dygraph weights whose class count differs from the card's and no
    ``num_classes`` given, the count is read from the weights' shapes. Every
    argument that needs no model (the name, the config fields, the device,
    the engine and its options, the sizes) is checked before anything is read
    or downloaded.
    """
    registry = get_registry()
    pretrained = config_overrides.pop("pretrained", None)
    _check_arguments(model_name, device, engine, engine_options, target_size, pixel_limit, config_overrides)
    parse_slide(slide_window, slide_stride)
    source = resolve_model_dir(model_dir) if model_dir is not None else None
    deploy = source.deploy if source is not None else None
    if model_name is None and source is not None and source.kind == "weights":
        # weights of `segzoo train` name their model beside them
        model_name = getattr(read_saved_run(source.weights), "model_name", None)
    if model_name is None:
        if deploy is None or not deploy.model_name:
            raise ConfigError(
                "model_name is missing; give it (see `segzoo list-models`), or a model_dir whose "
                "inference.yml names the model under Global.model_name (or weights of `segzoo train`, "
                "whose folder's config.yaml names it)"
            )
        model_name = deploy.model_name
    registry.card(model_name)  # an unknown name fails here, with the closest names
    if deploy is not None and deploy.model_name and deploy.model_name != model_name:
        raise ConfigError(
            f"{deploy.path}: Global.model_name is {deploy.model_name!r} but the model asked for is "
            f"{model_name!r}; use create_model({deploy.model_name!r}, ...) or the directory of a "
            f"{model_name} export"
        )
    limits = InputLimits(url_timeout=float(url_timeout), url_max_bytes=int(url_max_bytes))
    opts = dict(target_size=target_size, slide_window=slide_window, slide_stride=slide_stride, max_pixels=max_pixels, limits=limits)
    opts["pixel_limit"] = check_pixel_limit(pixel_limit)

    if source is None and pretrained in (None, True) and engine is not None and _builds_network(engine):
        # an engine that runs the network itself (dygraph) needs the official .pdparams, not the exported program
        pretrained = "official"
    if source is None and pretrained is False:
        source = ModelSource("random")
    elif source is None and (pretrained is None or pretrained is True):
        # no weights given: PaddleX's official inference model (PaddleX's cache, segzoo's, or downloaded once)
        source = resolve_model_dir(official_inference_dir(model_name))
        deploy = source.deploy
        official_classes = deploy.num_classes or registry.card(model_name).num_classes
        asked = config_overrides.get("num_classes")
        if asked is not None and asked != official_classes:
            raise ConfigError(
                f"{model_name}'s official model predicts {official_classes} classes; num_classes={asked} needs "
                "weights of your own (model_dir=... or pretrained=...), or pretrained=False for random weights"
            )
    elif source is None:
        if isinstance(pretrained, str) and (pretrained == "official" or pretrained.lower().startswith(("http://", "https://"))):
            pretrained = resolve_weights(pretrained, model_name)  # the official .pdparams, or a URL's, cached
        source = ModelSource("weights", weights=Path(pretrained).expanduser())
        registry.config(model_name, pretrained=pretrained)  # the config's check names a missing file
    elif pretrained is not None:
        raise ConfigError(
            f"give the weights once: model_dir={str(model_dir)!r} and pretrained={str(pretrained)!r} were both given"
        )
    spec = engine_spec(engine or default_engine(source.kind, model_name, device), source.kind)
    options = check_options(spec, engine_options or {})
    if engine is None and source.kind != "inference" and "output_op" in spec.options:
        # the default engine on weights exports scores, not an argmax: predict_scores, sliding windows and
        # bilinear resizing of scores then work exactly as on dygraph, the reference
        options.setdefault("output_op", "none")

    if source.kind == "inference":
        base = {"mean": deploy.mean, "std": deploy.std}
        if deploy.num_classes:
            base["num_classes"] = deploy.num_classes
        config = registry.config(model_name, {**base, **config_overrides})
        eng = spec.factory(model_name, config, source, device, options)
        return Predictor(model_name, config, eng, source, **opts)

    set_device(device)
    config = registry.config(model_name, config_overrides)
    if source.kind == "weights":
        layer, config = build_with_weights(model_name, config, source.weights, "num_classes" in config_overrides)
    else:
        warnings.warn(
            RandomWeightsWarning(
                f"{model_name} has random weights (pretrained=False), so its predictions mean nothing. "
                "create_model(name) alone loads PaddleX's official model; give weights of your own with "
                "model_dir=<exported inference dir, or a .pdparams file / a directory holding one> or "
                "pretrained=<.pdparams>."
            ),
            stacklevel=3,
        )
        layer = registry.build_model(model_name, config)
    layer.eval()
    eng = spec.factory(model_name, config, source, device, {**options, "layer": layer})
    return Predictor(model_name, config, eng, source, layer=layer, **opts)


def _check_arguments(model_name, device, engine, engine_options, target_size, pixel_limit, config_overrides) -> None:
    """Every argument that can be checked without reading a model, checked before any disk or network work."""
    registry = get_registry()
    if model_name is not None:
        registry.card(model_name)  # an unknown name fails here, with the closest names
        registry.config(model_name, config_overrides)  # num_classes=0, an unknown field: before a download
    if device is not None:
        parse_device(device)
    if engine is not None:
        if engine not in ENGINES:
            engine_spec(engine, "inference")  # the error lists the engines
        check_options(ENGINES[engine], engine_options or {})
    check_size_pixels(parse_size(target_size), check_pixel_limit(pixel_limit))


def _builds_network(engine: str) -> bool:
    """Whether ``engine`` runs dygraph weights but no exported directory (it builds the network itself)."""
    spec = ENGINES.get(engine)
    return spec is not None and "inference" not in spec.sources and "weights" in spec.sources
