"""MaskFormer's set-prediction loss (plugins/maskformer/loss.py) on hand-made cases."""

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

import segzoo
from segzoo_plugins.maskformer.loss import SetCriterion, semantic_targets

C = 3  # classes; the network predicts C + 1 logits per query


def _label():
    """16×16: class 0 background, a class-2 square, an ignored strip on the right."""
    label = np.zeros((16, 16), np.int64)
    label[4:10, 3:9] = 2
    label[:, 13:] = 255
    return label


def _one_image_outputs(queries, sharp):
    """Set prediction for one 16×16 image: ``sharp`` maps query → (class, binary mask)."""
    rng = np.random.default_rng(3)
    logits = rng.normal(0, 0.1, (1, queries, C + 1)).astype(np.float32)
    logits[0, :, C] = 2.0  # unmatched queries lean to "no object"
    masks = rng.normal(0, 0.5, (1, queries, 16, 16)).astype(np.float32)
    for q, (cls, mask) in sharp.items():
        logits[0, q] = -4.0
        logits[0, q, cls] = 4.0
        masks[0, q] = np.where(mask, 8.0, -8.0)
    return {"pred_logits": paddle.to_tensor(logits), "pred_masks": paddle.to_tensor(masks)}


def test_semantic_targets():
    classes, masks, valid = semantic_targets(_label(), num_classes=C)
    assert classes.tolist() == [0, 2]
    assert masks.shape == (2, 16, 16) and masks.dtype == bool
    assert masks[1].sum() == 36 and not masks[:, :, 13:].any()
    assert valid.sum() == 16 * 13
    assert np.array_equal(masks.any(0), valid)


def test_out_of_range_label_is_a_dataset_error():
    label = _label()
    label[0, 0] = 7
    with pytest.raises(segzoo.DatasetError, match=r"\[7\].*num_classes=3"):
        semantic_targets(label, num_classes=C)


@pytest.mark.parametrize("square_query, background_query", [(4, 1), (0, 5)])
def test_matching_picks_the_obvious_predictions(square_query, background_query):
    label = _label()
    crit = SetCriterion(C)
    targets = crit.targets(label[None])
    square, background = label == 2, label == 0
    outputs = _one_image_outputs(6, {square_query: (2, square), background_query: (0, background)})
    (rows, cols), = crit.match(outputs["pred_logits"], outputs["pred_masks"], targets)
    classes = targets[0].classes.numpy()
    assert dict(zip(rows.tolist(), classes[cols].tolist())) == {square_query: 2, background_query: 0}


def _expected_ce(logits, targets_per_query, no_object_weight):
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    nll = -logp[np.arange(len(targets_per_query)), targets_per_query]
    weights = np.where(targets_per_query == C, no_object_weight, 1.0)
    return float((nll * weights).sum() / weights.sum())


@pytest.mark.parametrize("no_object_weight", [0.1, 1.0])
def test_no_object_weight_in_the_class_loss(no_object_weight):
    label = _label()
    crit = SetCriterion(C, no_object_weight=no_object_weight)
    targets = crit.targets(label[None])
    outputs = _one_image_outputs(6, {4: (2, label == 2), 1: (0, label == 0)})
    losses = crit.layer_losses(outputs, targets, num_masks=2.0)
    expected_targets = np.full(6, C)
    expected_targets[[1, 4]] = [0, 2]
    logits = outputs["pred_logits"].numpy()[0].astype(np.float64)
    expected = _expected_ce(logits, expected_targets, no_object_weight)
    assert float(losses["loss_ce"]) == pytest.approx(expected, rel=1e-5)
    # the weight matters here: the other weight gives another value
    other = _expected_ce(logits, expected_targets, 1.1 - no_object_weight)
    assert abs(expected - other) > 1e-3


def test_default_no_object_weight_is_a_tenth():
    crit = SetCriterion(C)
    assert crit.no_object_weight == pytest.approx(0.1)


def test_ignored_pixels_do_not_contribute():
    label = _label()
    ignored = label == 255
    crit = SetCriterion(C)
    labels = paddle.to_tensor(label[None])
    base = _one_image_outputs(6, {4: (2, label == 2), 1: (0, label == 0)})
    rng = np.random.default_rng(11)

    def loss_with(masks):
        masks = paddle.to_tensor(masks, stop_gradient=False)
        out = crit({"pred_logits": base["pred_logits"], "pred_masks": masks}, labels)
        return out, masks

    masks = base["pred_masks"].numpy()
    ref, ref_masks = loss_with(masks)
    changed = masks.copy()
    changed[:, :, ignored] = rng.normal(0, 20, (1, 6, int(ignored.sum())))
    got, _ = loss_with(changed)
    for key in ("loss", "loss_ce", "loss_mask", "loss_dice"):
        assert float(got[key]) == pytest.approx(float(ref[key]), rel=1e-6), key
    # and no gradient reaches an ignored pixel, while labelled pixels get one
    ref["loss"].backward()
    grad = ref_masks.grad.numpy()
    assert np.abs(grad[:, :, ignored]).max() == 0.0
    assert np.abs(grad[0, 4][~ignored]).max() > 0.0
    # a change on labelled pixels does change the loss (the check above can fail)
    changed = masks.copy()
    changed[0, 4, 0, 0] += 10.0
    assert float(loss_with(changed)[0]["loss_mask"]) != pytest.approx(float(ref["loss_mask"]), rel=1e-6)


def test_image_without_labelled_pixels():
    crit = SetCriterion(C)
    labels = paddle.full([1, 16, 16], 255, dtype="int64")
    masks = paddle.randn([1, 5, 16, 16])
    masks.stop_gradient = False
    logits = paddle.randn([1, 5, C + 1])
    out = crit({"pred_logits": logits, "pred_masks": masks}, labels)
    assert float(out["loss_mask"]) == 0.0 and float(out["loss_dice"]) == 0.0
    # every query is "no object": the class loss is their mean cross entropy to the last class
    expected = -F.log_softmax(logits, axis=-1)[0, :, C].mean()
    assert float(out["loss"]) == pytest.approx(float(expected), rel=1e-5)
    out["loss"].backward()


def _random_outputs(n, q, h, w, aux):
    def one():
        return {"pred_logits": paddle.randn([n, q, C + 1]), "pred_masks": paddle.randn([n, q, h, w]) * 3}

    out = one()
    out["aux_outputs"] = [one() for _ in range(aux)]
    return out


def test_same_as_paddleseg_maskformer_loss_without_ignored_pixels():
    """Without ignored pixels the loss equals paddleseg's MaskFormerLoss recipe (matcher, terms, weights)."""
    from segzoo.compat import import_paddleseg

    import_paddleseg()
    from paddleseg.models.losses import MaskFormerLoss

    paddle.seed(1)
    outputs = _random_outputs(2, 7, 8, 8, aux=5)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, C, (2, 32, 32)).astype(np.int64)
    labels[1][labels[1] == 2] = 0  # the second image has two classes only
    crit = SetCriterion(C)
    ours = crit(outputs, paddle.to_tensor(labels))

    # paddleseg's forward cannot run on Paddle 3 / numpy 2; drive its parts with the same targets
    reference = MaskFormerLoss(num_classes=C)
    targets = crit.targets(labels)
    ps_targets = [{"labels": t.classes, "masks": t.masks} for t in targets]
    num_masks = float(sum(t.num for t in targets))
    layers = [{k: v for k, v in outputs.items() if k != "aux_outputs"}] + outputs["aux_outputs"]
    expected = {"loss_ce": 0.0, "loss_mask": 0.0, "loss_dice": 0.0}
    for layer in layers:
        indices = reference.matcher(layer, ps_targets)
        mine = crit.match(layer["pred_logits"], layer["pred_masks"], targets)
        for (a, b), (c, d) in zip(indices, mine):
            assert a.numpy().tolist() == c.tolist() and b.numpy().tolist() == d.tolist()
        for kind in reference.losses:
            for key, value in reference.get_loss(kind, layer, ps_targets, indices, num_masks).items():
                expected[key] += float(value) * reference.weight_dict[key]
    for key, value in expected.items():
        assert float(ours[key]) == pytest.approx(value, rel=1e-5), key
    assert float(ours["loss"]) == pytest.approx(sum(expected.values()), rel=1e-5)


def test_deep_supervision_adds_the_auxiliary_layers():
    paddle.seed(2)
    outputs = _random_outputs(1, 5, 8, 8, aux=2)
    labels = paddle.to_tensor(np.random.default_rng(1).integers(0, C, (1, 16, 16)))
    with_aux = SetCriterion(C)(outputs, labels)
    last_only = SetCriterion(C, deep_supervision=False)(outputs, labels)
    crit = SetCriterion(C)
    targets = crit.targets(labels)
    per_layer = [
        crit.layer_losses(layer, targets, float(sum(t.num for t in targets)))
        for layer in [outputs] + outputs["aux_outputs"]
    ]
    total = sum(float(d["loss_ce"]) + 20.0 * float(d["loss_mask"]) + float(d["loss_dice"]) for d in per_layer)
    assert float(with_aux["loss"]) == pytest.approx(total, rel=1e-5)
    first = per_layer[0]
    expected = float(first["loss_ce"]) + 20.0 * float(first["loss_mask"]) + float(first["loss_dice"])
    assert float(last_only["loss"]) == pytest.approx(expected, rel=1e-5)


def test_train_step_through_the_registry(registry):
    name = "MaskFormer_tiny"
    cfg = registry.config(name, num_classes=C)
    paddle.seed(5)
    model = registry.build_model(name, cfg)
    model.train()
    images = paddle.randn([1, 3, 64, 64])
    label = np.zeros((1, 64, 64), np.int64)
    label[0, 10:30, 20:50] = 1
    label[0, 50:, :] = 255
    out = registry.train_step(name, cfg, model, images, paddle.to_tensor(label))
    assert set(out) == {"loss", "loss_ce", "loss_mask", "loss_dice"}
    assert all(isinstance(out[k], float) for k in ("loss_ce", "loss_mask", "loss_dice"))
    assert float(out["loss"]) == pytest.approx(out["loss_ce"] + out["loss_mask"] + out["loss_dice"], rel=1e-5)
    out["loss"].backward()
    grad = model.seghead.predictor.class_embed.weight.grad
    assert grad is not None and float(grad.abs().sum()) > 0
    model.clear_gradients()

    label[0, 0, 0] = C  # out of range for 3 classes
    with pytest.raises(segzoo.DatasetError, match="num_classes=3"):
        registry.train_step(name, cfg, model, images, paddle.to_tensor(label))
    with pytest.raises(segzoo.ConfigError, match="same size"):
        registry.train_step(name, cfg, model, images, paddle.zeros([1, 32, 64], dtype="int64"))
