"""SeaFormer network (plugins/seaformer/network.py) against PaddleSeg's own.

Reference data in ``data/`` (copied from PaddleSeg's SeaFormer run on Paddle
3.3.1, see ``data/README.md``): the state-dict layout and the arguments of
every variant, and for tiny the outputs of every stage for a seeded set of
weights, which ``fixture_weights.py`` regenerates.
"""

import json
from pathlib import Path

import numpy as np
import paddle
import pytest

VARIANTS = ["tiny", "small", "base", "large"]
SHARED_TINY_WEIGHTS = Path(
    "/work/shared/reference/seaformer/tiny_fanin_weights.npz")
MAX_REL_ERR = 1e-4


def _summary(data_dir, variant):
    with open(data_dir / f"{variant}_summary.json", encoding="utf-8") as f:
        return json.load(f)


def _rel_err(actual, expected):
    return float(np.abs(actual - expected).max() / np.abs(expected).max())


@pytest.mark.parametrize("variant", VARIANTS)
def test_variant_arguments_match_reference(seaformer_network,
                                           seaformer_data_dir, variant):
    summary = _summary(seaformer_data_dir, variant)
    spec = seaformer_network.SEAFORMER_VARIANTS[variant]
    for key, value in spec["backbone"].items():
        assert summary["backbone_args"][key] == value, key
    for key, value in spec["head"].items():
        assert summary["head_args"][key] == value, key
    assert spec["feat_channels"] == summary["backbone_feat_channels"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_state_dict_matches_reference(seaformer_network,
                                      fixture_weights_module,
                                      seaformer_data_dir, variant):
    summary = _summary(seaformer_data_dir, variant)
    expected = {
        name: list(shape) for name, shape, _ in
        fixture_weights_module.read_state_dict_tsv(
            seaformer_data_dir / f"{variant}_state_dict.tsv")
    }
    model = seaformer_network.build_seaformer(variant, num_classes=150)
    state = model.state_dict()
    actual = {name: list(tensor.shape) for name, tensor in state.items()}

    assert sorted(set(actual) - set(expected)) == []
    assert sorted(set(expected) - set(actual)) == []
    mismatched = {n: (actual[n], expected[n])
                  for n in expected if actual[n] != expected[n]}
    assert mismatched == {}
    assert all(str(t.dtype).endswith("float32") for t in state.values())

    params = model.parameters()
    assert len(state) == summary["state_dict_entries"]
    assert sum(int(np.prod(p.shape)) for p in params) == summary["total_params"]
    assert sum(int(np.prod(p.shape)) for p in params if not p.stop_gradient) \
        == summary["trainable_params"]


def test_regenerated_weights_equal_reference_npz(tiny_fixture_weights):
    if not SHARED_TINY_WEIGHTS.exists():
        pytest.skip(f"{SHARED_TINY_WEIGHTS} not available (only the "
                    "regenerated weights are used outside the dev machine)")
    with np.load(SHARED_TINY_WEIGHTS) as ref:
        assert list(ref.files) == list(tiny_fixture_weights)
        for name in ref.files:
            assert ref[name].dtype == tiny_fixture_weights[name].dtype, name
            np.testing.assert_array_equal(tiny_fixture_weights[name],
                                          ref[name], err_msg=name)


def test_tiny_stage_outputs_match_reference(seaformer_network,
                                            tiny_fixture_weights,
                                            seaformer_data_dir):
    model = seaformer_network.build_seaformer("tiny", num_classes=150)
    state = model.state_dict()
    assert set(state) == set(tiny_fixture_weights)
    model.set_state_dict({n: paddle.to_tensor(w)
                          for n, w in tiny_fixture_weights.items()})
    for name, tensor in model.state_dict().items():
        np.testing.assert_array_equal(tensor.numpy(),
                                      tiny_fixture_weights[name], err_msg=name)
    model.eval()

    captured = {}

    def capture(key):
        def hook(layer, inputs, output):
            captured[key] = output
        return hook

    model.backbone.register_forward_post_hook(capture("backbone"))
    for name in ("fuse1", "fuse2", "linear_fuse", "cls_seg"):
        getattr(model, name).register_forward_post_hook(capture(name))

    image = np.load(seaformer_data_dir / "tiny_input.npy")
    with paddle.no_grad():
        out = model(paddle.to_tensor(image))

    assert isinstance(out, list) and len(out) == 1
    logits = out[0].numpy()
    assert logits.shape == (1, 150, 256, 256)

    actual = {f"backbone_out{i}": t.numpy()
              for i, t in enumerate(captured["backbone"])}
    actual["fuse1_out"] = captured["fuse1"].numpy()
    actual["fuse2_out"] = captured["fuse2"].numpy()
    actual["linear_fuse_out"] = captured["linear_fuse"].numpy()
    actual["cls_seg_out_pre_upsample"] = captured["cls_seg"].numpy()
    actual["logits_subsampled_stride8"] = logits[:, :, ::8, ::8]

    with np.load(seaformer_data_dir / "tiny_fanin_outputs.npz") as ref:
        assert sorted(ref.files) == sorted(actual)
        errors = {}
        for key in ref.files:
            assert actual[key].shape == ref[key].shape, key
            errors[key] = _rel_err(actual[key], ref[key])
    bad = {k: e for k, e in errors.items() if not e < MAX_REL_ERR}
    assert bad == {}, errors


def test_odd_input_size_gives_input_sized_logits(seaformer_network):
    paddle.seed(0)
    model = seaformer_network.build_seaformer("tiny", num_classes=7)
    model.eval()
    image = paddle.rand([1, 3, 100, 132])
    with paddle.no_grad():
        out = model(image)
    assert isinstance(out, list) and len(out) == 1
    assert out[0].shape == [1, 7, 100, 132]
    assert np.isfinite(out[0].numpy()).all()


def test_train_mode_backward_gives_finite_gradients(seaformer_network):
    paddle.seed(0)
    model = seaformer_network.build_seaformer("tiny", num_classes=5)
    model.train()
    image = paddle.rand([2, 3, 96, 128])
    label = paddle.randint(0, 5, [2, 96, 128])
    out = model(image)
    assert isinstance(out, list) and len(out) == 1
    assert out[0].shape == [2, 5, 96, 128]
    loss = paddle.nn.functional.cross_entropy(out[0], label, axis=1)
    loss.backward()
    assert np.isfinite(float(loss))

    trainable = [(n, p) for n, p in model.named_parameters()
                 if not p.stop_gradient]
    assert trainable
    missing = [n for n, p in trainable if p.grad is None]
    assert missing == []
    not_finite = [n for n, p in trainable
                  if not np.isfinite(p.grad.numpy()).all()]
    assert not_finite == []
    assert any(float(p.grad.abs().max()) > 0 for _, p in trainable)
