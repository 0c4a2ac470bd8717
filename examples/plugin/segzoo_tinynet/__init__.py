"""TinyNet's plugin: its card and config. Importing this module must not import paddle."""

from pydantic import Field

from segzoo import ExportSupport, ModelCard, ModelConfig, ModelPlugin


class TinyNetConfig(ModelConfig):
    """Config of TinyNet: ModelConfig's fields, two of them with other defaults, and one of its own."""

    width: int = Field(8, gt=0, description="channels of the first convolution (the second has twice as many)")
    learning_rate: float = Field(0.05, gt=0, description="base learning rate of the polynomial schedule")
    crop_size: tuple[int, int] = Field((64, 64), description="training crop (W, H)")


def build(config: TinyNetConfig):
    from .network import TinyNet  # paddle is imported here, when a model is built

    return TinyNet(config.num_classes, config.width)


TINYNET = ModelPlugin(
    ModelCard(
        name="TinyNet",
        family="tinynet",
        dataset="drawn shapes",
        num_classes=4,
        description="two strided convolutions and a bilinear upsampling: a plugin example",
        architecture="TinyNet / none (output stride 4)",
        eval_protocol="not published: an example",
        input_size=(64, 64),
        size_divisor=4,
        export=ExportSupport(static=True, dynamic_shape=True, onnx=True),
        config_class=TinyNetConfig,
    ),
    build=build,
)
