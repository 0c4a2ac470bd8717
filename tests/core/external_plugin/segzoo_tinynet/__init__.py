"""TinyNet: a two-layer segmentation network, registered with segzoo through an entry point.

Importing this module must stay cheap: no paddle here, only the card and config.
"""

from pydantic import Field

from segzoo import ExportSupport, Figures, ModelCard, ModelConfig, ModelPlugin


class TinyNetConfig(ModelConfig):
    width: int = Field(8, gt=0, description="channels of the hidden layer")
    learning_rate: float = Field(0.05, gt=0)


def build(config: TinyNetConfig):
    from .network import TinyNet

    return TinyNet(config.num_classes, config.width)


TINYNET = ModelPlugin(
    ModelCard(
        name="TinyNet",
        family="tinynet",
        dataset="shapes",
        num_classes=4,
        description="two 3x3 convolutions at full resolution",
        architecture="TinyNet / none",
        figures=Figures(miou=None),
        eval_protocol="none: a test fixture",
        input_size=(64, 64),
        size_divisor=4,
        export=ExportSupport(),
        config_class=TinyNetConfig,
    ),
    build=build,
)
