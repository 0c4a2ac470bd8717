"""PP-LiteSeg's shape-free adaptive pooling equals paddle's AdaptiveAvgPool2D and changes no weights."""

from __future__ import annotations

import numpy as np
import paddle
import pytest

import segzoo
from segzoo_plugins.ppliteseg.pooling import (
    make_pooling_shape_free,
    make_program_pooling_shape_free,
    shape_free_pool_class,
)


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


def test_a_programs_adaptive_poolings_are_rewritten_to_the_same_function(tmp_path):
    """An exported program's adaptive average pool2d ops (square and not) are replaced by shape-free ops: the
    program then gives the same values at sizes its bins do not divide; other poolings stay as they are."""
    paddle.seed(4)
    net = paddle.nn.Sequential(paddle.nn.Conv2D(3, 4, 3, padding=1), paddle.nn.AvgPool2D(2))
    pools = [paddle.nn.AdaptiveAvgPool2D(2), paddle.nn.AdaptiveAvgPool2D((3, 2)), paddle.nn.AdaptiveMaxPool2D(2)]

    class Net(paddle.nn.Layer):
        def __init__(self):
            super().__init__()
            self.net, self.pools = net, paddle.nn.LayerList(pools)

        def forward(self, x):
            y = self.net(x)
            return paddle.concat([p(y).flatten(1) for p in self.pools], axis=1)

    layer = Net()
    layer.eval()
    spec = [paddle.static.InputSpec([None, 3, None, None], "float32", "x")]
    paddle.jit.save(paddle.jit.to_static(layer, input_spec=spec, full_graph=True), str(tmp_path / "inference"))
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal((1, 3, h, w)).astype(np.float32) for h, w in ((26, 40), (66, 34), (14, 18))]
    want = [layer(paddle.to_tensor(x)).numpy() for x in inputs]
    paddle.enable_static()
    try:
        with paddle.static.scope_guard(paddle.static.Scope()):
            exe = paddle.static.Executor(paddle.CPUPlace())
            program, feeds, fetches = paddle.static.load_inference_model(str(tmp_path / "inference"), exe)
            names = lambda: [op.name() for op in program.global_block().ops]  # noqa: E731
            assert names().count("pd_op.pool2d") == 3 and names().count("pd_op.max_pool2d_with_index") == 1
            assert make_program_pooling_shape_free(program) == 2  # the adaptive average ones
            assert names().count("pd_op.pool2d") == 1 and names().count("pd_op.max_pool2d_with_index") == 1
            got = [exe.run(program, feed={feeds[0]: x}, fetch_list=fetches)[0] for x in inputs]
    finally:
        paddle.disable_static()
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
