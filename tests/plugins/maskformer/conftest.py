"""Fixtures of the MaskFormer plugin tests.

The tests work with or without the ``segzoo.models`` entry points of the two
models installed: :func:`registry` registers the plugin objects in the
process-wide registry when the entry points have not done it.
"""

import pytest

import segzoo
from segzoo_plugins.maskformer import MASKFORMER_SMALL, MASKFORMER_TINY

PLUGINS = {"MaskFormer_tiny": MASKFORMER_TINY, "MaskFormer_small": MASKFORMER_SMALL}
BACKBONES = {
    "MaskFormer_tiny": "SwinTransformer_tiny_patch4_window7_224_maskformer",
    "MaskFormer_small": "SwinTransformer_small_patch4_window7_224_maskformer",
}


@pytest.fixture
def registry():
    """The process-wide registry, holding both MaskFormer models."""
    reg = segzoo.get_registry()
    for name, plugin in PLUGINS.items():
        if name not in reg.list_models():
            reg.register(plugin)
    return reg


@pytest.fixture(scope="session")
def paddleseg_maskformer():
    """``f(model_name, num_classes)``: paddleseg's own ``MaskFormer``, built as PaddleSeg's configs do."""
    from segzoo.compat import import_paddleseg

    import_paddleseg()
    from paddleseg.models import MaskFormer
    from paddleseg.models.backbones import swin_transformer

    def build(name, num_classes):
        backbone = getattr(swin_transformer, BACKBONES[name])()
        return MaskFormer(num_classes=num_classes, backbone=backbone)

    return build
