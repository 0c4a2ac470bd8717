"""Model cards and configs are documented: every field has a description, and the plugin guide covers it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import segzoo
from segzoo import ExportSupport, Figures, ModelCard, ModelConfig, ModelPlugin
from segzoo.cli import main

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"


@pytest.mark.parametrize("cls", [ModelCard, ModelConfig, ExportSupport, Figures], ids=lambda c: c.__name__)
def test_every_field_has_a_description_and_a_place_in_the_guide(cls):
    guide = GUIDE.read_text(encoding="utf-8")
    for name, field in cls.model_fields.items():
        assert field.description, f"{cls.__name__}.{name} has no description"
        if cls is Figures:  # listed in one sentence
            assert f"`{name}`" in guide, f"docs/plugins.md does not mention Figures.{name}"
        else:  # a row of a table: | `name` | default | effect |
            assert re.search(rf"^\| `{name}` \|", guide, re.M), f"docs/plugins.md has no row for {cls.__name__}.{name}"


def test_input_size_says_when_it_is_segzoos_default():
    bare = ModelCard(name="Bare", family="tests", dataset="none", num_classes=2)
    assert bare.input_size == (512, 512) and bare.input_size_is_default
    assert bare.describe_input_size() == "512x512 (segzoo's default; the card does not set input_size)"
    given = ModelCard(name="Sized", family="tests", dataset="none", num_classes=2, input_size=(64, 48))
    assert not given.input_size_is_default and given.describe_input_size() == "64x48"
    same = ModelCard(name="Same", family="tests", dataset="none", num_classes=2, input_size=(512, 512))
    assert not same.input_size_is_default and same.describe_input_size() == "512x512"  # set, even if equal


def test_config_and_info_of_a_card_with_only_the_required_fields(capsys):
    card = ModelCard(name="TinyUNet", family="tinyunet", dataset="none", num_classes=2)
    registry = segzoo.get_registry()
    segzoo.register_plugin(ModelPlugin(card, build=lambda config: None))
    try:
        assert main(["info", "TinyUNet"]) == 0
        out = capsys.readouterr().out.splitlines()
        assert out[0] == "TinyUNet  (tinyunet)"
        assert out[1] == "  dataset: none, 2 classes; no published mIoU"
        assert "  evaluation protocol: not stated" in out
        assert "  typical input (W, H): 512x512 (segzoo's default; the card does not set input_size); " \
               "output stride 32; each image is fed at its own size" in out
        assert main(["config", "TinyUNet"]) == 0
        header = capsys.readouterr().out.splitlines()[:5]
        assert "typical input 512x512 (segzoo's default; the card does not set input_size)" in header[2]
        assert header[3].startswith("# Prediction runs at each image's own size")
    finally:
        registry.unregister("TinyUNet")


def test_the_default_loss_refuses_ohem_instead_of_ignoring_it():
    import paddle

    card = ModelCard(name="OhemTest", family="tests", dataset="none", num_classes=2)
    registry = segzoo.get_registry()
    segzoo.register_plugin(ModelPlugin(card, build=lambda config: paddle.nn.Conv2D(3, 2, 1)))
    try:
        config = registry.config("OhemTest", loss="ohem")
        model = registry.build_model("OhemTest", config)
        with pytest.raises(segzoo.ConfigError) as info:
            registry.train_step("OhemTest", config, model, paddle.randn([1, 3, 8, 8]), paddle.zeros([1, 8, 8], "int64"))
        assert str(info.value) == (
            "Model.loss: 'ohem' is not implemented by the plugin of OhemTest (its loss is ModelPlugin's "
            "cross entropy); use loss: ce"
        )
        ce = registry.train_step("OhemTest", registry.config("OhemTest"), model, paddle.randn([1, 3, 8, 8]),
                                 paddle.zeros([1, 8, 8], "int64"))
        assert float(ce["loss"]) > 0
    finally:
        registry.unregister("OhemTest")
