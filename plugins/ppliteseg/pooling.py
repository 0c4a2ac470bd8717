"""Adaptive average pooling written without fixed shapes, so PP-LiteSeg exports and converts once for every H×W.

paddleseg's PP-LiteSeg context module pools the 1/32 feature map to 1×1, 2×2
and 4×4 bins with ``nn.AdaptiveAvgPool2D``. Exported with a dynamic H×W,
paddle2onnx turns that into a plain pooling whose kernel is fixed at export
time, which is right only for one input size: segzoo had to export and
convert PP-LiteSeg once per padded input size.

:class:`ShapeFreeAdaptiveAvgPool2D` computes the same thing as two matrix
products, ``P_h · x · P_wᵀ``, whose pooling matrices are built at run time
from the input's shape with the adaptive-pooling rule (bin ``i`` of ``b``
over ``n`` cells covers ``[floor(i·n/b), ceil((i+1)·n/b))``, each cell
weighted ``1/len``). Every op in it (``arange``, comparisons, ``matmul``)
keeps H and W symbolic in the exported program and in ONNX. It has no
parameters, so state dicts are unchanged; values equal
``nn.AdaptiveAvgPool2D``'s to float rounding (about 1e-7 relative).

:func:`make_program_pooling_shape_free` does the same to a program exported
elsewhere (PaddleX's official PP-LiteSeg): each adaptive average ``pool2d`` of
the PIR program is replaced, in place, by the ops of the two products. The
card names it (``export.program_rewrite``), so the ONNX engines convert such a
program in a fraction of a second instead of rebuilding and tracing the
network with its weights.
"""

from __future__ import annotations


def _pool_matrix(paddle, n, bins: int, dtype):
    """``bins × n`` matrix whose row ``i`` averages adaptive-pooling bin ``i`` of ``n`` cells."""
    i = paddle.arange(bins, dtype="int64").unsqueeze(1)
    start = (i * n) // bins
    end = ((i + 1) * n + bins - 1) // bins
    pos = paddle.arange(n, dtype="int64").unsqueeze(0)
    inside = paddle.logical_and(pos >= start, pos < end).astype(dtype)
    return inside / inside.sum(axis=1, keepdim=True)


def _pool(paddle, x, bins_h: int, bins_w: int):
    """``P_h · x · P_wᵀ``: the adaptive average pooling of ``N×C×H×W`` ``x`` to ``bins_h×bins_w``, shape-free."""
    shape = paddle.shape(x)
    rows = _pool_matrix(paddle, shape[2], bins_h, x.dtype)
    cols = _pool_matrix(paddle, shape[3], bins_w, x.dtype)
    return paddle.matmul(paddle.matmul(rows, x), cols, transpose_y=True)


def shape_free_pool_class():
    """The layer class (built on first use, so importing this module does not import paddle)."""
    global _CLASS
    if _CLASS is None:
        import paddle

        class ShapeFreeAdaptiveAvgPool2D(paddle.nn.Layer):
            """``nn.AdaptiveAvgPool2D(bins)`` (square bins) as ``P_h · x · P_wᵀ``; see the module docstring."""

            def __init__(self, bins: int):
                super().__init__()
                self.bins = int(bins)

            def forward(self, x):
                return _pool(paddle, x, self.bins, self.bins)

            def extra_repr(self) -> str:
                return f"bins={self.bins}"

        _CLASS = ShapeFreeAdaptiveAvgPool2D
    return _CLASS


_CLASS = None


def make_pooling_shape_free(model) -> int:
    """Replace every square ``nn.AdaptiveAvgPool2D`` inside ``model`` by the shape-free layer; return how many."""
    import paddle

    cls = shape_free_pool_class()
    replaced = 0
    for _name, parent in model.named_sublayers(include_self=True):
        for key, child in list(parent._sub_layers.items()):
            if isinstance(child, paddle.nn.AdaptiveAvgPool2D):
                size = child._output_size
                bins = size if isinstance(size, int) else (size[0] if len(set(size)) == 1 else None)
                if bins is None:
                    continue
                parent._sub_layers[key] = cls(int(bins))
                replaced += 1
    return replaced


def make_program_pooling_shape_free(program) -> int:
    """Rewrite every adaptive average ``pool2d`` of a PIR ``program`` (static mode) as ``P_h · x · P_wᵀ``.

    The bins come from the op's constant output size (``full_int_array``); an
    op whose size is computed, or that pools another way, is left as it is.
    Returns how many ops were rewritten.
    """
    import paddle

    block = program.global_block()
    rewritten = 0
    for op in list(block.ops):
        if op.name() != "pd_op.pool2d":
            continue
        attrs = op.attrs()
        if not attrs.get("adaptive") or attrs.get("pooling_type") != "avg" or attrs.get("data_format") != "NCHW":
            continue
        size = op.operand_source(1).get_defining_op()
        if size is None or size.name() != "pd_op.full_int_array":
            continue
        bins = [int(v) for v in size.attrs()["value"]]
        if len(bins) == 1:
            bins = bins * 2
        if len(bins) != 2 or min(bins) < 1:
            continue
        with paddle.static.program_guard(program):
            paddle.pir.set_insertion_point(op)
            pooled = _pool(paddle, op.operand_source(0), *bins)
            paddle.pir.reset_insertion_point_to_end()
        op.result(0).replace_all_uses_with(pooled)
        block.remove_op(op)
        rewritten += 1
    return rewritten
