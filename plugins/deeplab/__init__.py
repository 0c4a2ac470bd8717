"""DeepLabV3 and DeepLabV3+ on ResNet-vd (paddleseg 2.8.0's classes, PaddleX's recipes).

Four models: Deeplabv3-R50, Deeplabv3-R101, Deeplabv3_Plus-R50, Deeplabv3_Plus-R101.
Backbone: ResNet-vd with output stride 8 and multi-grid (1, 2, 4); ASPP with
rates (1, 12, 24, 36). DeepLabV3+ adds a decoder on backbone stage 0.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from segzoo import ExportSupport, Figures, ModelCard, ModelConfig

from .._datasets import CITYSCAPES
from .._paddleseg import PaddleSegPlugin
from ..paddleseg_compat import import_paddleseg


class DeepLabConfig(ModelConfig):
    """Config of the DeepLab models (SGD with polynomial decay, PaddleX's Cityscapes recipe)."""

    output_stride: Literal[8, 16] = Field(8, description="backbone output stride")
    multi_grid: tuple[int, int, int] = Field((1, 2, 4), description="dilation multipliers of the last stage")
    aspp_ratios: tuple[int, ...] = Field((1, 12, 24, 36), min_length=1, description="ASPP dilation rates")
    aspp_out_channels: int = Field(256, gt=0)


def _builder(depth: int, plus: bool):
    def build(config: DeepLabConfig):
        import_paddleseg()
        from paddleseg.models import DeepLabV3, DeepLabV3P
        from paddleseg.models.backbones import ResNet50_vd, ResNet101_vd

        backbone_cls = ResNet50_vd if depth == 50 else ResNet101_vd
        backbone = backbone_cls(output_stride=config.output_stride, multi_grid=list(config.multi_grid))
        net_cls, indices = (DeepLabV3P, [0, 3]) if plus else (DeepLabV3, [3])
        return net_cls(
            num_classes=config.num_classes,
            backbone=backbone,
            backbone_indices=indices,
            aspp_ratios=list(config.aspp_ratios),
            aspp_out_channels=config.aspp_out_channels,
            align_corners=config.align_corners,
        )

    return build


def _plugin(name, depth, plus, miou, gpu, cpu, size):
    config_class = DeepLabConfig.with_defaults(
        name.replace("-", "").replace("_", "") + "Config",
        doc=f"Config of {name}.",
        crop_size=(1024, 512),
    )
    net = "DeepLabV3P" if plus else "DeepLabV3"
    card = ModelCard(
        name=name,
        family="deeplab",
        **CITYSCAPES.card_fields(),
        description=f"{net} with a ResNet{depth}_vd backbone, output stride 8",
        architecture=f"{net} / ResNet{depth}_vd (output_stride 8, multi_grid [1,2,4], "
        f"aspp_ratios [1,12,24,36]{', backbone_indices [0,3]' if plus else ''})",
        figures=Figures(miou=miou, gpu_ms=gpu[0], gpu_ms_hp=gpu[1], cpu_ms=cpu[0], cpu_ms_hp=cpu[1], size_mb=size),
        size_divisor=8,
        export=ExportSupport(),
        official={"name": name},
        config_class=config_class,
    )
    return PaddleSegPlugin(card, build=_builder(depth, plus))


DEEPLABV3_R50 = _plugin("Deeplabv3-R50", 50, False, 79.90, (647.56, 121.67), (3803.09, 3803.09), 138.3)
DEEPLABV3_R101 = _plugin("Deeplabv3-R101", 101, False, 80.85, (950.43, 178.50), (5517.14, 5517.14), 205.9)
DEEPLABV3P_R50 = _plugin("Deeplabv3_Plus-R50", 50, True, 80.36, (503.51, 122.30), (3543.91, 3543.91), 94.9)
DEEPLABV3P_R101 = _plugin("Deeplabv3_Plus-R101", 101, True, 81.10, (803.79, 175.45), (5136.21, 5136.21), 162.5)
