"""The registry: discovery through entry points, lookup, wildcards, blocking, config validation, weights."""

import json
import os
import subprocess
import sys
from importlib import metadata

import numpy as np
import pytest

import segzoo
from segzoo import ConfigError, ModelCard, ModelConfig, ModelPlugin, PluginError, UnknownModelError, WeightsError
from segzoo.registry import MODELS_GROUP, Registry

BUILT_IN = {
    "Deeplabv3-R50", "Deeplabv3-R101", "Deeplabv3_Plus-R50", "Deeplabv3_Plus-R101",
    "OCRNet_HRNet-W18", "OCRNet_HRNet-W48", "PP-LiteSeg-T", "PP-LiteSeg-B",
    "SegFormer-B0", "SegFormer-B1", "SegFormer-B2", "SegFormer-B3", "SegFormer-B4", "SegFormer-B5",
    "SeaFormer_tiny", "SeaFormer_small", "SeaFormer_base", "SeaFormer_large",
    "MaskFormer_tiny", "MaskFormer_small",
}  # fmt: skip


def test_every_built_in_model_comes_from_its_own_entry_point():
    eps = {ep.name: ep for ep in metadata.entry_points(group=MODELS_GROUP) if ep.dist.metadata["Name"] == "segzoo"}
    assert BUILT_IN <= set(eps)
    objects = [ep.load() for ep in eps.values()]
    assert len({id(o) for o in objects}) == len(objects), "each model needs its own plugin object"
    for name, ep in eps.items():
        assert ep.load().card.name == name
    assert BUILT_IN <= set(segzoo.list_models())


def test_each_model_has_its_own_config_class():
    classes = {segzoo.get_model_card(n).config_class for n in BUILT_IN}
    assert len(classes) == len(BUILT_IN)
    assert all(issubclass(c, ModelConfig) for c in classes)


def test_wildcards_are_case_insensitive_and_sorted_naturally():
    assert segzoo.list_models("SegFormer*") == [f"SegFormer-B{i}" for i in range(6)]
    assert segzoo.list_models("segformer-b?") == segzoo.list_models("SegFormer*")
    assert segzoo.list_models("Deeplabv3-*") == ["Deeplabv3-R50", "Deeplabv3-R101"]
    assert segzoo.list_models("nothing*") == []


def test_unknown_model_suggests_the_closest_names():
    with pytest.raises(UnknownModelError) as info:
        segzoo.get_model_card("PP-LiteSeg")
    assert "PP-LiteSeg-T" in str(info.value) and "PP-LiteSeg-B" in str(info.value)
    with pytest.raises(UnknownModelError, match="SegFormer-B0"):
        segzoo.build_model("Segformer_B0")


def test_block_environment_variable_hides_plugins():
    code = "import json, segzoo; print(json.dumps(segzoo.list_models()))"
    env = dict(os.environ, SEGZOO_BLOCK_PLUGINS="SegFormer-B5, PP-LiteSeg-*")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    names = json.loads(out.stdout)
    assert "SegFormer-B5" not in names and "PP-LiteSeg-T" not in names and "PP-LiteSeg-B" not in names
    assert "SegFormer-B4" in names


def test_config_errors_name_the_field_and_the_fix():
    with pytest.raises(ConfigError) as info:
        segzoo.build_model("PP-LiteSeg-T", num_clases=3)
    assert "PP-LiteSeg-T.num_clases: unknown key; did you mean num_classes?" in str(info.value)
    with pytest.raises(ConfigError, match=r"PP-LiteSeg-T\.learning_rate: Input should be greater than 0"):
        segzoo.get_registry().config("PP-LiteSeg-T", learning_rate=-1)
    with pytest.raises(ConfigError, match=r"loss_weights"):
        segzoo.get_registry().config("OCRNet_HRNet-W18", loss_weights=[1.0])
    with pytest.raises(ConfigError, match=r"pretrained: .*does not exist"):
        segzoo.get_registry().config("SegFormer-B0", pretrained="/no/such/file.pdparams")


def test_model_defaults_follow_the_family_recipe():
    reg = segzoo.get_registry()
    assert reg.config("SegFormer-B2").embedding_dim == 768
    assert reg.config("SegFormer-B0").optimizer == "adamw"
    assert reg.config("PP-LiteSeg-T").arm_out_chs == (32, 64, 128)
    assert reg.config("OCRNet_HRNet-W48").loss_weights == (1.0, 0.4)
    assert reg.config("SeaFormer_tiny").num_classes == 150


def _card(name="Tiny"):
    return ModelCard(name=name, family="test", dataset="none", num_classes=2)


def test_plugin_contract_violations_are_named():
    reg = Registry(load_entrypoints=False)
    with pytest.raises(PluginError, match="entry-point name must be the model name"):
        reg.register(ModelPlugin(_card("Tiny")), name="Other", model=True)
    with pytest.raises(PluginError, match="does not provide a model card"):
        reg.register(object(), name="Nothing", model=True)
    reg.register(ModelPlugin(_card("Tiny")))
    with pytest.raises(PluginError, match="two plugins provide the model 'Tiny'"):
        reg.register(ModelPlugin(_card("Tiny")))
    with pytest.raises(PluginError, match="has no build function"):
        reg.build_model("Tiny", reg.config("Tiny"))


def test_pretrained_weights_load_and_report(tmp_path):
    import paddle

    paddle.seed(1)
    source = segzoo.build_model("PP-LiteSeg-T", num_classes=3)
    path = tmp_path / "model.pdparams"
    paddle.save(source.state_dict(), str(path))

    same = segzoo.build_model("PP-LiteSeg-T", num_classes=3, pretrained=str(path))
    assert same.segzoo_load_report.complete
    for (k, a), b in zip(source.state_dict().items(), same.state_dict().values()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=k)

    # another number of classes: everything but the classifiers loads, and the report says which
    other = segzoo.build_model("PP-LiteSeg-T", num_classes=5, pretrained=str(path))
    report = other.segzoo_load_report
    assert report.mismatched and all("conv_out" in n or "seg_head" in n for n, _, _ in report.mismatched)
    assert "with another shape" in report.summary()

    with pytest.raises(WeightsError, match="none of the .* tensors .* fits this model"):
        segzoo.build_model("SegFormer-B0", num_classes=3, pretrained=str(path))


def test_hook_wrapper_changes_postprocess_for_every_model():
    import paddle

    class Negate:
        @segzoo.hookimpl(wrapper=True)
        def postprocess(self, model_name, config, outputs):
            scores = yield
            return -scores

    reg = segzoo.get_registry()
    x = paddle.ones([1, 3, 4, 4])
    before = {n: reg.postprocess(n, reg.config(n), [x]) for n in ("PP-LiteSeg-T", "SegFormer-B0")}
    reg.register(Negate(), name="negate")
    try:
        for name, b in before.items():
            after = reg.postprocess(name, reg.config(name), [x])
            np.testing.assert_array_equal(after.numpy(), -b.numpy())
    finally:
        reg.unregister("negate")
