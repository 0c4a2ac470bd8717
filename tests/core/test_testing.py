"""`segzoo.testing.ModelContract`'s export and ONNX checks, and `segzoo info --check`, on small real networks.

Each network below is registered at run time under a card that declares what
it exports to; the contract must pass the ones that do what their card says
and fail the others with a message that names the cause.
"""

from __future__ import annotations

import math

import pytest

import segzoo
from segzoo import ExportSupport, ModelCard, ModelConfig, ModelPlugin
from segzoo.cli import main
from segzoo.testing import ModelContract


def _conv_net(forward):
    """A paddle Layer class: one 3×3 convolution to ``num_classes`` channels, then ``forward(self, x)``."""
    import paddle.nn as nn

    class Net(nn.Layer):
        def __init__(self, num_classes):
            super().__init__()
            self.conv = nn.Conv2D(3, num_classes, 3, padding=1)
            self.pos = self.create_parameter([1, num_classes, 64, 96])  # used by the fixed-size network only

    Net.forward = forward
    return Net


def _plain(self, x):
    return [self.conv(x)]


def _python_ceil(self, x):
    import paddle.nn.functional as F

    rows = math.ceil(x.shape[2] / 7)  # a Python number from the traced shape: no static graph for this
    return [F.interpolate(F.interpolate(self.conv(x), size=[rows, rows]), size=x.shape[2:])]


def _fixed_embedding(self, x):
    return [self.conv(x) + self.pos]  # a 64×96 parameter: the graph exports, but runs at 64×96 only


def _adaptive_pool(self, x):
    import paddle
    import paddle.nn.functional as F

    y = self.conv(x)
    return [y + F.interpolate(F.adaptive_avg_pool2d(y, 4), size=paddle.shape(y)[2:])]


NETS = {"plain": _plain, "ceil": _python_ceil, "embedding": _fixed_embedding, "pool": _adaptive_pool}


@pytest.fixture(scope="module")
def register():
    """``register(name, net, **export)``: a model named ``name`` with one of NETS and ``ExportSupport(**export)``."""
    registry = segzoo.get_registry()
    names = []

    def add(name, net, **export):
        def build(config):
            return _conv_net(NETS[net])(config.num_classes)

        card = ModelCard(name=name, family="contract-tests", dataset="none", num_classes=3, size_divisor=4,
                         export=ExportSupport(**export), config_class=ModelConfig)
        if name in registry.list_models():
            registry.unregister(name)
        segzoo.register_plugin(ModelPlugin(card, build=build))
        names.append(name)
        return name

    yield add
    for name in names:
        registry.unregister(name)


def test_a_network_that_exports_passes_both_checks_at_two_shapes(register):
    contract = ModelContract(register("ContractPlain", "plain"))
    done = contract.check_export()
    assert "N×3×H×W (dynamic)" in done and "2×3×64×96 and 1×3×72×92" in done
    assert "ONNX Runtime matches dygraph at 2×3×64×96 and 1×3×72×92" in contract.check_onnx()


def test_python_shape_arithmetic_fails_the_export_check_naming_the_line(register):
    contract = ModelContract(register("ContractCeil", "ceil"))
    with pytest.raises(AssertionError) as info:
        contract.check_export()
    message = str(info.value)
    assert message.startswith("ContractCeil: the card declares a static-graph export (export.static) but it fails")
    assert "TypeError: float(Tensor) is not supported in static graph mode" in message
    assert "rows = math.ceil(x.shape[2] / 7)" in message and "test_testing.py:" in message
    assert "docs/plugins.md, 'Export and ONNX'" in message


def test_a_shape_frozen_at_construction_fails_at_the_second_shape(register):
    contract = ModelContract(register("ContractEmbedding", "embedding"))
    with pytest.raises(AssertionError) as info:
        contract.check_export()
    message = str(info.value)
    assert message.startswith("ContractEmbedding: the network itself (dygraph) fails on an input of 1×3×72×92")
    assert "Broadcast dimension mismatch" in message and "docs/plugins.md" in message
    # the same network declared at its one size passes
    fixed = ModelContract(register("ContractEmbeddingFixed", "embedding", dynamic_shape=False,
                                   fixed_input_shape=(2, 3, 64, 96), onnx=False))
    assert "at 2×3×64×96" in fixed.check_export()
    assert fixed.check_onnx() == "not declared"


def test_adaptive_pooling_fails_onnx_with_a_dynamic_hw_and_passes_when_declared_fixed(register):
    contract = ModelContract(register("ContractPool", "pool"))
    assert "matches dygraph" in contract.check_export()  # Paddle itself runs it at any size
    with pytest.raises(AssertionError) as info:
        contract.check_onnx()
    message = str(info.value)
    assert message.startswith("ContractPool: the card declares ONNX support (export.onnx) but")
    assert "Adaptive only support static input shape" in message
    static_hw = ModelContract(register("ContractPoolStaticHW", "pool", onnx_static_hw=True))
    assert static_hw.check_onnx() == "converted with its fixed H×W; ONNX Runtime matches dygraph at 1×3×512×512"


def test_info_says_declared_until_checked_and_reports_the_check(register, capsys):
    name = register("ContractCeilInfo", "ceil")
    assert main(["info", name]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"{name}  (contract-tests)"  # no description, no architecture: no "; )"
    assert "typical input (W, H): 512x512 (segzoo's default; the card does not set input_size)" in out
    assert "export: yes (dynamic H×W); ONNX: yes" in out
    assert f"(declared by the plugin, not checked here: `segzoo info {name} --check` checks it)" in out

    assert main(["info", name, "--check"]) == 1
    out = capsys.readouterr().out
    assert "checked here, export: failed: ContractCeilInfo: the card declares a static-graph export" in out
    assert "checked here, onnx: not checked: the export it converts failed" in out
    assert "declared by the plugin, not checked here" not in out


def test_static_false_is_reported_as_not_declared(register):
    contract = ModelContract(register("ContractNoExport", "ceil", static=False, note="Python-side sizes"))
    report = contract.export_report()
    assert [(r.check, r.status, r.detail) for r in report] == [
        ("export", "not declared", "Python-side sizes"),
        ("onnx", "not declared", "Python-side sizes"),
    ]
