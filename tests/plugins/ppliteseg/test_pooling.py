"""PP-LiteSeg's shape-free adaptive pooling equals paddle's AdaptiveAvgPool2D and changes no weights."""

from __future__ import annotations

import numpy as np
import paddle
import pytest

import segzoo
from segzoo_plugins.ppliteseg.pooling import make_pooling_shape_free, shape_free_pool_class


@pytest.mark.parametrize("bins", [1, 2, 3, 4, 6])
@pytest.mark.parametrize("hw", [(1, 1), (2, 3), (5, 7), (13, 20), (16, 32), (33, 17)])
def test_values_equal_adaptive_average_pooling(bins, hw):
    paddle.seed(sum(hw) * 10 + bins)
    x = paddle.randn([2, 5, *hw])
    want = paddle.nn.AdaptiveAvgPool2D(bins)(x).numpy()
    got = shape_free_pool_class()(bins)(x).numpy()
    assert got.shape == want.shape == (2, 5, bins, bins)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_gradients_equal_adaptive_average_pooling():
    paddle.seed(3)
    data = paddle.randn([1, 4, 11, 9])
    grads = []
    for layer in (paddle.nn.AdaptiveAvgPool2D(4), shape_free_pool_class()(4)):
        x = data.clone()
        x.stop_gradient = False
        (layer(x) * paddle.arange(64, dtype="float32").reshape([1, 4, 4, 4])).sum().backward()
        grads.append(x.grad.numpy())
    np.testing.assert_allclose(grads[1], grads[0], rtol=1e-5, atol=1e-6)


def test_pp_liteseg_has_no_fixed_pooling_left_and_the_same_state_dict():
    from segzoo.compat import import_paddleseg

    import_paddleseg()
    from paddleseg.models import PPLiteSeg
    from paddleseg.models.backbones import STDC1

    model = segzoo.build_model("PP-LiteSeg-T", num_classes=3)
    layers = [type(m).__name__ for m in model.sublayers()]
    assert "AdaptiveAvgPool2D" not in layers and layers.count("ShapeFreeAdaptiveAvgPool2D") == 3
    original = PPLiteSeg(num_classes=3, backbone=STDC1(), arm_out_chs=[32, 64, 128], seg_head_inter_chs=[32, 64, 64])
    assert {k: v.shape for k, v in model.state_dict().items()} == {k: v.shape for k, v in original.state_dict().items()}
    # the same weights give the same scores as paddleseg's own network
    original.set_state_dict(model.state_dict())
    model.eval(), original.eval()
    x = paddle.randn([1, 3, 96, 160])
    np.testing.assert_allclose(model(x)[0].numpy(), original(x)[0].numpy(), rtol=1e-4, atol=1e-5)
    assert make_pooling_shape_free(model) == 0  # idempotent: nothing left to replace
