"""PaddleX's pipeline API and YAML config: ``create_pipeline("semantic_segmentation")`` over ``create_model``.

PaddleX sends the users of its semantic-segmentation *module* on to its
*pipeline*; this module runs both of that pipeline's forms unchanged:

>>> import segzoo
>>> pipeline = segzoo.create_pipeline(pipeline="semantic_segmentation")   # PP-LiteSeg-T, the official model
>>> pipeline = segzoo.create_pipeline(config="my_path/semantic_segmentation.yaml")
>>> for res in pipeline.predict(input="street.jpg", target_size=-1):
...     res.save_to_img("output/")

and PaddleX's pipeline YAML as PaddleX writes it
(``segzoo config --pipeline semantic_segmentation --save my.yaml`` writes the default)::

    pipeline_name: semantic_segmentation

    SubModules:
      SemanticSegmentation:
        module_name: semantic_segmentation
        model_name: PP-LiteSeg-T
        model_dir: null
        batch_size: 1
        target_size: None

The pipeline is a thin layer: its one sub-module is
``create_model(model_name, model_dir=..., target_size=...)`` and its
``predict()`` is that predictor's ``predict()`` with the config's
``batch_size``, so its results are the module's, bit for bit. The YAML is
validated before any model is loaded: an unknown key, pipeline or model name
is a one-line :class:`~segzoo.errors.ConfigError` naming the field and the
closest valid names. ``segzoo predict --pipeline`` and ``segzoo serve
--pipeline`` read the same file (:func:`load_pipeline_config`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .config import apply_overrides
from .errors import ConfigError, SegzooError, suggest
from .inference.create import create_model
from .inference.sizes import parse_size
from .registry import format_validation_error, get_registry, pipeline_default_model

__all__ = [
    "PIPELINE_NAMES",
    "PipelineConfig",
    "SemanticSegmentationPipeline",
    "create_pipeline",
    "default_pipeline_yaml",
    "load_pipeline_config",
    "pipeline_yaml",
    "size_text",
]

#: the pipelines segzoo runs (PaddleX's names)
PIPELINE_NAMES = ("semantic_segmentation",)
SAVE_HINT = "write the default with `segzoo config --pipeline semantic_segmentation --save my.yaml`"
_NULLS = ("none", "null", "~", "")


def _none_text(value: Any) -> Any:
    """PaddleX's YAML writes ``None`` (a string to YAML) for ``null``: both mean nothing set."""
    if isinstance(value, str) and value.strip().lower() in _NULLS:
        return None
    return value


class SemanticSegmentationModule(BaseModel):
    """``SubModules.SemanticSegmentation``: the model the pipeline runs, as ``create_model`` takes it."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    module_name: str = Field("semantic_segmentation", description="PaddleX's module; semantic_segmentation only")
    model_name: str = Field(
        default_factory=lambda: pipeline_default_model("semantic_segmentation"),
        description="a model of `segzoo list-models`; unset: the pipeline's default (the card whose default_of "
        "names it: the model PaddleX's own pipeline config runs)",
    )
    model_dir: Optional[str] = Field(
        None, description="an exported inference directory, or a .pdparams file / a directory holding one; "
        "null: the model's official inference model"
    )
    batch_size: int = Field(1, ge=1, description="images read and run together")
    target_size: Optional[Union[int, tuple[int, int]]] = Field(
        None, description="-1: the original size; n: n×n; [w, h]; None: the model's default"
    )

    @field_validator("module_name")
    @classmethod
    def _module(cls, value: str) -> str:
        if value != "semantic_segmentation":
            raise ValueError("must be semantic_segmentation (the one module of this pipeline)")
        return value

    @field_validator("model_dir", mode="before")
    @classmethod
    def _model_dir(cls, value: Any) -> Any:
        value = _none_text(value)
        return str(value) if isinstance(value, os.PathLike) else value

    @field_validator("target_size", mode="before")
    @classmethod
    def _target_size(cls, value: Any) -> Any:
        value = _none_text(value)
        if value is None:
            return None
        try:
            size = parse_size(value, what="target_size")
        except ConfigError as exc:
            raise ValueError(str(exc).removeprefix("target_size: ")) from None
        return -1 if size == (-1, -1) else size


class SubModulesConfig(BaseModel):
    """``SubModules``: the pipeline's one sub-module."""

    model_config = ConfigDict(extra="forbid")

    SemanticSegmentation: SemanticSegmentationModule = Field(default_factory=SemanticSegmentationModule)


class PipelineConfig(BaseModel):
    """PaddleX's pipeline YAML (``pipeline_name`` and ``SubModules``), validated."""

    model_config = ConfigDict(extra="forbid")

    pipeline_name: str = Field("semantic_segmentation", description="the pipeline: semantic_segmentation")
    SubModules: SubModulesConfig = Field(default_factory=SubModulesConfig)
    use_hpip: bool = Field(
        False, description="PaddleX's high-performance inference switch; segzoo's default engine is its fast path"
    )
    hpi_config: Optional[dict] = Field(None, description="PaddleX's high-performance inference options (unused)")

    @property
    def module(self) -> SemanticSegmentationModule:
        return self.SubModules.SemanticSegmentation


def _check_name(name: str, where: str) -> None:
    if name not in PIPELINE_NAMES:
        close = suggest(str(name), PIPELINE_NAMES)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise ConfigError(
            f"{where}unknown pipeline {name!r}; {hint}segzoo runs PaddleX's {', '.join(PIPELINE_NAMES)} pipeline"
        )


def _validate(data: Any, where: str) -> PipelineConfig:
    """A raw YAML mapping → :class:`PipelineConfig`; every problem in one line, prefixed with ``where``."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}a pipeline config is a mapping with pipeline_name and SubModules; {SAVE_HINT}")
    if "pipeline_name" not in data:
        raise ConfigError(f"{where}pipeline_name: required, but missing (pipeline_name: semantic_segmentation)")
    _check_name(data["pipeline_name"], f"{where}pipeline_name: ")
    try:
        config = PipelineConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(where + format_validation_error(exc, PipelineConfig).replace("Value error, ", "")) from None
    try:
        get_registry().card(config.module.model_name)
    except SegzooError as exc:
        raise ConfigError(f"{where}SubModules.SemanticSegmentation.model_name: {exc}") from None
    return config


def _looks_like_file(text: str) -> bool:
    return text.lower().endswith((".yaml", ".yml")) or os.sep in text or (os.altsep or os.sep) in text


def load_pipeline_config(source: Any = "semantic_segmentation") -> PipelineConfig:
    """The validated config of ``source``: a pipeline name, a YAML path, a mapping or a :class:`PipelineConfig`."""
    if isinstance(source, PipelineConfig):
        return source
    if isinstance(source, dict):
        return _validate(source, "pipeline config: ")
    if not isinstance(source, (str, os.PathLike)):
        raise ConfigError(f"pipeline: {source!r} is neither a pipeline name nor a YAML file; {SAVE_HINT}")
    text = str(source)
    if text in PIPELINE_NAMES:
        return PipelineConfig(pipeline_name=text)
    path = Path(text).expanduser()
    if path.is_file():
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from None
        return _validate(data, f"{path}: ")
    if isinstance(source, os.PathLike) or _looks_like_file(text):
        if path.exists():
            raise ConfigError(f"{path}: is not a file; give a pipeline YAML file")
        raise ConfigError(f"{path}: no such pipeline config; {SAVE_HINT}")
    _check_name(text, "")  # an unknown name: the closest known ones
    return PipelineConfig(pipeline_name=text)


def size_text(size: Any) -> Optional[str]:
    """A validated ``target_size`` as the CLI writes it: ``"-1"``, ``"512"``, ``"1024,512"`` (``None`` stays)."""
    if size is None:
        return None
    if isinstance(size, int):
        return str(size)
    return f"{size[0]},{size[1]}"


def default_pipeline_yaml(name: str = "semantic_segmentation", config: Optional[PipelineConfig] = None) -> str:
    """The pipeline YAML in PaddleX's layout (its default, or ``config``), with a comment per field."""
    _check_name(name, "--pipeline: ")
    m = (config or PipelineConfig(pipeline_name=name)).module
    model_dir = "null" if m.model_dir is None else yaml.safe_dump(m.model_dir, default_style='"').strip()
    target = "None" if m.target_size is None else (
        str(m.target_size) if isinstance(m.target_size, int) else f"[{m.target_size[0]}, {m.target_size[1]}]"
    )
    return (
        "# PaddleX's semantic_segmentation pipeline config; run it with segzoo.create_pipeline(config=\"THIS.yaml\"),\n"
        "# `segzoo predict --pipeline THIS.yaml --input ...` or `segzoo serve --pipeline THIS.yaml`.\n"
        f"pipeline_name: {name}\n"
        "\n"
        "SubModules:\n"
        "  SemanticSegmentation:\n"
        "    module_name: semantic_segmentation\n"
        f"    model_name: {m.model_name}  # a model of `segzoo list-models`\n"
        f"    model_dir: {model_dir}  # your exported model or .pdparams; null: the official model\n"
        f"    batch_size: {m.batch_size}\n"
        f"    target_size: {target}  # -1: original size; n: n×n; [w, h]; None: the model's default\n"
    )


def pipeline_yaml(name: str, overrides: Any = ()) -> str:
    """``segzoo config --pipeline NAME [-o SubModules.SemanticSegmentation.model_name=...]``: the YAML text."""
    _check_name(name, "--pipeline: ")
    config = None
    if overrides:
        # the keys -o may set; model_name unresolved, so that naming one works without the default's plugin
        module = SemanticSegmentationModule.model_construct(model_name=None)
        data = PipelineConfig.model_construct(
            pipeline_name=name, SubModules=SubModulesConfig.model_construct(SemanticSegmentation=module)
        ).model_dump()
        data = apply_overrides(data, overrides)
        if data["SubModules"]["SemanticSegmentation"].get("model_name") is None:
            del data["SubModules"]["SemanticSegmentation"]["model_name"]  # unset: the default (or its error)
        config = _validate(data, "-o: ")
    return default_pipeline_yaml(name, config)


class SemanticSegmentationPipeline:
    """PaddleX's ``semantic_segmentation`` pipeline: one ``create_model`` predictor and the config's batch size.

    Attributes:
        config: the validated :class:`PipelineConfig`.
        predictor: the :class:`~segzoo.inference.predictor.Predictor` of its sub-module.
    """

    def __init__(self, config: PipelineConfig, device: Optional[str] = None, engine: Optional[str] = None,
                 **model_options: Any):
        self.config = config
        m = config.module
        self.predictor = create_model(
            m.model_name, model_dir=m.model_dir, target_size=m.target_size, device=device, engine=engine,
            **model_options,
        )

    @property
    def pipeline_name(self) -> str:
        return self.config.pipeline_name

    @property
    def model_name(self) -> str:
        return self.predictor.model_name

    @property
    def class_names(self) -> Optional[list[str]]:
        return self.predictor.class_names

    def predict(self, input: Any, target_size: Any = None, batch_size: Optional[int] = None,
                **options: Any) -> Iterator:
        """Like PaddleX's ``pipeline.predict(input, target_size=...)``: a generator of ``SegResult``.

        ``target_size=None`` keeps the config's; ``batch_size`` defaults to the config's; other
        options go to :meth:`Predictor.predict <segzoo.inference.predictor.Predictor.predict>`.
        """
        size = self.config.module.batch_size if batch_size is None else batch_size
        return self.predictor.predict(input, batch_size=size, target_size=target_size, **options)

    __call__ = predict

    def __repr__(self) -> str:
        return f"<SemanticSegmentationPipeline {self.pipeline_name}: {self.predictor!r}>"


def create_pipeline(
    pipeline: Optional[Union[str, os.PathLike]] = None,
    config: Optional[Union[dict, str, os.PathLike, PipelineConfig]] = None,
    device: Optional[str] = None,
    engine: Optional[str] = None,
    *,
    pp_option: Any = None,
    use_hpip: Optional[bool] = None,
    hpi_config: Optional[dict] = None,
    **model_options: Any,
) -> SemanticSegmentationPipeline:
    """PaddleX's ``create_pipeline``: ``pipeline`` a name or a YAML path; ``config`` a mapping or a YAML path.

    With both, ``config`` wins and its ``pipeline_name`` must be ``pipeline`` (as in PaddleX).
    ``device`` and ``engine`` are :func:`~segzoo.inference.create.create_model`'s, and so are
    ``model_options`` (``engine_options=``, ``pixel_limit=``...); PaddleX's ``pp_option`` object has no
    meaning here (an error says what to give instead). ``use_hpip`` and
    ``hpi_config`` are accepted for PaddleX's code and change nothing: segzoo's default
    engine already is its fast path.
    """
    del use_hpip, hpi_config
    if pp_option is not None:
        raise ConfigError("create_pipeline: pp_option is PaddleX's Paddle Inference options object; here give "
                          "engine=\"paddle\" and engine_options={\"cpu_threads\": 4, ...} (see create_model)")
    if pipeline is None and config is None:
        raise ConfigError("create_pipeline: give pipeline=\"semantic_segmentation\" (or a YAML path) or config=...")
    if config is not None:
        cfg = load_pipeline_config(config)
        if pipeline is not None and str(pipeline) in PIPELINE_NAMES and str(pipeline) != cfg.pipeline_name:
            raise ConfigError(f"create_pipeline: pipeline={pipeline!r} but the config's pipeline_name is "
                              f"{cfg.pipeline_name!r}")
    else:
        cfg = load_pipeline_config(pipeline)
    return SemanticSegmentationPipeline(cfg, device=device, engine=engine, **model_options)


def apply_to_predict_args(args) -> None:
    """``segzoo predict --pipeline P``: the config's model, model_dir, batch_size and target_size fill the flags
    not given (flags given on the command line win, as in PaddleX)."""
    m = load_pipeline_config(args.pipeline).module
    if getattr(args, "config_file", None):
        raise ConfigError("--pipeline and -c are two configs; give one of them")
    if args.model is None:
        args.model = m.model_name
    if args.model_dir is None:
        args.model_dir = m.model_dir
    if args.batch_size is None:
        args.batch_size = m.batch_size
    if args.target_size is None:
        args.target_size = size_text(m.target_size)
