"""SegFormer-B0 … B5 on the Mix Vision Transformer (paddleseg 2.8.0's classes, PaddleX's recipes).

Trained with AdamW (lr 6e-5, weight decay 0.01) and linear decay; the
all-MLP decoder has 256 channels for B0/B1 and 768 for B2–B5. Exported, the
decoder's fuse convolution runs before the upsampling, folded into the stage
projections (:mod:`.decoder`: the same function, 0.6× the CPU time for B0),
and PaddleX's official exports are converted through this network.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from segzoo import ExportSupport, Figures, ModelCard, ModelConfig

from .._datasets import CITYSCAPES
from .._paddleseg import PaddleSegPlugin
from ..paddleseg_compat import import_paddleseg


class SegFormerConfig(ModelConfig):
    """Config of the SegFormer models (AdamW, linear decay)."""

    embedding_dim: int = Field(256, gt=0, description="channels of the all-MLP decoder")
    optimizer: Literal["sgd", "adamw"] = "adamw"
    learning_rate: float = Field(6e-5, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    lr_power: float = Field(1.0, gt=0)


def _builder(variant: str):
    def build(config: SegFormerConfig):
        import_paddleseg()
        from paddleseg.models import SegFormer
        from paddleseg.models.backbones import mix_transformer

        from .decoder import segformer_class

        backbone = getattr(mix_transformer, f"MixVisionTransformer_{variant}")()
        return segformer_class(SegFormer)(
            num_classes=config.num_classes,
            backbone=backbone,
            embedding_dim=config.embedding_dim,
            align_corners=config.align_corners,
        )

    return build


# variant: (decoder channels, mIoU, GPU ms, CPU ms, size MB)
_VARIANTS = {
    "B0": (256, 76.73, 11.19, 268.93, 13.2),
    "B1": (256, 78.35, 18.00, 403.39, 48.5),
    "B2": (768, 81.60, 48.04, 1248.52, 96.9),
    "B3": (768, 82.47, 64.34, 1666.35, 167.3),
    "B4": (768, 82.38, 82.43, 1995.42, 226.7),
    "B5": (768, 82.58, 97.37, 2420.19, 229.7),
}


def _plugin(variant: str) -> PaddleSegPlugin:
    dim, miou, gpu, cpu, size = _VARIANTS[variant]
    name = f"SegFormer-{variant}"
    card = ModelCard(
        name=name,
        family="segformer",
        **CITYSCAPES.card_fields(),
        description=f"SegFormer with the MiT-{variant} encoder and an all-MLP decoder",
        architecture=f"SegFormer / MixVisionTransformer_{variant}, embedding_dim {dim}",
        figures=Figures(miou=miou, gpu_ms=gpu, cpu_ms=cpu, size_mb=size),
        size_divisor=32,
        export=ExportSupport(rebuild_exports=True),
        official={"name": name},
        config_class=SegFormerConfig.with_defaults(
            f"SegFormer{variant}Config", doc=f"Config of {name}.", embedding_dim=dim
        ),
    )
    return PaddleSegPlugin(card, build=_builder(variant))


SEGFORMER_B0 = _plugin("B0")
SEGFORMER_B1 = _plugin("B1")
SEGFORMER_B2 = _plugin("B2")
SEGFORMER_B3 = _plugin("B3")
SEGFORMER_B4 = _plugin("B4")
SEGFORMER_B5 = _plugin("B5")
