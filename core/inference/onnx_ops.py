"""Edits of converted ONNX graphs that need no conversion: an argmax put on or taken off, weights stored in float16.

One paddle2onnx conversion of a network serves both outputs the ONNX engines
run: its class scores (``N×C×H×W`` float32) and its labels (``N×H×W`` int32,
PaddleX's ``argmax`` output op). :func:`add_argmax` appends ``ArgMax`` +
``Cast`` to a scores graph; :func:`strip_argmax` takes them off a labels graph
when that is exactly how it ends (as segzoo's exports with ``output_op:
argmax`` do), so the scores are the network's own. Neither changes a number.

:func:`float16_storage` stores the float32 initializers that float16 holds
exactly as float16 with a ``Cast`` back, which halves the ONNX file of a model
whose weights are float16 (the built-in demo's) and changes no value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Union

from ..fileio import atomic_write

PathLike = Union[str, Path]


def _load(path: PathLike):
    import onnx

    return onnx.load(str(path))


def _save(model, path: PathLike) -> Path:
    with atomic_write(path, "wb") as fh:
        fh.write(model.SerializeToString())
    return Path(path)


def add_argmax(scores: PathLike, labels: PathLike) -> Path:
    """Write ``labels``: the graph of ``scores`` with ``ArgMax`` over the classes and a ``Cast`` to int32 after it."""
    import onnx
    from onnx import TensorProto, helper

    model = _load(scores)
    graph = model.graph
    (out,) = graph.output
    shape = [d.dim_param or (d.dim_value or None) for d in out.type.tensor_type.shape.dim]
    index, label = f"{out.name}.argmax", f"{out.name}.labels"
    graph.node.extend([
        helper.make_node("ArgMax", [out.name], [index], axis=1, keepdims=0, name=index),
        helper.make_node("Cast", [index], [label], to=TensorProto.INT32, name=label),
    ])
    dims = [shape[0], *shape[2:]] if len(shape) == 4 else None
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(label, TensorProto.INT32, dims))
    onnx.checker.check_model(model)
    return _save(model, labels)


def strip_argmax(labels: PathLike, scores: PathLike) -> bool:
    """Write ``scores``: the graph of ``labels`` without its final ``ArgMax`` over the classes (and ``Cast``).

    Returns False, writing nothing, when the graph does not end that way.
    """
    import onnx
    from onnx import TensorProto, helper

    model = _load(labels)
    graph = model.graph
    if len(graph.output) != 1:
        return False
    producers = {name: node for node in graph.node for name in node.output}
    consumers: dict = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    tail = []
    node = producers.get(graph.output[0].name)
    while node is not None and node.op_type in ("Cast", "Identity"):
        tail.append(node)
        node = producers.get(node.input[0])
    if node is None or node.op_type != "ArgMax":
        return False
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if attrs.get("axis", 0) != 1 or attrs.get("keepdims", 1) != 0 or attrs.get("select_last_index", 0) != 0:
        return False
    tail.append(node)
    source = node.input[0]
    removed = {id(n) for n in tail}
    if any(id(c) not in removed for n in tail for name in n.output for c in consumers.get(name, [])):
        return False  # the argmax feeds something else too
    kept = [n for n in graph.node if id(n) not in removed]
    del graph.node[:]
    graph.node.extend(kept)
    dims = [graph.input[0].type.tensor_type.shape.dim[0].dim_param or None, None, None, None]
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(source, TensorProto.FLOAT, dims))
    onnx.checker.check_model(model)
    _save(model, scores)
    return True


def float16_storage(src: PathLike, dst: PathLike) -> Path:
    """Write ``dst``: ``src`` with each float32 weight (initializer or ``Constant``) that float16 holds exactly
    stored as float16, followed by a ``Cast`` back to float32."""
    import onnx
    from onnx import TensorProto, helper

    model = _load(src)
    graph = model.graph
    nodes = []
    for init in graph.initializer:
        half = _exact_half(init)
        if half is not None:
            name = init.name
            init.CopyFrom(half)
            init.name = f"{name}.fp16"
            nodes.append(helper.make_node("Cast", [init.name], [name], to=TensorProto.FLOAT, name=f"{name}.cast"))
    for node in graph.node:
        nodes.append(node)
        value = next((a for a in node.attribute if a.name == "value"), None) if node.op_type == "Constant" else None
        half = _exact_half(value.t) if value is not None else None
        if half is not None:
            name = node.output[0]
            value.t.CopyFrom(half)
            node.output[0] = f"{name}.fp16"
            nodes.append(helper.make_node("Cast", [node.output[0]], [name], to=TensorProto.FLOAT, name=f"{name}.cast"))
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    return _save(model, dst)


def _exact_half(tensor):
    """``tensor`` as a float16 TensorProto when it is float32, not tiny, and float16 holds every value exactly."""
    import numpy as np
    from onnx import TensorProto, numpy_helper

    if tensor.data_type != TensorProto.FLOAT or int(np.prod(tensor.dims)) < 16:
        return None
    values = numpy_helper.to_array(tensor)
    half = values.astype(np.float16)
    if not np.array_equal(half.astype(np.float32), values, equal_nan=True):
        return None
    return numpy_helper.from_array(half, tensor.name)
