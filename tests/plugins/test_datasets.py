"""The shared card fields of the families published on Cityscapes and ADE20K (segzoo_plugins._datasets)."""

import pytest

import segzoo
from segzoo_plugins._datasets import ADE20K, ADE20K_PROTOCOL, CITYSCAPES, CITYSCAPES_PROTOCOL


def test_card_fields():
    assert CITYSCAPES.card_fields() == {
        "dataset": "Cityscapes", "num_classes": 19, "eval_protocol": CITYSCAPES_PROTOCOL, "input_size": (1024, 512),
    }
    assert ADE20K.card_fields(eval_protocol="mine") == {
        "dataset": "ADE20k", "num_classes": 150, "eval_protocol": "mine", "input_size": (512, 512),
    }
    with pytest.raises(TypeError, match="size_divisor"):
        CITYSCAPES.card_fields(size_divisor=8)


@pytest.mark.parametrize(
    "family, published",
    [("deeplab", CITYSCAPES), ("ocrnet", CITYSCAPES), ("ppliteseg", CITYSCAPES), ("segformer", CITYSCAPES),
     ("seaformer", ADE20K), ("maskformer", ADE20K)],
)
def test_every_card_of_the_family_takes_the_shared_fields(family, published):
    cards = [c for c in segzoo.get_registry().cards() if c.family == family]
    assert cards
    for card in cards:
        assert (card.dataset, card.num_classes, card.input_size) == (
            published.dataset, published.num_classes, published.input_size
        ), card.name
        assert "input_size" in card.model_fields_set, card.name
        if family != "maskformer":  # MaskFormer states its own ADE20K protocol
            assert card.eval_protocol == published.eval_protocol, card.name


def test_seaformer_keeps_its_protocol_name():
    from segzoo_plugins import seaformer

    assert seaformer.ADE20K_PROTOCOL is ADE20K_PROTOCOL
