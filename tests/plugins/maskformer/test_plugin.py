"""MaskFormer plugins: cards, configs, the network's state-dict names and the eval-mode scores."""

import subprocess
import sys

import numpy as np
import paddle
import pytest

import segzoo

NAMES = ["MaskFormer_tiny", "MaskFormer_small"]


def test_import_does_not_import_paddle():
    code = (
        "import sys, segzoo_plugins.maskformer as m; "
        "assert m.MASKFORMER_TINY.card.name == 'MaskFormer_tiny'; "
        "bad = [k for k in ('paddle', 'paddleseg') if k in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("name, miou", [("MaskFormer_tiny", 46.69), ("MaskFormer_small", 49.70)])
def test_card(registry, name, miou):
    card = registry.card(name)
    assert card.family == "maskformer" and card.dataset == "ADE20k" and card.num_classes == 150
    assert card.figures.miou == miou
    assert card.figures.gpu_ms is None and card.figures.cpu_ms is None and card.figures.size_mb is None
    assert "ResizeByShort" in card.eval_protocol and "short side is 512" in card.eval_protocol
    assert card.size_divisor == 32 and card.input_size == (512, 512)
    assert card.export.static and not card.export.dynamic_shape and not card.export.onnx
    assert card.export.fixed_input_shape == (1, 3, 512, 512)
    assert "ONNX" in card.export.note
    cfg = registry.config(name)
    assert cfg.num_classes == 150 and cfg.optimizer == "adamw"
    assert cfg.learning_rate == pytest.approx(6e-5) and cfg.weight_decay == pytest.approx(0.01)
    assert cfg.crop_size == (512, 512) and cfg.no_object_weight == pytest.approx(0.1)
    assert cfg.mean == (0.485, 0.456, 0.406) and cfg.std == (0.229, 0.224, 0.225)


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"loss": "ohem"}, "loss"),
        ({"loss_weights": (1.0, 0.4)}, "loss_weights"),
        ({"no_object_weight": 1.5}, "no_object_weight"),
        ({"mask_weigth": 20.0}, "mask_weigth"),
        ({"class_weight": 0.0, "mask_weight": 0.0, "dice_weight": 0.0}, "class_weight"),
    ],
)
def test_config_errors_name_the_field(registry, overrides, field):
    with pytest.raises(segzoo.ConfigError) as info:
        registry.config("MaskFormer_tiny", **overrides)
    assert field in str(info.value)


def _shapes(model):
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name", [NAMES[0], pytest.param(NAMES[1], marks=pytest.mark.slow)])
def test_state_dict_matches_paddleseg(registry, paddleseg_maskformer, name):
    for num_classes in (3, 150):
        model = registry.build_model(name, registry.config(name, num_classes=num_classes))
        reference = paddleseg_maskformer(name, num_classes)
        ours, theirs = _shapes(model), _shapes(reference)
        assert sorted(set(ours) ^ set(theirs)) == []
        assert {k: v for k, v in ours.items() if theirs[k] != v} == {}
        assert ours["seghead.predictor.class_embed.weight"] == (256, num_classes + 1)
        count = sum(int(np.prod(p.shape)) for p in model.parameters())
        print(f"{name} num_classes={num_classes}: {count} parameters, {len(ours)} state-dict entries")


@pytest.fixture(scope="module")
def tiny3():
    """MaskFormer_tiny with 3 classes and seeded random weights, in eval mode."""
    paddle.seed(7)
    reg = segzoo.get_registry()
    if "MaskFormer_tiny" not in reg.list_models():
        from segzoo_plugins.maskformer import MASKFORMER_TINY

        reg.register(MASKFORMER_TINY)
    cfg = reg.config("MaskFormer_tiny", num_classes=3)
    model = reg.build_model("MaskFormer_tiny", cfg)
    model.eval()
    return reg, cfg, model


def test_eval_scores_are_per_pixel_class_scores(tiny3, paddleseg_maskformer):
    from paddleseg.models import MaskFormer

    reg, cfg, model = tiny3
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (64, 96, 3), dtype=np.uint8) for _ in range(2)]
    batch = paddle.to_tensor(np.stack([reg.preprocess("MaskFormer_tiny", cfg, im) for im in images]))
    assert batch.shape == [2, 3, 64, 96] and batch.dtype == paddle.float32
    with paddle.no_grad():
        scores = reg.postprocess("MaskFormer_tiny", cfg, model(batch))
        # paddleseg's own eval forward (same weights): semantic inference of one image at a time
        singles = [MaskFormer.forward(model, batch[i : i + 1])[0] for i in range(2)]
    assert scores.shape == [2, 3, 64, 96]
    for i in range(2):
        np.testing.assert_allclose(scores[i].numpy(), singles[i][0].numpy(), rtol=1e-5, atol=1e-6)
    # the two images differ, so a batch-collapsing forward would fail above; and scores are
    # sums of probabilities, in [0, number of queries]
    assert not np.allclose(scores[0].numpy(), scores[1].numpy())
    assert float(scores.min()) >= 0.0 and float(scores.max()) <= 100.0
    labels = scores.argmax(axis=1).numpy()
    assert labels.shape == (2, 64, 96) and labels.min() >= 0 and labels.max() <= 2


def test_scores_accept_paddleseg_output_and_reject_others(tiny3):
    reg, cfg, model = tiny3
    ready = paddle.rand([1, 3, 8, 8])
    assert reg.postprocess("MaskFormer_tiny", cfg, [ready]) is ready
    with pytest.raises(segzoo.PluginError, match="pred_logits"):
        reg.postprocess("MaskFormer_tiny", cfg, {"logits": ready})
