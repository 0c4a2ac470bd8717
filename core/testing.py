"""The model contract: what every registered model must do, as checks a plugin author can run.

segzoo's own test suite runs these for every model in ``segzoo.list_models()``
(built-in and third-party alike, ``tests/plugins/test_contract.py``); a
third-party plugin can run them in its own CI::

    from segzoo.testing import ModelContract

    def test_contract():
        ModelContract("TinyNet").check_all()

Each check raises ``AssertionError`` with a message that says what broke.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from .registry import get_registry


@dataclass
class ModelContract:
    """The checks for one model, on a small input (``size`` is ``(W, H)``; default: twice the size divisor)."""

    name: str
    num_classes: int = 3
    size: Optional[tuple[int, int]] = None
    batch: int = 2
    seed: int = 0
    steps: int = 6
    config_overrides: dict = field(default_factory=dict)

    def __post_init__(self):
        self.registry = get_registry()
        self.card = self.registry.card(self.name)
        if self.size is None:
            d = self.card.size_divisor
            # W ≠ H catches transposed outputs; at least 64 so every network has room to downsample
            self.size = (max(3 * d, 96), max(2 * d, 64))
        self.config = self.registry.config(self.name, num_classes=self.num_classes, **self.config_overrides)

    # -- helpers --------------------------------------------------------------------------
    def build(self, seed: Optional[int] = None):
        import paddle

        paddle.seed(self.seed if seed is None else seed)
        return self.registry.build_model(self.name, self.config)

    def batch_data(self):
        """A fixed batch: drawn shapes, preprocessed by the model's own hook, and their labels."""
        import paddle

        from .datasets.shapes import draw_sample

        rng = np.random.default_rng(self.seed)
        images, labels = [], []
        for _ in range(self.batch):
            image, label = draw_sample(rng, self.size)
            images.append(self.registry.preprocess(self.name, self.config, image))
            labels.append(np.minimum(label, self.num_classes - 1))
        return paddle.to_tensor(np.stack(images)), paddle.to_tensor(np.stack(labels).astype("int64"))

    def scores(self, model, images):
        import paddle

        model.eval()
        with paddle.no_grad():
            return self.registry.postprocess(self.name, self.config, model(images))

    # -- the checks -----------------------------------------------------------------------
    def check_preprocess(self) -> None:
        w, h = self.size
        image = np.zeros((h, w, 3), np.uint8)
        out = self.registry.preprocess(self.name, self.config, image)
        assert isinstance(out, np.ndarray), f"{self.name}: preprocess must return a numpy array, got {type(out)}"
        assert out.shape == (3, h, w), f"{self.name}: preprocess gave {out.shape}, expected (3, {h}, {w})"
        assert out.dtype == np.float32, f"{self.name}: preprocess gave {out.dtype}, expected float32"

    def check_forward(self) -> None:
        """Eval-mode scores are N×C×H×W at the input size and finite."""
        model = self.build()
        images, _ = self.batch_data()
        scores = self.scores(model, images)
        w, h = self.size
        expected = [self.batch, self.num_classes, h, w]
        assert list(scores.shape) == expected, f"{self.name}: scores {list(scores.shape)}, expected {expected}"
        assert bool(scores.isfinite().all()), f"{self.name}: scores are not finite"

    def check_train_step(self) -> list[float]:
        """``train_step`` returns a scalar loss that a few optimizer steps on one batch lower."""
        import paddle

        model = self.build()
        model.train()
        images, labels = self.batch_data()
        opt = paddle.optimizer.Adam(learning_rate=1e-3, parameters=model.parameters())
        losses = []
        for _ in range(self.steps):
            out = self.registry.train_step(self.name, self.config, model, images, labels)
            loss = out["loss"]
            assert loss.size == 1, f"{self.name}: train_step loss must be a scalar, got shape {loss.shape}"
            loss.backward()
            opt.step()
            opt.clear_grad()
            losses.append(float(loss))
        assert all(np.isfinite(losses)), f"{self.name}: non-finite loss {losses}"
        assert min(losses[-2:]) < losses[0], f"{self.name}: the loss did not go down in {self.steps} steps: {losses}"
        return losses

    def check_save_load(self) -> None:
        """Weights saved and loaded into a freshly built (differently seeded) model give identical scores."""
        from .weights import load_weights, save_weights

        model = self.build(seed=self.seed)
        images, _ = self.batch_data()
        before = self.scores(model, images).numpy()
        with tempfile.TemporaryDirectory() as tmp:
            path = save_weights(model, Path(tmp) / "model.pdparams")
            fresh = self.build(seed=self.seed + 1)
            report = load_weights(fresh, path, strict=True)
        assert report.complete, report.summary()
        after = self.scores(fresh, images).numpy()
        np.testing.assert_array_equal(after, before, err_msg=f"{self.name}: reloaded weights give other scores")

    def check_all(self) -> None:
        self.check_preprocess()
        self.check_forward()
        self.check_train_step()
        self.check_save_load()
