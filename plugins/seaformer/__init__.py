"""SeaFormer_tiny / _small / _base / _large: squeeze-enhanced axial transformers for mobile segmentation.

paddleseg 2.8.0 has no SeaFormer; :mod:`segzoo_plugins.seaformer.network`
implements it in Paddle with the state-dict names and shapes of PaddleSeg's
later version, so PaddleX's official SeaFormer weights load by name.
Trained with AdamW (lr 2.5e-4, weight decay 0.01) after a linear warm-up.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from segzoo import ExportSupport, Figures, ModelCard, ModelConfig, ModelPlugin

from .._datasets import ADE20K, ADE20K_PROTOCOL  # noqa: F401  (ADE20K_PROTOCOL: moved; old home keeps it)


class SeaFormerConfig(ModelConfig):
    """Config of the SeaFormer models (AdamW with warm-up and polynomial decay)."""

    num_classes: int = Field(150, gt=0, le=65535, description="number of classes (255 is the ignore label)")
    optimizer: Literal["sgd", "adamw"] = "adamw"
    learning_rate: float = Field(2.5e-4, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    warmup_iters: int = Field(1500, ge=0)
    lr_power: float = Field(1.0, gt=0, description="power of the polynomial decay")
    crop_size: tuple[int, int] = Field((512, 512), description="training crop (W, H)")


def _builder(variant: str):
    def build(config: SeaFormerConfig):
        from .network import build_seaformer

        return build_seaformer(variant, num_classes=config.num_classes, align_corners=config.align_corners)

    return build


# variant: (mIoU, GPU ms, CPU ms, size MB, head channels, embed dims)
_VARIANTS = {
    "tiny": (34.58, 13.95, 330.13, 6.1, 96, "[64,96]"),
    "small": (38.73, 19.23, 358.34, 14.3, 128, "[96,128]"),
    "base": (40.92, 24.41, 397.57, 30.8, 160, "[128,160]"),
    "large": (43.66, 27.81, 550.46, 49.8, 192, "[128,160,192]"),
}


def _plugin(variant: str) -> ModelPlugin:
    miou, gpu, cpu, size, head, embed = _VARIANTS[variant]
    name = f"SeaFormer_{variant}"
    card = ModelCard(
        name=name,
        family="seaformer",
        **ADE20K.card_fields(),
        description=f"SeaFormer-{variant.capitalize()}: squeeze-enhanced axial transformer, light head",
        architecture=f"SeaFormerSeg / SeaFormer {variant}, head_channels {head}, embed_dims {embed}",
        figures=Figures(miou=miou, gpu_ms=gpu, cpu_ms=cpu, size_mb=size),
        size_divisor=32,
        export=ExportSupport(),
        official={"name": name},
        config_class=SeaFormerConfig.with_defaults(f"SeaFormer{variant.capitalize()}Config", doc=f"Config of {name}."),
    )
    return ModelPlugin(card, build=_builder(variant))


SEAFORMER_TINY = _plugin("tiny")
SEAFORMER_SMALL = _plugin("small")
SEAFORMER_BASE = _plugin("base")
SEAFORMER_LARGE = _plugin("large")
