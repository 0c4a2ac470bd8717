"""Model cards and the base class of every model's config.

A card is what the registry knows about a model without building it: its
published figures, the protocol they were measured with, what it exports to,
and the pydantic class that validates its config. Plugins define cards at
import time, so they must stay cheap (no paddle import).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic.fields import FieldInfo

#: ``ModelCard.input_size`` of a card that does not set it
DEFAULT_INPUT_SIZE = (512, 512)

#: config fields whose every value must be > 0, and the message when one is not
_POSITIVE = {"std": "every std must be > 0", "crop_size": "crop sides must be > 0"}


class Figures(BaseModel):
    """Published numbers (PaddleX model list). ``None`` where none is published."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    miou: Optional[float] = Field(None, description="mIoU in % on the card's dataset")
    gpu_ms: Optional[float] = Field(None, description="GPU latency, normal mode (T4, FP32)")
    gpu_ms_hp: Optional[float] = Field(None, description="GPU latency, high-performance mode")
    cpu_ms: Optional[float] = Field(None, description="CPU latency, normal mode (8 threads)")
    cpu_ms_hp: Optional[float] = Field(None, description="CPU latency, high-performance mode")
    size_mb: Optional[float] = Field(None, description="inference model size on disk")


class ExportSupport(BaseModel):
    """What the plugin *declares* its model exports to, and why not where it cannot.

    segzoo acts on these declarations (export refuses ``static=False``, the
    ONNX engine falls back for ``onnx=False``...) but does not take them on
    trust: :class:`segzoo.testing.ModelContract` checks them for real, and
    ``segzoo info NAME --check`` runs those checks.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    static: bool = Field(
        True, description="the network exports to a static graph (paddle.jit.to_static); False: export refuses it"
    )
    dynamic_shape: bool = Field(
        True, description="the exported graph takes any N×3×H×W; False: it is exported at fixed_input_shape"
    )
    fixed_input_shape: Optional[tuple[int, int, int, int]] = Field(
        None, description="N,C,H,W the graph is exported at when dynamic_shape is False (required then)"
    )
    onnx: bool = Field(
        True, description="the export converts to ONNX (paddle2onnx); False: the onnxruntime engine falls back"
    )
    onnx_static_hw: bool = Field(
        False, description="ONNX conversion needs a fixed H×W: the onnxruntime engine converts once per input size"
    )
    rebuild_exports: bool = Field(
        False, description="the plugin's network exports a better graph of the same function than paddleseg's "
        "(faster, or convertible at any H×W): the ONNX engines convert exports made elsewhere (PaddleX's official "
        "models) through it, with their weights, without trying the program's own conversion first"
    )
    program_rewrite: Optional[str] = Field(
        None, pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$",
        description="'module:function' that rewrites an exported PIR program (one made elsewhere, such as "
        "PaddleX's) in place into the same function in ops that convert at any H×W, and returns how many ops it "
        "rewrote: with rebuild_exports, the ONNX engines convert the rewritten program (no network to build or "
        "trace) and fall back to rebuilding the network when it rewrites nothing or its conversion fails",
    )
    note: str = Field("", description="why an export or conversion is not supported; shown in errors and by segzoo info")


class OfficialWeights(BaseModel):
    """The weights PaddleX publishes for a model (see :mod:`segzoo.official` for the URLs)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="the name the files are published under (PaddleX's model name)")
    backbone: Literal["backbone_imagenet", "model"] = Field(
        "backbone_imagenet",
        description="what training starts from by default: <name>_backbone_imagenet_pretrained.pdparams, "
        "or the whole model's <name>_pretrained.pdparams",
    )


class ModelConfig(BaseModel):
    """Fields every model's config has. Plugins subclass it and add their own.

    Unknown keys are errors (``extra="forbid"``) and values are checked, so a
    typo fails before any work starts, with the path of the field.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())

    num_classes: int = Field(
        19, gt=0, le=65535,
        description="classes the network predicts (labels 0..num_classes-1); the card's num_classes is the default",
    )
    pretrained: Optional[Path] = Field(
        None, description="a .pdparams file loaded after building; entries that do not fit stay as built and are reported"
    )
    ignore_index: int = Field(255, ge=0, description="label value of unlabelled pixels: no loss, no metric")
    align_corners: bool = Field(
        False, description="bilinear resizing mode, for plugins whose build passes it to the network (others ignore it)"
    )
    mean: tuple[float, float, float] = Field(
        (0.5, 0.5, 0.5), description="RGB mean of (x / 255 - mean) / std, in preprocess and in inference.yml"
    )
    std: tuple[float, float, float] = Field(
        (0.5, 0.5, 0.5), description="RGB std of (x / 255 - mean) / std, every value > 0"
    )
    crop_size: tuple[int, int] = Field(
        (512, 512),
        description="training crop (W, H): a random window of this size; smaller images are padded up to it "
        "(labels with ignore_index)",
    )
    loss_weights: tuple[float, ...] = Field(
        (1.0,), description="weight of each train-mode output's loss; one per output the network returns"
    )
    loss: Literal["ce", "ohem"] = Field(
        "ce", description="ce: cross entropy; ohem: online hard example mining, only where the plugin's build_loss has it"
    )
    optimizer: Literal["sgd", "adamw"] = Field("sgd", description="sgd: momentum SGD with L2 decay; adamw: AdamW")
    learning_rate: float = Field(0.01, gt=0, description="base learning rate of the polynomial schedule")
    weight_decay: float = Field(4e-5, ge=0, description="L2 decay (sgd) or decoupled weight decay (adamw)")
    momentum: float = Field(0.9, ge=0, lt=1, description="momentum of sgd (adamw ignores it)")
    warmup_iters: int = Field(0, ge=0, description="linear warm-up iterations before the decay (0: none)")
    lr_power: float = Field(0.9, gt=0, description="power of the polynomial decay (1: linear)")
    grad_clip: Optional[float] = Field(None, gt=0, description="global-norm gradient clip (None: no clipping)")

    @classmethod
    def with_defaults(cls, name: str, doc: str = "", **defaults):
        """A subclass called ``name`` whose fields take ``defaults``: one config class per model.

        >>> PPLiteSegTConfig = PPLiteSegConfig.with_defaults("PPLiteSegTConfig", crop_size=(512, 512))
        """
        unknown = sorted(set(defaults) - set(cls.model_fields))
        if unknown:
            raise TypeError(f"{cls.__name__} has no field(s) {unknown}")
        annotations = {k: cls.model_fields[k].annotation for k in defaults}
        namespace = {"__annotations__": annotations, "__doc__": doc or cls.__doc__, "__module__": cls.__module__}
        for key, value in defaults.items():
            namespace[key] = FieldInfo.merge_field_infos(cls.model_fields[key], default=value)
        return type(name, (cls,), namespace)

    @field_validator(*_POSITIVE)
    @classmethod
    def _all_positive(cls, v, info: ValidationInfo):
        if any(s <= 0 for s in v):
            raise ValueError(_POSITIVE[info.field_name])
        return v

    @field_validator("pretrained")
    @classmethod
    def _pretrained_exists(cls, v):
        if v is not None and not Path(v).expanduser().is_file():
            raise ValueError(f"weights file {v} does not exist; give the path of a .pdparams file")
        return None if v is None else Path(v).expanduser()


class ModelCard(BaseModel):
    """Everything the registry can tell about a model without building it."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True, protected_namespaces=())

    name: str = Field(description="the model name: equal to the entry-point name under segzoo.models")
    family: str = Field(description="a group of related models, filtered with list-models --family")
    dataset: str = Field(description="the dataset the published figures (and num_classes) refer to")
    num_classes: int = Field(gt=0, description="default classes of the config (the published dataset's)")
    description: str = Field("", description="one line for people, shown by segzoo info and segzoo config")
    architecture: str = Field("", description="network class and backbone, shown by info")
    figures: Figures = Field(Figures(), description="published mIoU, latency and size (None where none)")
    eval_protocol: str = Field("", description="how the published mIoU was measured (resolution, flips, split)")
    input_size: tuple[int, int] = Field(
        DEFAULT_INPUT_SIZE,
        description="typical input (W, H): sliding-window size above max_pixels, the auto engine's probe and "
        "TensorRT's optimal shape; predictions still run at each image's own size unless target_size is set",
    )
    size_divisor: int = Field(
        32, gt=0, description="the network's output stride: the sides the contract checks, the auto engine's probe "
        "and segzoo benchmark use are multiples of it (predictions do not pad to it; see pad_to)",
    )
    pad_to: Optional[int] = Field(
        None, gt=0,
        description="only for a network that cannot take every input size: each image is padded right and bottom "
        "(with 0 after normalising) to a multiple of this, and the scores are cropped back. None (the default, and "
        "every built-in model): each image is fed at its own size, as PaddleX and paddleseg do; padding would change "
        "the masks of models with global context (pooling, attention)",
    )
    pad_reason: str = Field("", description="why the network needs pad_to (shown by segzoo info); required with pad_to")
    default_of: tuple[str, ...] = Field(
        (), description="the PaddleX pipelines (e.g. semantic_segmentation) whose default model this is, as in "
        "PaddleX's pipeline configs: create_pipeline and segzoo config --pipeline run it when no model is named",
    )
    export: ExportSupport = Field(ExportSupport(), description="what the plugin declares its model exports to")
    official: Optional[OfficialWeights] = Field(
        None, description="the weights PaddleX publishes for this model (create_model(name) uses them); None: none"
    )
    backbone_prefix: str = Field(
        "backbone.",
        description="where the backbone's tensors are in the model's state dict: a backbone weights file "
        "(named as the backbone's own state dict, e.g. ImageNet weights) loads under this prefix",
    )
    config_class: type[ModelConfig] = Field(
        ModelConfig, exclude=True, description="the pydantic config class (a ModelConfig subclass) of this model"
    )
    plugin_version: str = Field("", description="free-form version of the plugin (segzoo plugins shows the distribution's)")

    @model_validator(mode="after")
    def _pad_reason_given(self):
        if self.pad_to is not None and not self.pad_reason.strip():
            raise ValueError("a card with pad_to must say why in pad_reason (its network cannot take every input size)")
        return self

    @property
    def input_size_is_default(self) -> bool:
        """True when the plugin did not set ``input_size`` (it is segzoo's :data:`DEFAULT_INPUT_SIZE`)."""
        return "input_size" not in self.model_fields_set

    def describe_input_size(self) -> str:
        """``"1024x512"``, or ``"512x512 (segzoo's default; the card does not set input_size)"``."""
        w, h = self.input_size
        text = f"{w}x{h}"
        return text + (" (segzoo's default; the card does not set input_size)" if self.input_size_is_default else "")

    def default_config(self, **overrides) -> ModelConfig:
        """The model's validated config with ``overrides`` applied (pydantic's errors as they come).

        The one place that puts the card's defaults under a config; everyone else
        asks :meth:`segzoo.Registry.config` (``segzoo.get_registry().config(name, ...)``),
        which calls this and turns a bad value into a ``ConfigError`` naming the field.
        """
        base = {"num_classes": self.num_classes}
        base.update(overrides)
        return self.config_class(**base)
