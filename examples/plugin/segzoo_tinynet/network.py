"""TinyNet, the network: paddle is imported here only."""

import paddle
import paddle.nn as nn
import paddle.nn.functional as F


def conv_bn_relu(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2D(cin, cout, 3, stride=stride, padding=1), nn.BatchNorm2D(cout), nn.ReLU())


class TinyNet(nn.Layer):
    def __init__(self, num_classes: int, width: int):
        super().__init__()
        self.body = nn.Sequential(conv_bn_relu(3, width, 2), conv_bn_relu(width, 2 * width, 2))
        self.head = nn.Conv2D(2 * width, num_classes, 1)

    def forward(self, x):
        logits = self.head(self.body(x))  # 1/4 of the input's size
        # back to the input's H×W, taken as a tensor: the exported graph then takes any size
        return [F.interpolate(logits, size=paddle.shape(x)[2:], mode="bilinear")]
