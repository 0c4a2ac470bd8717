"""The config file's schema: its sections (Global, CheckDataset, Train, ...) and :class:`SegzooConfig`.

Each section is a pydantic model that forbids unknown keys and checks types
and ranges; the field descriptions are the comments ``segzoo config MODEL``
prints. Importing this module does not import paddle.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..device import parse_device

__all__ = [
    "MODES",
    "TRAIN_TO_MODEL",
    "TRAIN_OWNED",
    "PRETRAINED_KEYWORDS",
    "GlobalConfig",
    "ConvertConfig",
    "SplitConfig",
    "CheckDatasetConfig",
    "AugmentConfig",
    "TrainConfig",
    "EvaluateConfig",
    "ExportConfig",
    "PredictConfig",
    "SegzooConfig",
]

MODES = ("check_dataset", "train", "evaluate", "export", "predict")

#: model-config fields that the ``Train`` section sets (PaddleX key -> model-config field)
TRAIN_TO_MODEL = {
    "num_classes": "num_classes",
    "learning_rate": "learning_rate",
    "warmup_steps": "warmup_iters",
    "crop_size": "crop_size",
}

#: model-config fields that a config sets in the ``Train`` section, never in ``Model`` (field -> Train key);
#: ``Train.pretrain_weight_path`` is read by the trainer (:mod:`segzoo.training.init_weights`), not the model config
TRAIN_OWNED = {**{v: k for k, v in TRAIN_TO_MODEL.items()}, "pretrained": "pretrain_weight_path"}

#: ``Train.pretrain_weight_path`` values that name PaddleX's published weights of ``Global.model``
PRETRAINED_KEYWORDS = ("official_backbone", "official")


class _Section(BaseModel):
    # numbers given for text fields (``-o Global.dataset_dir=2024``) are read as text
    model_config = ConfigDict(
        extra="forbid", validate_assignment=True, protected_namespaces=(), coerce_numbers_to_str=True
    )


# ---------------------------------------------------------------------------------------------
# sections


class GlobalConfig(_Section):
    """``Global``: which model, what to do, on which data and device, where to write."""

    model: str = Field(..., description="model name (see `segzoo list-models`)")
    mode: Literal["check_dataset", "train", "evaluate", "export", "predict"] = Field(
        "check_dataset", description="check_dataset | train | evaluate | export | predict"
    )
    dataset_dir: Optional[str] = Field(None, description="SegDataset folder (images/, annotations/, train.txt, val.txt)")
    device: Optional[str] = Field(
        None, description="cpu, gpu, gpu:0 or gpu:0,1 (several GPUs train in one process each); null: GPU if any"
    )
    output: str = Field("output", description="output folder")

    @field_validator("device")
    @classmethod
    def _device(cls, v):
        if v is None:
            return v
        parse_device(str(v))  # raises ConfigError (a ValueError) with the accepted forms
        return str(v).strip().lower()


class ConvertConfig(_Section):
    """``CheckDataset.convert``: convert a LabelMe folder into a SegDataset first."""

    enable: bool = Field(False, description="convert src_dataset_dir into Global.dataset_dir before checking")
    src_dataset_type: Optional[str] = Field(None, description="format of the source; segmentation supports LabelMe")
    src_dataset_dir: Optional[str] = Field(None, description="the LabelMe folder (never converted in place)")
    overwrite: bool = Field(False, description="replace a dataset_dir that was not written by an earlier conversion")


class SplitConfig(_Section):
    """``CheckDataset.split``: re-split train/val (the old lists are kept as .bak)."""

    enable: bool = Field(False, description="re-split train.txt/val.txt")
    train_percent: Optional[int] = Field(None, ge=1, le=99, description="share of samples in train.txt (%)")
    val_percent: Optional[int] = Field(None, ge=1, le=99, description="share of samples in val.txt (%)")
    seed: int = Field(0, description="shuffle seed of the split")

    @model_validator(mode="after")
    def _sum(self):
        if self.enable:
            if self.train_percent is None or self.val_percent is None:
                raise ValueError("split.enable needs train_percent and val_percent (summing to 100)")
            if self.train_percent + self.val_percent != 100:
                raise ValueError(
                    f"train_percent + val_percent must be 100, got {self.train_percent} + {self.val_percent}"
                )
        return self


class CheckDatasetConfig(_Section):
    """``CheckDataset``: the dataset check of ``Global.mode=check_dataset``."""

    convert: ConvertConfig = ConvertConfig()
    split: SplitConfig = SplitConfig()


class AugmentConfig(_Section):
    """``Train.augment``: the training augmentations, in the order they run."""

    min_scale: float = Field(0.5, gt=0, description="random rescaling: smallest factor (ResizeStepScaling)")
    max_scale: float = Field(2.0, gt=0, description="random rescaling: largest factor")
    scale_step: float = Field(0.25, ge=0, description="random rescaling: step between factors (0: continuous)")
    flip_prob: float = Field(0.5, ge=0, le=1, description="probability of a horizontal flip")
    distort_prob: float = Field(0.5, ge=0, le=1, description="probability of each photometric distortion")
    brightness: float = Field(0.4, ge=0, lt=1, description="brightness factor range 1 ± this")
    contrast: float = Field(0.4, ge=0, lt=1, description="contrast factor range 1 ± this")
    saturation: float = Field(0.4, ge=0, lt=1, description="saturation factor range 1 ± this")

    @model_validator(mode="after")
    def _scales(self):
        if self.min_scale > self.max_scale:
            raise ValueError(f"min_scale ({self.min_scale}) must be <= max_scale ({self.max_scale})")
        return self


class TrainConfig(_Section):
    """``Train``: PaddleX's training keys plus segzoo's (augmentation, checkpoints, workers)."""

    num_classes: Optional[int] = Field(
        None, gt=0, le=255, description="classes in the dataset; null: class_name.txt's count, else the model's"
    )
    epochs_iters: int = Field(1000, gt=0, description="training iterations")
    batch_size: int = Field(2, gt=0, description="images per iteration per device")
    learning_rate: Optional[float] = Field(None, gt=0, description="base learning rate; null: the model's")
    pretrain_weight_path: Optional[str] = Field(
        "official_backbone",
        description="weights to start from: official_backbone (the model's official ImageNet backbone weights, "
        "PaddleX's default), official (the whole trained model), an http(s) URL or a .pdparams path; "
        "null: from scratch",
    )
    warmup_steps: Optional[int] = Field(None, ge=0, description="linear warm-up iterations; null: the model's")
    resume_path: Optional[str] = Field(None, description="an iter_N checkpoint folder to continue from")
    log_interval: int = Field(10, gt=0, description="iterations between log lines in train.log")
    eval_interval: int = Field(100, gt=0, description="iterations between evaluations on the val split")
    save_interval: Optional[int] = Field(None, gt=0, description="iterations between checkpoints; null: eval_interval")
    keep_checkpoints: int = Field(5, gt=0, description="how many iter_N checkpoints to keep (the newest)")
    seed: int = Field(0, ge=0, description="seed of weights, sample order and augmentation")
    num_workers: int = Field(0, ge=0, description="data-loading worker processes (0: in the training process)")
    amp: Optional[bool] = Field(None, description="mixed precision; null: on for GPU, off on the CPU")
    num_processes: int = Field(
        1, gt=0, description="data-parallel processes on the CPU (GPUs: one per id in Global.device)"
    )
    nnodes: int = Field(1, gt=0, description="machines training together, each running segzoo train with its node_rank")
    master: Optional[str] = Field(None, description="HOST:PORT of node 0, where the machines meet (with nnodes > 1)")
    node_rank: int = Field(0, ge=0, description="this machine, 0 .. nnodes-1; node 0 writes checkpoints, logs, results")
    crop_size: Optional[tuple[int, int]] = Field(None, description="training crop (W, H); null: the model's")
    augment: AugmentConfig = AugmentConfig()
    export: bool = Field(True, description="export the best model to best_model/inference at the end")
    ema: bool = Field(
        True,
        description="keep an exponential moving average of the weights: model.pdema beside model.pdparams in "
        "iter_N/ and best_model/ (train_result.json's pdema), evaluated at every evaluation; false: none",
    )
    ema_decay: float = Field(0.999, gt=0, lt=1, description="EMA decay (ramped as min(decay, 1 - 1/(iter+1)))")

    @model_validator(mode="after")
    def _nodes(self):
        if self.node_rank >= self.nnodes:
            raise ValueError(f"node_rank {self.node_rank} must be below nnodes ({self.nnodes}): 0 .. {self.nnodes - 1}")
        if self.nnodes > 1 and not self.master:
            raise ValueError(f"nnodes {self.nnodes} needs master: HOST:PORT of node 0 (--master HOST:PORT)")
        if self.master is not None and not re.fullmatch(r"[^\s:/]+:\d{1,5}", self.master):
            raise ValueError(f"master {self.master!r} must be HOST:PORT, e.g. 10.0.0.1:8090")
        return self

    @field_validator("crop_size")
    @classmethod
    def _crop(cls, v):
        if v is not None and any(s <= 0 for s in v):
            raise ValueError("crop sides must be > 0")
        return v

    @field_validator("pretrain_weight_path")
    @classmethod
    def _weights_spec(cls, v):
        m = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", str(v)) if v is not None else None
        if m and m.group(1).lower() not in ("http", "https"):
            raise ValueError(f"{v}: only http(s) URLs are fetched; give an http(s) URL or a local path")
        return v

    @field_validator("resume_path")
    @classmethod
    def _local(cls, v):
        if v is not None and re.match(r"^[a-z]+://", str(v)):
            raise ValueError(f"{v} is a URL; resume from a local iter_N folder")
        return v


class EvaluateConfig(_Section):
    """``Evaluate``: which weights ``Global.mode=evaluate`` measures on the val split."""

    weight_path: Optional[str] = Field(
        None, description="a .pdparams file or checkpoint folder; null: <output>/best_model/model.pdparams"
    )
    log_interval: int = Field(10, gt=0, description="images between progress updates")


class ExportConfig(_Section):
    """``Export``: which weights ``Global.mode=export`` writes as an inference model."""

    weight_path: Optional[str] = Field(
        None, description="a .pdparams file or checkpoint folder; null: <output>/best_model/model.pdparams"
    )


class PredictConfig(_Section):
    """``Predict``: ``Global.mode=predict``."""

    model_dir: Optional[str] = Field(None, description="an exported model folder; null: <output>/best_model/inference")
    input: Optional[Union[str, list[str]]] = Field(None, description="image, folder, PDF, URL, or a list of these")
    batch_size: int = Field(1, gt=0, description="images per batch")
    target_size: Optional[Union[int, tuple[int, int]]] = Field(
        None, description="-1: original size; n: (n, n); [W, H]; null: the model's"
    )


class SegzooConfig(_Section):
    """A whole config file. ``Model`` holds the model's own config fields (see ``segzoo config MODEL``)."""

    Global: GlobalConfig
    CheckDataset: CheckDatasetConfig = CheckDatasetConfig()
    Train: TrainConfig = TrainConfig()
    Evaluate: EvaluateConfig = EvaluateConfig()
    Export: ExportConfig = ExportConfig()
    Predict: PredictConfig = PredictConfig()
    Model: dict[str, Any] = Field(
        default_factory=dict, description="the model's config fields (optimizer, weight decay, loss weights, ...)"
    )

    @property
    def output_dir(self) -> Path:
        return Path(self.Global.output)

