"""The datasets the built-in models' figures were published on, as the card fields those models share.

Five families publish Cityscapes figures and two publish ADE20K figures; each
card of theirs takes its ``dataset``, ``num_classes``, ``eval_protocol`` and
``input_size`` from one :class:`PublishedOn` here instead of repeating them::

    ModelCard(name=name, family="ocrnet", **CITYSCAPES.card_fields(), ...)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

CITYSCAPES_PROTOCOL = (
    "Cityscapes val (500 images, 19 classes, label 255 ignored), whole 2048×1024 images, "
    "single scale, no flipping; mIoU averaged over the 19 classes (PaddleSeg / PaddleX recipe)"
)

ADE20K_PROTOCOL = (
    "ADE20K val (2,000 images, 150 classes; the 'other' label 0 is ignored and the rest shifted "
    "down by one), short side resized to 512 keeping the aspect ratio, whole-image inference, "
    "single scale, no flipping; mIoU averaged over the 150 classes (PaddleSeg / PaddleX recipe)"
)


@dataclass(frozen=True)
class PublishedOn:
    """A dataset that published figures refer to, with the card fields of the models measured on it."""

    dataset: str
    num_classes: int
    eval_protocol: str
    input_size: tuple[int, int]

    def card_fields(self, **changes) -> dict:
        """``dataset``, ``num_classes``, ``eval_protocol`` and ``input_size`` for a ``ModelCard``.

        ``changes`` replace some of them (a family measured with another protocol
        passes its own ``eval_protocol``); other card fields are not taken here.
        """
        fields = asdict(self)
        unknown = sorted(set(changes) - set(fields))
        if unknown:
            raise TypeError(f"card_fields() takes only {sorted(fields)}, not {unknown}")
        fields.update(changes)
        return fields


CITYSCAPES = PublishedOn("Cityscapes", 19, CITYSCAPES_PROTOCOL, (1024, 512))
ADE20K = PublishedOn("ADE20k", 150, ADE20K_PROTOCOL, (512, 512))
