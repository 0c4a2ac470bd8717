"""Model cards and the base class of every model's config.

A card is what the registry knows about a model without building it: its
published figures, the protocol they were measured with, what it exports to,
and the pydantic class that validates its config. Plugins define cards at
import time, so they must stay cheap (no paddle import).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.fields import FieldInfo


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
    """What the model can be exported to, and why not where it cannot."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    static: bool = True
    dynamic_shape: bool = True
    fixed_input_shape: Optional[tuple[int, int, int, int]] = Field(
        None, description="N,C,H,W used when dynamic_shape is False"
    )
    onnx: bool = True
    onnx_static_hw: bool = Field(False, description="ONNX conversion needs a fixed H×W")
    note: str = ""


class ModelConfig(BaseModel):
    """Fields every model's config has. Plugins subclass it and add their own.

    Unknown keys are errors (``extra="forbid"``) and values are checked, so a
    typo fails before any work starts, with the path of the field.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())

    num_classes: int = Field(19, gt=0, le=65535, description="number of classes (255 is the ignore label)")
    pretrained: Optional[Path] = Field(None, description="path of a .pdparams file to load after building")
    ignore_index: int = Field(255, ge=0, description="label value without a class")
    align_corners: bool = False
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    crop_size: tuple[int, int] = Field((512, 512), description="training crop (W, H)")
    loss_weights: tuple[float, ...] = Field((1.0,), description="weight of each output's loss")
    loss: Literal["ce", "ohem"] = "ce"
    optimizer: Literal["sgd", "adamw"] = "sgd"
    learning_rate: float = Field(0.01, gt=0)
    weight_decay: float = Field(4e-5, ge=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    warmup_iters: int = Field(0, ge=0)
    lr_power: float = Field(0.9, gt=0, description="power of the polynomial decay")
    grad_clip: Optional[float] = Field(None, gt=0, description="global-norm gradient clip")

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

    @field_validator("std")
    @classmethod
    def _std_positive(cls, v):
        if any(s <= 0 for s in v):
            raise ValueError("every std must be > 0")
        return v

    @field_validator("crop_size")
    @classmethod
    def _crop_positive(cls, v):
        if any(s <= 0 for s in v):
            raise ValueError("crop sides must be > 0")
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

    name: str
    family: str
    dataset: str
    num_classes: int
    description: str = ""
    architecture: str = Field("", description="network class and backbone")
    figures: Figures = Figures()
    eval_protocol: str = Field("", description="how the published mIoU was measured")
    input_size: tuple[int, int] = Field((512, 512), description="default inference size (W, H)")
    size_divisor: int = Field(32, gt=0, description="inputs are padded to a multiple of this")
    export: ExportSupport = ExportSupport()
    config_class: type[ModelConfig] = Field(ModelConfig, exclude=True)
    plugin_version: str = ""

    def default_config(self, **overrides) -> ModelConfig:
        """The model's validated config with ``overrides`` applied."""
        base = {"num_classes": self.num_classes}
        base.update(overrides)
        return self.config_class(**base)
