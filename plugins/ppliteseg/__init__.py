"""PP-LiteSeg on STDC (paddleseg 2.8.0's classes, PaddleX's recipes): PP-LiteSeg-T and -B.

In train mode PP-LiteSeg returns three logits (the head and two auxiliary
heads), each weighted 1 in the loss. Its context module's adaptive pooling
is replaced by a shape-free equivalent (:mod:`.pooling`, same values, no
parameters), so the network exports and converts to ONNX once with a dynamic
H×W and runs any image size on every engine.
"""

from __future__ import annotations

from pydantic import Field

from segzoo import ExportSupport, Figures, ModelCard, ModelConfig

from .._datasets import CITYSCAPES
from .._paddleseg import PaddleSegPlugin
from ..paddleseg_compat import import_paddleseg


class PPLiteSegConfig(ModelConfig):
    """Config of the PP-LiteSeg models (SGD with polynomial decay)."""

    arm_out_chs: tuple[int, int, int] = Field((64, 96, 128), description="channels of the 3 fusion modules")
    seg_head_inter_chs: tuple[int, int, int] = Field((64, 64, 64), description="channels inside the 3 seg heads")
    cm_bin_sizes: tuple[int, ...] = Field((1, 2, 4), min_length=1, description="pooling bins of the context module")
    loss_weights: tuple[float, float, float] = Field((1.0, 1.0, 1.0), description="weights of the 3 train-mode logits")


def _builder(stdc: int):
    def build(config: PPLiteSegConfig):
        import_paddleseg()
        from paddleseg.models import PPLiteSeg
        from paddleseg.models.backbones import STDC1, STDC2

        from .pooling import make_pooling_shape_free

        model = PPLiteSeg(
            num_classes=config.num_classes,
            backbone=(STDC1 if stdc == 1 else STDC2)(),
            arm_out_chs=list(config.arm_out_chs),
            seg_head_inter_chs=list(config.seg_head_inter_chs),
            cm_bin_sizes=list(config.cm_bin_sizes),
        )
        make_pooling_shape_free(model)
        return model

    return build


_EXPORT = ExportSupport(
    note="the context module's adaptive pooling is computed shape-free, so exports and ONNX keep a dynamic H×W "
    "(a PaddleX export of PP-LiteSeg has fixed pooling kernels: it converts to ONNX only at a fixed H×W, so the "
    "ONNX engines rewrite its pooling ops the same way before converting it)",
    rebuild_exports=True,
    program_rewrite="segzoo_plugins.ppliteseg.pooling:make_program_pooling_shape_free",
)


def _plugin(
    variant: str, stdc: int, channels: str, figures: Figures, default_of: tuple[str, ...] = (), **config_defaults
) -> PaddleSegPlugin:
    name = f"PP-LiteSeg-{variant}"
    card = ModelCard(
        name=name,
        family="ppliteseg",
        **CITYSCAPES.card_fields(),
        description=f"PP-LiteSeg, real-time segmentation on STDC{stdc}",
        architecture=f"PPLiteSeg / STDC{stdc}, {channels}",
        figures=figures,
        size_divisor=32,
        export=_EXPORT,
        official={"name": name},
        default_of=default_of,
        config_class=PPLiteSegConfig.with_defaults(
            f"PPLiteSeg{variant}Config", doc=f"Config of {name}.", **config_defaults
        ),
    )
    return PaddleSegPlugin(card, build=_builder(stdc))


PPLITESEG_T = _plugin(
    "T", 1, "arm_out_chs [32,64,128], seg_head_inter_chs [32,64,64]",
    Figures(miou=73.10, gpu_ms=30.16, gpu_ms_hp=14.03, cpu_ms=420.07, cpu_ms_hp=235.01, size_mb=28.5),
    default_of=("semantic_segmentation",),  # PaddleX's semantic_segmentation.yaml runs PP-LiteSeg-T
    arm_out_chs=(32, 64, 128), seg_head_inter_chs=(32, 64, 64),
)
PPLITESEG_B = _plugin(
    "B", 2, "class defaults (arm_out_chs [64,96,128], seg_head_inter_chs [64,64,64])",
    Figures(miou=75.25, gpu_ms=40.92, gpu_ms_hp=20.18, cpu_ms=494.32, cpu_ms_hp=310.34, size_mb=47.0),
)
