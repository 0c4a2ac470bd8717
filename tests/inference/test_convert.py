"""The conversion child: started ahead of its program, stopped when it gets none, and its errors name the file."""

from __future__ import annotations

import numpy as np
import pytest

from segzoo.errors import ExportError
from segzoo.inference.convert import Conversion, convert_to_onnx


def test_a_child_that_gets_no_program_is_stopped_on_exit():
    with Conversion() as conversion:
        assert conversion.proc.poll() is None  # importing paddle2onnx while the caller writes the program
    assert conversion.proc.poll() is not None


def test_a_conversion_of_a_missing_program_names_it(tmp_path):
    missing = tmp_path / "no_such" / "inference.json"
    with pytest.raises(ExportError, match=r"conversion of .*no_such.*inference\.json is not usable"):
        convert_to_onnx(missing, missing.with_suffix(".pdiparams"), tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_a_program_rewrite_that_fails_or_finds_nothing_is_an_export_error_and_leaves_dygraph_on(tmp_path, monkeypatch):
    """The card's program_rewrite is a plugin's function run on paddle's program: whatever goes wrong in it becomes
    an ExportError naming it (the caller then rebuilds the network), and paddle is back in dygraph mode."""
    import sys
    import types

    import paddle

    from segzoo.inference.rebuild import _rewritten_export

    paddle.seed(0)
    layer = paddle.nn.Sequential(paddle.nn.Conv2D(3, 2, 3), paddle.nn.AdaptiveAvgPool2D(2))
    layer.eval()
    spec = [paddle.static.InputSpec([None, 3, None, None], "float32", "x")]
    paddle.jit.save(paddle.jit.to_static(layer, input_spec=spec, full_graph=True), str(tmp_path / "inference"))
    deploy = types.SimpleNamespace(model_file=tmp_path / "inference.json", params_file=tmp_path / "inference.pdiparams")

    def broken(program):
        raise ValueError("no such op")

    plugin = types.ModuleType("segzoo_test_rewrites")
    plugin.broken, plugin.nothing = broken, (lambda program: 0)
    monkeypatch.setitem(sys.modules, plugin.__name__, plugin)
    cases = {"segzoo_test_rewrites:broken": r"segzoo_test_rewrites:broken failed on .*inference\.json: ValueError: no such op",
             "segzoo_test_rewrites:nothing": r"found nothing to rewrite in .*inference\.json",
             "segzoo_test_rewrites:missing": r"program_rewrite 'segzoo_test_rewrites:missing' cannot be loaded"}
    for rewrite, message in cases.items():
        out = tmp_path / rewrite.split(":")[1]
        out.mkdir()
        with pytest.raises(ExportError, match=message):
            _rewritten_export(rewrite, deploy, out)
        assert paddle.in_dynamic_mode() and not any(out.iterdir())
    out = tmp_path / "rewritten"
    out.mkdir()
    assert _rewritten_export("segzoo_plugins.ppliteseg.pooling:make_program_pooling_shape_free", deploy, out) == 1
    assert paddle.in_dynamic_mode() and {p.name for p in out.iterdir()} == {"inference.json", "inference.pdiparams"}
    x = paddle.randn([1, 3, 13, 18])  # an 11×16 map: bins of 2 divide one side only
    got = paddle.jit.load(str(out / "inference"))(x)  # the pooling was the network's output: still fetched
    np.testing.assert_allclose(got.numpy(), layer(x).numpy(), rtol=1e-5, atol=1e-6)
