"""Batching and running images through an engine: the ``Predictor`` that ``create_model`` returns.

>>> import segzoo
>>> model = segzoo.create_model("PP-LiteSeg-T", model_dir="output/best_model/inference")
>>> for res in model.predict(["a.jpg", "pages.pdf", "https://host/b.png"], batch_size=2):
...     res.save_to_img("output/")

The pipeline for every image: read (see :mod:`segzoo.inference.inputs`) →
resize to the ``target_size`` in force (see :mod:`segzoo.inference.sizes`) →
normalise (the model's ``preprocess`` hook, or ``Deploy.transforms`` of an
exported directory) → the engine, **at the image's own size**, as PaddleX's
predictor and paddleseg feed it → back to the original size (scores resized
bilinearly, then argmax; an engine that outputs labels only is resized
nearest) → :class:`~segzoo.inference.result.SegResult`.

Nothing is padded: padding moves every pixel of a model with global context
(pooling, attention), so a padded image would not give PaddleX's masks. The
one exception is a network that cannot take every size: its card's
``pad_to`` (with ``pad_reason``) pads right/bottom with 0 (the mean colour
after normalising) to a multiple of it, and the scores are cropped back. A
fixed-shape export (``engine.input_hw``) is fed at exactly that size.

**Batches.** ``batch_size`` images are read at a time; those of exactly the
same network input size run through the engine together, the others in
their own sub-batches, so a mask never depends on the batch it was in:
``batch_size`` is a speed setting. An engine with ``requests > 1`` (OpenVINO) gets
``batch_size × requests`` images of a folder at once, in one ``engine.run_many`` call.

**Large images** (more than ``max_pixels`` after resizing, 4096² by
default) and every image when ``slide_window=(W, H)`` is given are predicted
window by window: windows every ``slide_stride`` pixels (default 3/4 of the
window), the scores of overlapping windows averaged. This needs an engine
that outputs scores (dygraph, or a model exported with ``output_op`` none or
softmax).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterator, NamedTuple, Optional, Sequence

import numpy as np

from .._lazy import lazy_exports
from ..errors import ConfigError, ExportError
from ..models import build_with_weights as _build_with_weights  # noqa: F401  (its old private name here)
from ..plugin import normalize_image
from ..registry import get_registry
from . import builtin  # noqa: F401  (registers the built-in engines in the table)
from .engines import DygraphEngine, Engine
from .export import export_model
from .inputs import InputLimits, array_to_bgr, iter_inputs, single_image
from .modeldir import ModelSource
from .pipeline import DEFAULT_PREFETCH, Prefetcher, chunked
from .result import SaveLedger, SegResult
from .sizes import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_PIXEL_LIMIT,
    PIXEL_LIMIT_HINT,
    ResizePlan,
    ceil_to,
    check_pixel_limit,
    check_size_pixels,
    parse_size,
    parse_slide,
    resize_scores,
    resolve_target_size,
    slide_scores,
)

log = logging.getLogger("segzoo")


class RandomWeightsWarning(UserWarning):
    """A predictor was created without weights: its predictions mean nothing."""


class Predictor:
    """A model ready to predict. Create it with :func:`create_model` or :meth:`from_model`.

    Attributes:
        model_name: the model's registered name.
        config: its validated config (``num_classes``, ``mean``, ``std``, ...).
        card: its :class:`~segzoo.ModelCard`.
        engine: the :class:`~segzoo.inference.engine_table.Engine` that runs batches.
        source: where the weights came from (:class:`~segzoo.inference.modeldir.ModelSource`).
        layer: the dygraph ``paddle.nn.Layer`` (``None`` for exported models).
        target_size: the ``create_model()`` level of ``target_size``.
        class_names: names of the classes when known (the demo sets them), else ``None``.
    """

    def __init__(
        self,
        model_name: str,
        config: Any,
        engine: Engine,
        source: ModelSource,
        *,
        layer: Any = None,
        target_size: Any = None,
        slide_window: Any = None,
        slide_stride: Any = None,
        max_pixels: Optional[int] = DEFAULT_MAX_PIXELS,
        limits: InputLimits = InputLimits(),
        pixel_limit: Optional[int] = DEFAULT_PIXEL_LIMIT,
    ):
        self.registry = get_registry()
        self.model_name = model_name
        self.card = self.registry.card(model_name)
        self.config = config
        self.engine = engine
        self.source = source
        self.layer = layer
        self.pixel_limit = check_pixel_limit(pixel_limit)
        check_size_pixels(parse_size(target_size), self.pixel_limit)  # validate now, not at the first image
        self.target_size = target_size
        self._slide = parse_slide(slide_window, slide_stride)
        self.max_pixels = _check_max_pixels(max_pixels)
        self.limits = limits
        self.class_names: Optional[list[str]] = None
        deploy = source.deploy
        if deploy is not None:  # an exported directory normalises with its Deploy.transforms' mean and std
            self._deploy_norm = _Normalize(np.asarray(deploy.mean, np.float32), np.asarray(deploy.std, np.float32))

    # -- construction -----------------------------------------------------------------------------
    @classmethod
    def from_model(cls, model_name: str, config: Any, layer: Any, **kwargs) -> "Predictor":
        """Wrap an already built dygraph ``layer`` (e.g. the trainer's model) without copying it.

        ``config`` is the model's config object or a dict of its fields. Cheap:
        nothing is built, loaded or moved; the layer runs on paddle's current
        device, in eval mode during each call (a training layer is put back in
        train mode afterwards). ``kwargs`` are :class:`Predictor` options
        (``target_size``, ``slide_window``, ``max_pixels``...). Use
        :meth:`predict_arrays` for the fastest path from arrays to masks.
        """
        cfg = get_registry().config(model_name, config)
        engine = DygraphEngine(model_name, cfg, layer)
        return cls(model_name, cfg, engine, ModelSource("layer"), layer=layer, **kwargs)

    def __repr__(self) -> str:
        where = f" from {self.source.path}" if self.source.path else f" ({self.source.kind})"
        return f"<Predictor {self.model_name}{where}, engine {self.engine.name}>"

    @property
    def num_classes(self) -> int:
        return int(self.config.num_classes)

    # -- the public calls -------------------------------------------------------------------------
    def predict(
        self,
        input: Any,
        batch_size: int = 1,
        target_size: Any = None,
        *,
        slide_window: Any = None,
        slide_stride: Any = None,
        max_pixels: Any = "default",
        prefetch: int = DEFAULT_PREFETCH,
    ) -> Iterator[SegResult]:
        """Predict every image of ``input``; a generator of :class:`SegResult`, in input order.

        Args:
            input: a BGR array, an image path, a directory, a PDF, an http(s)
                URL, or a list of these (see :mod:`segzoo.inference.inputs`).
            batch_size: images read and run together (a speed setting only).
            target_size: ``-1``, ``n`` or ``(W, H)``; ``None`` leaves it to
                ``create_model()``'s and then to the model directory's.
            slide_window / slide_stride: ``(W, H)`` for sliding-window inference.
            max_pixels: images larger than this (after resizing) slide with
                the card's ``input_size`` windows; ``None`` never. An engine
                that outputs labels only (an argmax export) cannot slide: by
                default it predicts large images whole (with a warning), and
                an explicit ``max_pixels`` or ``slide_window`` is an error.
            prefetch: batches read, decoded and pre-processed ahead in a
                background thread while the current batch runs (see
                :mod:`segzoo.inference.pipeline`); ``0`` does everything in
                the calling thread, as does a single image (an array, an
                image file or a URL). Results stay in input order either way.

        Arguments are checked at once; reading and predicting happen as the
        generator is consumed, ``batch_size`` images at a time.
        """
        options = self._options(batch_size, target_size, slide_window, slide_stride, max_pixels)
        if isinstance(prefetch, bool) or not isinstance(prefetch, (int, np.integer)) or prefetch < 0:
            raise ConfigError(f"prefetch: {prefetch!r} must be an int >= 0 (0 turns pipelining off)")
        options["prefetch"] = int(prefetch)
        return self._generate(input, options)

    __call__ = predict

    def predict_arrays(self, images: Sequence[np.ndarray], batch_size: int = 1, target_size: Any = None, *,
                       slide_window: Any = None, slide_stride: Any = None, max_pixels: Any = "default") -> list[np.ndarray]:
        """Label maps (``H×W``, at each image's size) for a list of BGR arrays: the fast path.

        No reading, no result objects: what the evaluator and the trainer use.
        Same sizes, padding and sliding rules as :meth:`predict`.
        """
        return self._predict_images(images, "labels", batch_size, target_size, slide_window, slide_stride, max_pixels)

    def predict_scores(self, images: Sequence[np.ndarray], batch_size: int = 1, target_size: Any = None, *,
                       slide_window: Any = None, slide_stride: Any = None, max_pixels: Any = "default") -> list[np.ndarray]:
        """Class scores ``C×H×W`` ``float32`` at each image's original size (before the argmax).

        Needs an engine that outputs scores (not a model exported with argmax).
        """
        if self.engine.outputs != "scores":
            raise ConfigError(
                f"{self.model_name}: this engine outputs labels only (exported with output_op argmax); "
                "scores need the dygraph engine or a model exported with output_op none"
            )
        return self._predict_images(images, "scores", batch_size, target_size, slide_window, slide_stride, max_pixels)

    def _predict_images(self, images, want: str, batch_size, target_size, slide_window, slide_stride,
                        max_pixels) -> list[np.ndarray]:
        """The core of :meth:`predict_arrays` (``want="labels"``) and :meth:`predict_scores` (``"scores"``)."""
        images = _as_list(images)
        if not images:
            return []
        options = self._options(batch_size, target_size, slide_window, slide_stride, max_pixels)
        arrays = [array_to_bgr(img, f"images[{i}]") for i, img in enumerate(images)]
        return self._run(arrays, options, want=want)

    def export(self, out_dir, output_op: str = "argmax", input_shape: Any = None) -> Path:
        """Export this predictor's network to a PaddleX inference directory (see :func:`export_model`)."""
        if self.layer is None:
            raise ExportError(
                f"this predictor runs an exported model already ({self.source.path}); copy that directory"
            )
        return export_model(
            self.model_name, out_dir, config=self.config, layer=self.layer, input_shape=input_shape, output_op=output_op
        )

    # -- options ----------------------------------------------------------------------------------
    def _options(self, batch_size, target_size, slide_window, slide_stride, max_pixels) -> dict:
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ConfigError(f"batch_size: {batch_size!r} must be an int >= 1")
        deploy_resize = self.source.deploy.resize if self.source.deploy is not None else None
        plan = resolve_target_size(target_size, self.target_size, deploy_resize)
        if not plan.keep_ratio and not plan.size_divisor:
            check_size_pixels(plan.size, self.pixel_limit)  # sizes that depend on the image: checked per image
        slide = parse_slide(slide_window, slide_stride) or self._slide
        limit = self.max_pixels if isinstance(max_pixels, str) and max_pixels == "default" else _check_max_pixels(max_pixels)
        whole_warning = None
        if self.engine.outputs != "scores" and isinstance(max_pixels, str) and max_pixels == "default":
            # an argmax export cannot average windows: large images go through whole, with a warning
            whole_warning, limit = limit, None
        if self.engine.input_hw is not None:
            h, w = self.engine.input_hw
            if slide_window is not None:
                raise ConfigError(
                    f"{self.model_name}: this model was exported for {w}×{h} inputs only, so it cannot "
                    "predict window by window; export it with a dynamic shape to slide"
                )
            if target_size is not None and parse_size(target_size) not in (None, (w, h)):
                log.warning("%s: exported for %d×%d inputs; target_size %s is ignored", self.model_name, w, h, target_size)
            plan, slide, limit, whole_warning = ResizePlan((w, h)), None, None, None
        if slide is not None and self.engine.outputs != "scores":
            raise ConfigError(
                f"{self.model_name}: sliding-window inference averages scores, but this engine outputs "
                "labels only (exported with output_op argmax); use the dygraph engine or export with "
                "output_op none"
            )
        return {"batch_size": int(batch_size), "plan": plan, "slide": slide, "max_pixels": limit, "whole_warning": whole_warning}

    # -- the pipeline -----------------------------------------------------------------------------
    def _generate(self, input: Any, options: dict) -> Iterator[SegResult]:
        ledger = SaveLedger()
        size = options["batch_size"] * (1 if single_image(input) else max(1, int(getattr(self.engine, "requests", 1))))
        batches = chunked(iter_inputs(input, self.limits), size)

        def prepare(batch):
            return self._prepare([it.image for it in batch], options)

        if options.get("prefetch") and not single_image(input):  # one image: no thread to read ahead with
            stream: Any = Prefetcher(batches, prepare, depth=options["prefetch"])
        else:
            stream = ((batch, prepare(batch)) for batch in batches)
        try:
            for batch, prepared in stream:
                masks = self._execute(len(batch), prepared, options, want="labels")
                yield from self._results(batch, masks, ledger)
        finally:
            stream.close()

    def _results(self, batch, masks, ledger) -> Iterator[SegResult]:
        for item, mask in zip(batch, masks):
            yield SegResult(mask, item.image, input_path=item.input_path, page_index=item.page_index,
                            name=item.name, key=item.key, ledger=ledger)

    def normalize(self, image: np.ndarray) -> np.ndarray:
        """One BGR ``uint8`` image → ``3×H×W`` ``float32`` network input (not padded)."""
        if self.source.deploy is not None:
            # PaddleX's Normalize, which is the default plugin's normalize with the export's mean and std
            return normalize_image(image, self._deploy_norm.mean, self._deploy_norm.std)
        out = self.registry.preprocess(self.model_name, self.config, image)
        return np.ascontiguousarray(out, dtype=np.float32)

    def _run(self, images: list[np.ndarray], options: dict, want: str) -> list[np.ndarray]:
        return self._execute(len(images), self._prepare(images, options), options, want)

    def _prepare(self, images: list[np.ndarray], options: dict) -> list[tuple]:
        """Resize and normalise a batch (no engine call: this part runs ahead in the pipeline).

        Returns ``(index, normalised CHW, original (h, w), slide)`` per image,
        ``slide`` being ``None`` or the ``(window, stride)`` to predict it with.
        """
        import cv2

        plan: ResizePlan = options["plan"]
        prepared = []
        for i, img in enumerate(images):
            h0, w0 = img.shape[:2]
            w, h = plan.output_size(w0, h0)
            if self.pixel_limit is not None and w * h > self.pixel_limit:
                raise ConfigError(
                    f"image {i} of the batch ({w0}×{h0}) would be {w}×{h} = {w * h:,} pixels after resizing, above "
                    f"the limit of {self.pixel_limit:,} pixels per image; choose a smaller target size, or "
                    f"{PIXEL_LIMIT_HINT}"
                )
            try:
                resized = img if (w, h) == (w0, h0) else cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)
            except (cv2.error, MemoryError) as exc:
                reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
                raise ConfigError(
                    f"image {i} of the batch ({w0}×{h0}) cannot be resized to {w}×{h} here ({reason}); choose a "
                    "smaller target size"
                ) from None
            chw = self.normalize(resized)
            slide = options["slide"]
            if slide is None and options["max_pixels"] and h * w > options["max_pixels"]:
                win = tuple(self.card.input_size)
                slide = (win, (max(1, win[0] * 3 // 4), max(1, win[1] * 3 // 4)))
                if self.engine.outputs != "scores":
                    raise ConfigError(
                        f"image {i} is {w}×{h} pixels, above max_pixels={options['max_pixels']}, but this "
                        "engine outputs labels only, so it cannot slide; pass max_pixels=None to predict it "
                        "whole, or use an engine that outputs scores"
                    )
                log.info("image %d (%d×%d) is predicted window by window (%s, stride %s)", i, w, h, slide[0], slide[1])
            if slide is None and options["whole_warning"] and h * w > options["whole_warning"]:
                log.warning(
                    "image %d is %d×%d pixels; this engine outputs labels only (an argmax export), so it is "
                    "predicted whole, not window by window: export with output_op none to slide",
                    i, w, h,
                )
            prepared.append((i, chw, (h0, w0), slide))
        return prepared

    def _execute(self, count: int, prepared: list[tuple], options: dict, want: str) -> list[np.ndarray]:
        """Run the engine on a prepared batch; labels or scores per image, in order."""
        outputs: list[Optional[np.ndarray]] = [None] * count
        whole = []
        for i, chw, orig, slide in prepared:
            if slide is not None:
                scores = slide_scores(self.engine.run, chw, slide, options["batch_size"], self._pad_to, self.model_name)
                outputs[i] = self._finish(scores, orig, want)
            else:
                whole.append((i, chw, orig))
        divisor = self._pad_to
        if len(whole) > 1 and getattr(self.engine, "requests", 1) > 1:  # parallel requests: same bytes, in order
            outs = self.engine.run_many([_padded(chw, divisor) for _, chw, _ in whole])
            for (i, chw, orig), out in zip(whole, outs):
                outputs[i] = self._finish(out[..., : chw.shape[1], : chw.shape[2]], orig, want)
            return outputs  # type: ignore[return-value]
        # whole images: those of the same network input size run together
        groups: dict[tuple[int, int], list] = {}
        for entry in whole:
            _, chw, _ = entry
            key = (ceil_to(chw.shape[1], divisor), ceil_to(chw.shape[2], divisor))
            groups.setdefault(key, []).append(entry)
        step = options["batch_size"]
        if self.engine.max_batch:
            step = min(step, self.engine.max_batch)
        for (hp, wp), entries in groups.items():
            for start in range(0, len(entries), step):
                chunk = entries[start : start + step]
                batch = np.zeros((len(chunk), 3, hp, wp), np.float32)
                for j, (_, chw, _) in enumerate(chunk):
                    batch[j, :, : chw.shape[1], : chw.shape[2]] = chw
                out = self.engine.run(batch)
                for j, (i, chw, orig) in enumerate(chunk):
                    outputs[i] = self._finish(out[j, ..., : chw.shape[1], : chw.shape[2]], orig, want)
        return outputs  # type: ignore[return-value]

    @property
    def _pad_to(self) -> int:
        """The multiple the network input's sides are padded to: 1 (none) unless the card's ``pad_to`` says so."""
        if self.engine.input_hw is not None:
            return 1  # a fixed-shape export is fed at exactly its size (the plan resizes to it)
        return self.card.pad_to or 1

    def _finish(self, out: np.ndarray, orig: tuple[int, int], want: str) -> np.ndarray:
        """Engine output for one image (cropped) → labels or scores at the original size."""
        import cv2

        h0, w0 = orig
        same = out.shape[-2:] == (h0, w0)
        if out.ndim == 3:  # scores C×H×W
            if not same:
                out = resize_scores(out, (w0, h0))
            if want == "scores":
                return np.ascontiguousarray(out, dtype=np.float32)
            return self._labels(np.argmax(out, axis=0))
        if want == "scores":
            raise ConfigError(f"{self.model_name}: the engine outputs labels only; scores are not available")
        labels = out.astype(np.int32, copy=False)
        if not same:
            labels = cv2.resize(labels, (w0, h0), interpolation=cv2.INTER_NEAREST)
        return self._labels(labels)

    def _labels(self, labels: np.ndarray) -> np.ndarray:
        if self.num_classes <= 256 and (labels.size == 0 or int(labels.max()) <= 255):
            return labels.astype(np.uint8)
        return labels.astype(np.int32)


class _Normalize(NamedTuple):
    """The ``mean`` and ``std`` an exported directory normalises with (what :func:`segzoo.plugin.normalize_image` takes)."""

    mean: np.ndarray
    std: np.ndarray


def _as_list(images) -> list:
    if isinstance(images, np.ndarray) and images.ndim == 4:
        return list(images)
    if isinstance(images, np.ndarray):
        return [images]
    return list(images)


def _check_max_pixels(value) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ConfigError(f"max_pixels: {value!r} must be a positive int, or None to never slide")
    return int(value)


def _padded(chw: np.ndarray, divisor: int) -> np.ndarray:
    """``chw`` padded right and bottom with 0 to sides that are multiples of ``divisor`` (itself where they are)."""
    _, h, w = chw.shape
    return np.pad(chw, ((0, 0), (0, ceil_to(h, divisor) - h), (0, ceil_to(w, divisor) - w)))


# create_model lives in .create (it builds a Predictor); its old home here resolves it on first use
__getattr__, __dir__ = lazy_exports(__name__, globals(), {"create_model": "segzoo.inference.create"})
