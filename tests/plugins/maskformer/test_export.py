"""MaskFormer exports as the card says: a static graph at a fixed 1×3×512×512 input, scores included.

This drives paddle directly (``paddle.jit.to_static`` + ``paddle.jit.save``,
then ``paddle.inference``) with the model wrapped by the registry's
``postprocess``, the way segzoo's export does, so the card's ``export``
fields are backed by a run.
"""

import numpy as np
import paddle
import pytest


class _WithScores(paddle.nn.Layer):
    def __init__(self, registry, name, config, model):
        super().__init__()
        self.model = model
        self._post = lambda outputs: registry.postprocess(name, config, outputs)

    def forward(self, x):
        return self._post(self.model(x))


def _predictor(prefix, onednn):
    from paddle import inference

    config = inference.Config(str(prefix) + ".json", str(prefix) + ".pdiparams")
    config.disable_gpu()
    config.set_cpu_math_library_num_threads(2)
    config.disable_glog_info()
    if onednn:
        config.enable_mkldnn()
        # the first crashes on bilinear interpolate (every model); the second fuses Swin's
        # 6-D window transposes into a reshape of the wrong rank
        config.delete_pass("onednn_placement_pass")
        config.delete_pass("operator_reshape_onednn_fuse_pass")
    else:
        config.disable_mkldnn()
    return inference.create_predictor(config)


@pytest.mark.slow
def test_static_export_at_the_fixed_shape_matches_dygraph(registry, tmp_path):
    name = "MaskFormer_tiny"
    card = registry.card(name)
    assert not card.export.dynamic_shape
    shape = list(card.export.fixed_input_shape)
    cfg = registry.config(name, num_classes=3)
    paddle.seed(4)
    net = _WithScores(registry, name, cfg, registry.build_model(name, cfg))
    net.eval()
    x = np.random.default_rng(0).standard_normal(shape).astype("float32")
    with paddle.no_grad():
        expected = net(paddle.to_tensor(x)).numpy()
    assert expected.shape == (1, 3, 512, 512)

    spec = [paddle.static.InputSpec(shape, "float32", "x")]
    static = paddle.jit.to_static(net, input_spec=spec, full_graph=True)
    prefix = tmp_path / "inference"
    paddle.jit.save(static, str(prefix))
    assert (tmp_path / "inference.json").is_file() and (tmp_path / "inference.pdiparams").is_file()

    for onednn in (False, True):
        predictor = _predictor(prefix, onednn)
        predictor.get_input_handle(predictor.get_input_names()[0]).copy_from_cpu(x)
        predictor.run()
        got = predictor.get_output_handle(predictor.get_output_names()[0]).copy_to_cpu()
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())
        assert (got.argmax(1) == expected.argmax(1)).mean() > 0.999
