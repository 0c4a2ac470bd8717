"""OCRNet on HRNet (paddleseg 2.8.0's classes, PaddleX's recipes): OCRNet_HRNet-W18 and -W48.

In train mode OCRNet returns two logits (the OCR head and the soft object
regions), weighted 1 and 0.4 in the loss.
"""

from __future__ import annotations

from pydantic import Field

from segzoo import ExportSupport, Figures, ModelCard, ModelConfig

from .._datasets import CITYSCAPES
from .._paddleseg import PaddleSegPlugin
from ..paddleseg_compat import import_paddleseg


class OCRNetConfig(ModelConfig):
    """Config of the OCRNet models (SGD with polynomial decay)."""

    ocr_mid_channels: int = Field(512, gt=0)
    ocr_key_channels: int = Field(256, gt=0)
    loss_weights: tuple[float, float] = Field((1.0, 0.4), description="weights of the OCR and auxiliary logits")


def _builder(width: int):
    def build(config: OCRNetConfig):
        import_paddleseg()
        from paddleseg.models import OCRNet
        from paddleseg.models.backbones import HRNet_W18, HRNet_W48

        backbone = (HRNet_W18 if width == 18 else HRNet_W48)(align_corners=config.align_corners)
        return OCRNet(
            num_classes=config.num_classes,
            backbone=backbone,
            backbone_indices=[0],
            ocr_mid_channels=config.ocr_mid_channels,
            ocr_key_channels=config.ocr_key_channels,
            align_corners=config.align_corners,
        )

    return build


def _plugin(name, width, miou, gpu, cpu, size):
    card = ModelCard(
        name=name,
        family="ocrnet",
        **CITYSCAPES.card_fields(),
        description=f"OCRNet (object-contextual representations) on HRNet-W{width}",
        architecture=f"OCRNet / HRNet_W{width}, backbone_indices [0], losses [1, 0.4]",
        figures=Figures(miou=miou, gpu_ms=gpu[0], gpu_ms_hp=gpu[1], cpu_ms=cpu[0], cpu_ms_hp=cpu[1], size_mb=size),
        size_divisor=32,
        export=ExportSupport(),
        official={"name": name},
        config_class=OCRNetConfig.with_defaults(f"OCRNetHRNetW{width}Config", doc=f"Config of {name}."),
    )
    return PaddleSegPlugin(card, build=_builder(width))


OCRNET_W18 = _plugin("OCRNet_HRNet-W18", 18, 80.67, (286.12, 80.76), (1794.03, 1794.03), 43.1)
OCRNET_W48 = _plugin("OCRNet_HRNet-W48", 48, 82.15, (627.36, 170.76), (3531.61, 3531.61), 249.8)
