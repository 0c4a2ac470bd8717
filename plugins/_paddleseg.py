"""What the families built on paddleseg 2.8.0 share: their plugin class, with paddleseg's losses."""

from __future__ import annotations

from segzoo import ModelConfig, ModelPlugin

from .paddleseg_compat import import_paddleseg


class PaddleSegPlugin(ModelPlugin):
    """A model whose network and losses come from paddleseg 2.8.0 (with segzoo's Paddle 3 fixes)."""

    def build_loss(self, config: ModelConfig):
        import_paddleseg()
        from paddleseg.models.losses import CrossEntropyLoss, OhemCrossEntropyLoss

        if config.loss == "ohem":
            return OhemCrossEntropyLoss(thresh=0.7, min_kept=10000, ignore_index=config.ignore_index)
        return CrossEntropyLoss(ignore_index=config.ignore_index)
