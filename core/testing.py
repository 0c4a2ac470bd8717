"""The model contract: what every registered model must do, as checks a plugin author can run.

segzoo's own test suite runs these for every model in ``segzoo.list_models()``
(built-in and third-party alike, ``tests/plugins/test_contract.py``); a
third-party plugin can run them in its own CI::

    from segzoo.testing import ModelContract

    def test_contract():
        ModelContract("TinyNet").check_all()

Each check raises ``AssertionError`` with a message that says what broke.
:meth:`ModelContract.check_export` and :meth:`ModelContract.check_onnx` check
what the card's ``export`` *declares* by doing it: the network is exported to a
static graph and run by Paddle Inference, and converted to ONNX and run by ONNX
Runtime, at two input sizes when the card declares a dynamic H×W, and their
scores are compared with the dygraph network's. ``segzoo info NAME --check``
runs those two (:meth:`ModelContract.export_report`).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from .errors import ExportError
from .inference.engines import PaddleInferenceEngine
from .inference.export import export_model, paddle_error_summary
from .inference.convert import convert_to_onnx
from .inference.modeldir import read_inference_yml
from .registry import get_registry
from .weights import load_weights, save_weights

#: where the guide explains what a network needs to export and convert
GUIDE = "docs/plugins.md, 'Export and ONNX'"
#: largest difference between exported and dygraph scores, relative to the scores' largest magnitude
SCORE_TOLERANCE = 5e-3  # the same as the ONNX conversion check (validate_conversion)


@dataclass
class CheckResult:
    """The outcome of one check of :meth:`ModelContract.export_report`."""

    check: str  # "export" or "onnx"
    status: str  # "passed", "failed", "not declared" (the card says it is not supported) or "not checked"
    detail: str

    def __str__(self) -> str:
        return f"{self.check}: {self.status}" + (f" ({self.detail})" if self.detail else "")


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

    def batch_data(self, size: Optional[tuple[int, int]] = None, batch: Optional[int] = None):
        """A fixed batch: drawn shapes, preprocessed by the model's own hook, and their labels."""
        import paddle

        from .datasets.shapes import draw_sample

        rng = np.random.default_rng(self.seed)
        images, labels = [], []
        for _ in range(self.batch if batch is None else batch):
            image, label = draw_sample(rng, size or self.size)
            images.append(self.registry.preprocess(self.name, self.config, image))
            labels.append(np.minimum(label, self.num_classes - 1))
        return paddle.to_tensor(np.stack(images)), paddle.to_tensor(np.stack(labels).astype("int64"))

    def scores(self, model, images):
        import paddle

        model.eval()
        with paddle.no_grad():
            return self.registry.postprocess(self.name, self.config, model(images))

    def export_sizes(self) -> list[tuple[int, int, int]]:
        """``(N, W, H)`` inputs the exported graph is run at: two shapes for a dynamic H×W, else the fixed one."""
        e = self.card.export
        if not e.dynamic_shape and e.fixed_input_shape is not None:
            n, _, h, w = e.fixed_input_shape
            return [(n if n and n > 0 else 1, w, h)]
        w, h = self.size
        d = self.card.size_divisor
        # a second, taller shape and another batch size: a graph that kept the first shape fails on it
        return [(self.batch, w, h), (1, w - d if w - d >= 2 * d else w + d, h + 2 * d)]

    # -- the checks -----------------------------------------------------------------------
    def check_preprocess(self) -> None:
        w, h = self.size
        image = np.zeros((h, w, 3), np.uint8)
        out = self.registry.preprocess(self.name, self.config, image)
        assert isinstance(out, np.ndarray), f"{self.name}: preprocess must return a numpy array, got {type(out)}"
        assert out.shape == (3, h, w), f"{self.name}: preprocess gave {out.shape}, expected (3, {h}, {w})"
        assert out.dtype == np.float32, f"{self.name}: preprocess gave {out.dtype}, expected float32"

    def check_forward(self) -> None:
        """Eval-mode scores are N×C×H×W at the input size and finite, at an odd size too.

        segzoo feeds each image at its own size, so unless the card sets
        ``pad_to`` the network must also take sides that are not multiples of
        its stride (checked at the contract size plus 5×3 pixels).
        """
        model = self.build()
        w, h = self.size
        sizes = [(w, h)] if self.card.pad_to else [(w, h), (w + 5, h + 3)]
        for sw, sh in sizes:
            images, _ = self.batch_data((sw, sh))
            try:
                scores = self.scores(model, images)
            except Exception as exc:
                if (sw, sh) == (w, h):
                    raise
                raise AssertionError(
                    f"{self.name}: the network fails on a {sw}×{sh} input ({_clause(paddle_error_summary(exc))}); "
                    "segzoo feeds each image at its own size: make the network take every size, or set pad_to "
                    "(with pad_reason) on its card"
                ) from None
            expected = [self.batch, self.num_classes, sh, sw]
            assert list(scores.shape) == expected, f"{self.name}: scores {list(scores.shape)}, expected {expected}"
            assert bool(scores.isfinite().all()), f"{self.name}: scores are not finite at {sw}×{sh}"

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

    def check_export(self) -> str:
        """The card declares a static graph: export it, run it on Paddle Inference, compare with dygraph.

        With ``export.dynamic_shape`` the graph is run at two shapes (another
        H×W and batch size than the first), so a graph that froze the first
        shape fails. Returns what was checked; a card with ``export.static``
        False is not exported (returns ``"not declared"``).
        """
        if not self.card.export.static:
            return "not declared"
        model = self.build()
        with tempfile.TemporaryDirectory() as tmp:
            out = self._export(model, Path(tmp) / "export")
            engine = self._expect(
                lambda: PaddleInferenceEngine(read_inference_yml(out)), "Paddle Inference cannot load the export"
            )
            ran = self._compare(model, "Paddle Inference", engine.run)
        return f"exported with input {self._spec()}; Paddle Inference matches dygraph at {ran}"

    def check_onnx(self) -> str:
        """The card declares ONNX: convert the export with paddle2onnx, run it on ONNX Runtime, compare with dygraph.

        The conversion is segzoo's own (``segzoo.inference.convert.convert_to_onnx``,
        which also checks the ONNX model against Paddle Inference). A card with
        ``export.onnx_static_hw`` converts at a fixed H×W, as the onnxruntime
        engine does; otherwise the ONNX model is run at the same two shapes as
        :meth:`check_export`. Returns what was checked, or ``"not declared"``.
        """
        e = self.card.export
        if not (e.static and e.onnx):
            return "not declared"
        import onnxruntime as ort

        model = self.build()
        sizes = self.export_sizes()
        shape = None
        if e.onnx_static_hw and e.dynamic_shape:
            # converted per input size, as the onnxruntime engine does: checked at the card's typical size
            d = self.card.size_divisor
            w, h = (-(-s // d) * d for s in self.card.input_size)
            sizes, shape = [(1, w, h)], [None, 3, h, w]
        with tempfile.TemporaryDirectory() as tmp:
            out = self._export(model, Path(tmp) / "export", shape)
            try:
                onnx_file = convert_to_onnx(out / "inference.json", out / "inference.pdiparams", Path(tmp) / "model.onnx")
            except ExportError as exc:
                raise AssertionError(
                    f"{self.name}: the card declares ONNX support (export.onnx) but {_clause(exc)}. "
                    f"Fix the network or declare export.onnx=False with a note; see {GUIDE}"
                ) from None
            options = ort.SessionOptions()
            options.log_severity_level = 3  # no warnings about unused initializers
            session = ort.InferenceSession(str(onnx_file), sess_options=options, providers=["CPUExecutionProvider"])
            input_name = session.get_inputs()[0].name
            ran = self._compare(model, "ONNX Runtime", lambda x: session.run(None, {input_name: x})[0], sizes)
        where = "its fixed H×W" if shape else "a dynamic H×W"
        return f"converted with {where}; ONNX Runtime matches dygraph at {ran}"

    def export_report(self) -> list[CheckResult]:
        """Run :meth:`check_export` and :meth:`check_onnx`; never raises for a failed check."""
        results: list[CheckResult] = []
        for check, run in (("export", self.check_export), ("onnx", self.check_onnx)):
            if check == "onnx" and results[0].status == "failed" and self.card.export.onnx:
                results.append(CheckResult(check, "not checked", "the export it converts failed"))
                continue
            try:
                detail = run()
            except AssertionError as exc:
                results.append(CheckResult(check, "failed", str(exc)))
                continue
            if detail == "not declared":
                results.append(CheckResult(check, "not declared", self.card.export.note))
            else:
                results.append(CheckResult(check, "passed", detail))
        return results

    def check_all(self) -> None:
        """Every check, the export and ONNX checks included."""
        self.check_preprocess()
        self.check_forward()
        self.check_train_step()
        self.check_save_load()
        self.check_export()
        self.check_onnx()

    # -- export helpers -------------------------------------------------------------------
    def _spec(self, shape: Optional[list] = None) -> str:
        e = self.card.export
        if shape is None and not e.dynamic_shape:
            shape = list(e.fixed_input_shape or [])
        if shape is None:
            return "N×3×H×W (dynamic)"
        return "×".join("N" if s is None else str(s) for s in shape) + " (fixed)"

    def _export(self, model, out: Path, input_shape: Optional[list] = None) -> Path:
        try:
            return export_model(self.name, out, config=self.config, layer=model, input_shape=input_shape,
                                output_op="none")
        except ExportError as exc:
            raise AssertionError(
                f"{self.name}: the card declares a static-graph export (export.static) but it fails: {_clause(exc)}"
                + ("" if GUIDE in str(exc) else f". See {GUIDE}")
            ) from None

    def _expect(self, make: Callable, what: str):
        try:
            return make()
        except Exception as exc:
            raise AssertionError(f"{self.name}: {what}: {_clause(paddle_error_summary(exc))}. See {GUIDE}") from None

    def _compare(self, model, engine: str, run: Callable, sizes: Optional[list] = None) -> str:
        """Run ``run`` on a batch of each size and compare its scores with the dygraph model's."""
        done = []
        for n, w, h in sizes or self.export_sizes():
            images, _ = self.batch_data((w, h), n)
            want = self._expect(
                lambda: self.scores(model, images).numpy(),
                f"the network itself (dygraph) fails on an input of {n}×3×{h}×{w}, a shape its card allows "
                "(export.dynamic_shape)",
            )
            x = np.ascontiguousarray(images.numpy())
            got = self._expect(lambda: np.asarray(run(x)), f"{engine} fails on an input of {n}×3×{h}×{w}")
            hint = (
                "the exported graph kept a shape of the trace: compute sizes with paddle.shape / tensor ops, "
                "not Python numbers, or declare export.dynamic_shape=False with a fixed_input_shape"
            )
            assert got.shape == want.shape, (
                f"{self.name}: {engine} gives {list(got.shape)} for an input of {n}×3×{h}×{w}, dygraph "
                f"{list(want.shape)}; {hint}. See {GUIDE}"
            )
            rel = float(np.abs(got - want).max() / max(float(np.abs(want).max()), 1e-12))
            assert rel <= SCORE_TOLERANCE, (
                f"{self.name}: {engine}'s scores differ from dygraph's by {rel:.1e} of their range at "
                f"{n}×3×{h}×{w} (tolerance {SCORE_TOLERANCE:g}); {hint}. See {GUIDE}"
            )
            done.append(f"{n}×3×{h}×{w}")
        return " and ".join(done)


def _clause(text) -> str:
    """``text`` without its final full stop, to go on in the same sentence."""
    return str(text).strip().rstrip(".")
