"""SegFormer's exported decoder is folded (no 4E-channel concatenation) and computes paddleseg's function."""

from __future__ import annotations

import numpy as np
import paddle
import pytest

import segzoo
from segzoo.inference import export_model


def stage_concats(onnx_file) -> int:
    """How many Concat ops of an ONNX model join four 4-D tensors along the channels (as OpenVINO reads it)."""
    import openvino as ov

    model = ov.Core().read_model(str(onnx_file))
    return sum(1 for op in model.get_ordered_ops()
               if op.get_type_name() == "Concat" and op.get_input_size() == 4
               and op.get_output_partial_shape(0).rank.get_length() == 4 and op.get_attributes()["axis"] in (1, -3))


@pytest.fixture(scope="module")
def b0(tmp_path_factory):
    registry = segzoo.get_registry()
    config = registry.config("SegFormer-B0", num_classes=5)
    paddle.seed(11)
    layer = registry.build_model("SegFormer-B0", config)
    layer.eval()
    out = export_model("SegFormer-B0", tmp_path_factory.mktemp("b0") / "export", config=config, layer=layer,
                       output_op="none")
    return layer, out


@pytest.mark.parametrize("hw", [(128, 128), (200, 328)])
def test_the_exported_graph_gives_paddlesegs_logits(b0, hw):
    layer, out = b0
    program = paddle.jit.load(str(out / "inference"))
    x = paddle.to_tensor(np.random.default_rng(sum(hw)).standard_normal((2, 3, *hw)).astype(np.float32))
    want = layer(x)[0].numpy()  # dygraph: paddleseg's own forward
    got = program(x)
    got = (got[0] if isinstance(got, (list, tuple)) else got).numpy()
    assert got.shape == want.shape == (2, 5, *hw)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * float(np.abs(want).max()))
    assert (got.argmax(1) == want.argmax(1)).mean() >= 0.999


def test_dygraph_keeps_paddlesegs_forward_and_state_dict(b0):
    from segzoo_plugins import import_paddleseg

    import_paddleseg()
    from paddleseg.models import SegFormer

    layer, _ = b0
    assert isinstance(layer, SegFormer)
    x = paddle.to_tensor(np.random.default_rng(0).standard_normal((1, 3, 96, 64)).astype(np.float32))
    np.testing.assert_array_equal(layer(x)[0].numpy(), SegFormer.forward(layer, x)[0].numpy())
    plain = SegFormer.__new__(SegFormer)
    plain.__dict__.update(layer.__dict__)
    assert list(plain.state_dict()) == list(layer.state_dict())


def test_the_converted_decoder_has_no_concatenation_of_the_four_stages(b0, tmp_path):
    from segzoo.inference.export_cache import convert_to_onnx

    layer, out = b0
    folded = tmp_path / "folded.onnx"
    convert_to_onnx(out / "inference.json", out / "inference.pdiparams", folded)
    assert stage_concats(folded) == 0
    # paddleseg's graph, exported from the same layer, has it: the check above can fail
    folded_class = type(layer)
    layer.__class__ = folded_class.__mro__[1]
    try:
        plain = export_model("SegFormer-B0", tmp_path / "plain", layer=layer, output_op="none",
                             config=segzoo.get_registry().config("SegFormer-B0", num_classes=5))
    finally:
        layer.__class__ = folded_class
    convert_to_onnx(plain / "inference.json", plain / "inference.pdiparams", tmp_path / "plain.onnx")
    assert stage_concats(tmp_path / "plain.onnx") == 1


def test_a_paddlex_export_is_converted_through_the_folded_decoder(tmp_path, caplog, monkeypatch):
    """PaddleX's SegFormer program concatenates the four decoder stages; the default engine converts the
    plugin's folded network with its weights instead (once), with the program's masks."""
    import warnings

    import yaml

    from segzoo.inference import create_model
    from segzoo.inference.engine_table import EngineFallbackWarning
    from segzoo.inference.export_cache import exports_cache

    monkeypatch.setenv("SEGZOO_HOME", str(tmp_path / "home"))
    registry = segzoo.get_registry()
    config = registry.config("SegFormer-B0", num_classes=4)
    paddle.seed(5)
    layer = registry.build_model("SegFormer-B0", config)
    layer.eval()
    layer.__class__ = type(layer).__mro__[1]  # paddleseg's own SegFormer: the graph PaddleX exports
    export = export_model("SegFormer-B0", tmp_path / "paddlex_style", config=config, layer=layer)
    yml = export / "inference.yml"
    data = yaml.safe_load(yml.read_text())
    del data["segzoo"]  # PaddleX writes no segzoo section
    yml.write_text(yaml.safe_dump(data))
    with caplog.at_level("INFO", logger="segzoo"), warnings.catch_warnings():
        warnings.simplefilter("error", EngineFallbackWarning)
        model = create_model("SegFormer-B0", model_dir=export, device="cpu")
    assert model.engine.name == "openvino"
    assert "better graph" in caplog.text and "export's weights instead" in caplog.text
    converted = list(exports_cache().glob("*.onnx"))
    assert len(converted) == 1 and stage_concats(converted[0]) == 0
    reference = create_model("SegFormer-B0", model_dir=export, engine="paddle")  # the program itself
    rng = np.random.default_rng(5)
    for size in ((256, 128), (97, 75)):
        image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        ours, theirs = model.predict_arrays([image])[0], reference.predict_arrays([image])[0]
        assert (ours == theirs).mean() >= 0.999, size
