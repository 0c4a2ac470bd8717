"""Every compatibility fix the plugins need for paddleseg 2.8.0 on Paddle 3, in one place.

paddleseg 2.8.0 was written for Paddle 2.x. Paddle 3 no longer promotes
``float32 op int64`` silently ("Type promotion only support calculations
between floating-point numbers ..."), and two of the losses the built-in
plugins use mix the two:

* ``CrossEntropyLoss._post_process_loss`` builds ``coef = ones_like(label)``
  (int64) and multiplies it with a float mask. Fixed by
  :func:`_ce_post_process_loss`.
* ``OhemCrossEntropyLoss.forward`` adds an int64 ``1 - valid_mask`` to a
  float probability tensor. Fixed by :func:`_ohem_forward`.

(paddleseg's ``ohem_edge_attention_loss`` and ``point_cross_entropy_loss``
have the same mix; no segzoo model uses them, so they are left alone.)

Paddle 3's ``paddle.sum`` of a whole tensor is 0-D, and ``paddle.concat``
refuses 0-D tensors, so ``paddleseg.utils.metrics.calculate_area`` (what
paddleseg's ``evaluate`` counts every image with) fails ("The axis is expected
to be in range of [0, 0)"). Fixed by :func:`_calculate_area`, which stacks the
per-class counts instead; segzoo's evaluation is checked against paddleseg's
``evaluate`` through it.

One fix is for speed, not correctness: on the CPU, the backward of
``paddle.max(x, axis=1)`` is 13 to 200 ms for the small feature maps of
PP-LiteSeg's attention fusion (UAFM), 50 times the cost of the same max taken
with ``paddle.topk``, and it was 43 % of a PP-LiteSeg-T training step. The
channel max of ``tensor_fusion_helper`` is taken with ``topk`` whenever a
gradient will flow (:func:`_avg_max_reduce_channel_helper`); the values are
the same, and inference and export keep ``paddle.max``.

Another is for start-up time: ``paddleseg.utils.metrics`` imports scikit-learn
at module level (1.4 to 1.6 s on 2 cores, nine tenths of importing paddleseg) for
its two AUC helpers, and every ``import paddleseg`` runs it. :func:`import_paddleseg`
imports that one module lazily (:class:`importlib.util.LazyLoader`, found by
a finder present only while paddleseg is imported): it runs, scikit-learn
included, on first use of ``paddleseg.utils.metrics``, with the
``calculate_area`` fix applied then. Predicting and exporting never use it.

Importing paddleseg also writes ``~/.paddleseg`` and matplotlib/visualdl
caches under ``~`` unless ``SEG_HOME``, ``MPLCONFIGDIR`` and
``XDG_CACHE_HOME`` point elsewhere; :func:`import_paddleseg` points the
unset ones at segzoo's cache directory.

Plugins call :func:`import_paddleseg` (public as ``segzoo_plugins.import_paddleseg``)
instead of ``import paddleseg``; it is idempotent and cheap after the first
call. Importing this module imports neither paddle nor paddleseg. Every fix has
a test in ``tests/core/test_compat.py`` that runs the original code and shows it
fails (through ``segzoo.compat``, this module's old home, which forwards to it).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import types

from segzoo import DependencyError, cache_dir, missing_module_error

PADDLESEG_VERSION = "2.8.0"

_INSTALL = "pip install --no-deps paddleseg==2.8.0"
_INSTALL_HINT = (
    f"install it with `{_INSTALL}` (segzoo lists the packages "
    "paddleseg really needs; --no-deps keeps its old opencv-python pin out)"
)

#: original callables replaced by :func:`apply_fixes`, by qualified name (tests use them)
ORIGINALS: dict = {}

_applied = False


def _quiet_home_writes() -> None:
    base = cache_dir()
    os.environ.setdefault("SEG_HOME", str(base / "paddleseg"))
    os.environ.setdefault("MPLCONFIGDIR", str(base / "matplotlib"))


def import_paddleseg():
    """Import paddleseg 2.8.0 with segzoo's fixes applied; return the module.

    Raises :class:`DependencyError` when paddleseg is missing or is another
    version, or when a module paddleseg imports is missing; the message
    names the module and the one ``pip install`` that fixes it.
    """
    _quiet_home_writes()
    deferring = "paddleseg" not in sys.modules
    if deferring:
        sys.meta_path.insert(0, _DEFER_METRICS)
    try:
        import paddleseg
    except ImportError as exc:
        raise missing_module_error(exc, "paddleseg", _INSTALL) from exc
    finally:
        if deferring:
            sys.meta_path.remove(_DEFER_METRICS)
    version = getattr(paddleseg, "__version__", "unknown")
    if version != PADDLESEG_VERSION:
        raise DependencyError(
            f"segzoo needs paddleseg {PADDLESEG_VERSION}, found {version}; {_INSTALL_HINT}"
        )
    apply_fixes()
    # paddleseg prints "[INFO] No pretrained model to load ..." for every backbone: keep warnings only
    from paddleseg.utils import logger

    logger.log_level = min(logger.log_level, 1)
    return paddleseg


def apply_fixes() -> None:
    """Patch paddleseg's classes in place (idempotent)."""
    global _applied
    if _applied:
        return
    from paddleseg.models.layers import tensor_fusion_helper
    from paddleseg.models.losses import CrossEntropyLoss, OhemCrossEntropyLoss

    ORIGINALS["CrossEntropyLoss._post_process_loss"] = CrossEntropyLoss._post_process_loss
    ORIGINALS["OhemCrossEntropyLoss.forward"] = OhemCrossEntropyLoss.forward
    ORIGINALS["tensor_fusion_helper.avg_max_reduce_channel_helper"] = tensor_fusion_helper.avg_max_reduce_channel_helper
    CrossEntropyLoss._post_process_loss = _ce_post_process_loss
    OhemCrossEntropyLoss.forward = _ohem_forward
    # avg_max_reduce_channel() looks the helper up in the module at call time
    tensor_fusion_helper.avg_max_reduce_channel_helper = _avg_max_reduce_channel_helper
    metrics = sys.modules.get(_METRICS)
    if metrics is None or type(metrics) is types.ModuleType:  # loaded already (type() does not load a lazy one)
        from paddleseg.utils import metrics

        _fix_metrics(metrics)
    _applied = True


_METRICS = "paddleseg.utils.metrics"


def _fix_metrics(metrics) -> None:
    """Put :func:`_calculate_area` in ``paddleseg.utils.metrics`` (paddleseg's evaluate looks it up at call time)."""
    if metrics.calculate_area is not _calculate_area:
        ORIGINALS["metrics.calculate_area"] = metrics.calculate_area
        metrics.calculate_area = _calculate_area


class _MetricsLoader(importlib.machinery.SourceFileLoader):
    """paddleseg's own loader for ``paddleseg.utils.metrics``, which applies the fix once the module has run."""

    def exec_module(self, module) -> None:
        try:
            super().exec_module(module)
        except ImportError as exc:  # scikit-learn missing: said on first use, with its install command
            raise missing_module_error(exc, _METRICS, _INSTALL) from exc
        _fix_metrics(module)


class _DeferMetrics(importlib.abc.MetaPathFinder):
    """Finds ``paddleseg.utils.metrics`` as paddleseg's path finder does, with a lazy loader (see the module doc)."""

    def find_spec(self, fullname, path, target=None):
        if fullname != _METRICS:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or type(spec.loader) is not importlib.machinery.SourceFileLoader:
            return spec  # an unusual install (bytecode only, a zip ...): imported as it is, fixed in apply_fixes
        spec.loader = importlib.util.LazyLoader(_MetricsLoader(fullname, spec.origin))
        return spec


_DEFER_METRICS = _DeferMetrics()


def _ce_post_process_loss(self, logit, label, semantic_weights, loss):
    """``CrossEntropyLoss._post_process_loss`` with every factor in float32.

    Same result as paddleseg's on Paddle 2: the per-pixel loss is masked
    (ignored pixels, optional per-pixel weights), then averaged over the
    class-weighted number of valid pixels, optionally over the top-k% pixels.
    """
    import paddle
    import paddle.nn.functional as F

    label.stop_gradient = True
    if self.avg_non_ignore:
        mask = (label != self.ignore_index).astype("float32")
    else:
        mask = paddle.ones(label.shape, dtype="float32")
    mask.stop_gradient = True
    if loss.ndim > mask.ndim:
        loss = loss.squeeze(-1)
    loss = loss * mask
    if semantic_weights is not None:
        loss = loss * semantic_weights

    if self.weight is None:
        coef = paddle.ones(label.shape, dtype="float32")
    else:
        valid_label = label * (label != self.ignore_index).astype(label.dtype)
        coef = (F.one_hot(valid_label, logit.shape[-1]) * self.weight).sum(axis=-1)
    coef.stop_gradient = True

    if self.top_k_percent_pixels == 1.0:
        return loss.mean() / ((mask * coef).mean() + self.EPS)
    flat = loss.reshape([-1])
    k = int(self.top_k_percent_pixels * flat.numel())
    top, index = paddle.topk(flat, k)
    top_coef = paddle.gather(coef.reshape([-1]), index)
    top_coef.stop_gradient = True
    return top.mean() / (top_coef.mean() + self.EPS)


def _ohem_forward(self, logit, label):
    """``OhemCrossEntropyLoss.forward`` with the masks in float32.

    Online hard example mining: pixels whose probability of the true class is
    above ``thresh`` (or above the ``min_kept``-th lowest) are dropped from
    the average.
    """
    import paddle.nn.functional as F

    if label.ndim == logit.ndim:
        label = label.squeeze(1)
    n, c, h, w = logit.shape
    flat_label = label.reshape([-1]).astype("int64")
    valid = (flat_label != self.ignore_index).astype("float32")
    num_valid = int(valid.sum())
    safe_label = flat_label * valid.astype("int64")

    if 0 < self.min_kept < num_valid:
        prob = F.softmax(logit, axis=1).transpose([1, 0, 2, 3]).reshape([c, -1])
        # ignored pixels get a probability above 1 so that they are never "hard"
        prob = prob + (1.0 - valid)
        true_prob = (prob * F.one_hot(safe_label, c).transpose([1, 0])).sum(axis=0)
        threshold = self.thresh
        order = true_prob.argsort()
        kth = int(order[min(len(order), self.min_kept) - 1])
        if float(true_prob[kth]) > self.thresh:
            threshold = float(true_prob[kth])
        valid = valid * (true_prob < threshold).astype("float32")

    valid_int = valid.astype("int64")
    target = safe_label * valid_int + (1 - valid_int) * self.ignore_index
    target = target.reshape([n, 1, h, w])
    valid = valid.reshape([n, 1, h, w])
    target.stop_gradient = True
    valid.stop_gradient = True
    loss = F.softmax_with_cross_entropy(logit, target, ignore_index=self.ignore_index, axis=1)
    return (loss * valid).mean() / (valid.mean() + self.EPS)


def _avg_max_reduce_channel_helper(x, use_concat=True):
    """``tensor_fusion_helper.avg_max_reduce_channel_helper``: mean and max over the channels.

    Same values; the max is ``paddle.topk(x, 1, axis=1)`` when ``x`` will
    receive a gradient in dygraph (its backward is a scatter, while
    ``paddle.max``'s is 50 times slower on the CPU), and ``paddle.max``
    otherwise, so inference and exported programs are unchanged.
    """
    import paddle

    mean_value = paddle.mean(x, axis=1, keepdim=True)
    if x.stop_gradient or not paddle.in_dynamic_mode():  # no gradient, or tracing an export
        max_value = paddle.max(x, axis=1, keepdim=True)
    else:
        max_value = paddle.topk(x, 1, axis=1)[0]
    if use_concat:
        return paddle.concat([mean_value, max_value], axis=1)
    return [mean_value, max_value]


def _calculate_area(pred, label, num_classes, ignore_index=255):
    """``paddleseg.utils.metrics.calculate_area`` on Paddle 3: the per-class counts stacked, not concatenated.

    Returns the intersection, prediction and label areas of each class (``int64``,
    shape ``[num_classes]``); pixels labelled ``ignore_index`` count in no
    prediction area, as in paddleseg.
    """
    import paddle

    if len(pred.shape) == 4:
        pred = paddle.squeeze(pred, axis=1)
    if len(label.shape) == 4:
        label = paddle.squeeze(label, axis=1)
    if not pred.shape == label.shape:
        raise ValueError(f"Shape of `pred` and `label should be equal, but there are {pred.shape} and {label.shape}.")
    mask = label != ignore_index
    intersect, predicted, labelled = [], [], []
    for i in range(num_classes):
        pred_i = paddle.logical_and(pred == i, mask)
        label_i = label == i
        predicted.append(paddle.sum(paddle.cast(pred_i, "int64")))
        labelled.append(paddle.sum(paddle.cast(label_i, "int64")))
        intersect.append(paddle.sum(paddle.cast(paddle.logical_and(pred_i, label_i), "int64")))
    return paddle.stack(intersect), paddle.stack(predicted), paddle.stack(labelled)
