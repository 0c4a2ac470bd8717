"""``export_model``: a model as a PaddleX inference directory.

The directory holds ``inference.json`` + ``inference.pdiparams`` (Paddle 3's
PIR program, from ``paddle.jit.to_static`` + ``paddle.jit.save``) and
``inference.yml`` in PaddleSeg's / PaddleX's layout (see
:mod:`segzoo.inference.modeldir`), so it loads in PaddleX, in Paddle
Inference and in ``segzoo.create_model(name, model_dir=...)``.

The exported graph is the network, then the model's ``postprocess`` hook
(class scores), then, with ``output_op="argmax"`` (PaddleX's convention),
``argmax`` over the classes as ``int32`` ``N×H×W``; ``"softmax"`` gives
probabilities and ``"none"`` the scores themselves (``N×C×H×W`` float32,
which sliding-window inference needs).

The input is ``[None, 3, None, None]`` unless the card says the model has no
dynamic shape (``export.dynamic_shape`` False), in which case it is the card's
``export.fixed_input_shape``; a card with ``export.static`` False cannot be
exported (:class:`~segzoo.errors.ExportError` with the card's note).

The directory is written beside its final place and renamed into it, so it
never exists half-written.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Collection, Optional, Sequence

from .._version import __version__
from ..errors import ConfigError, ExportError
from ..fileio import atomic_write, check_output_dir, replace_dir
from ..models import build_with_weights
from ..noise import quiet_export
from ..registry import get_registry
from .netid import export_record

OUTPUT_OPS = ("argmax", "softmax", "none")


def _wrapper(model_name: str, config: Any, layer: Any, output_op: str):
    """The Layer that is traced: network → postprocess hook → output op."""
    import paddle

    registry = get_registry()

    @paddle.jit.not_to_static
    def scores(outputs):
        # run as plain Python while tracing: the hook (and any hook wrappers) record paddle ops
        return registry.postprocess(model_name, config, outputs)

    class ExportWrapper(paddle.nn.Layer):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            out = scores(self.net(x))
            if output_op == "argmax":
                return paddle.argmax(out, axis=1, dtype="int32")
            if output_op == "softmax":
                return paddle.nn.functional.softmax(out, axis=1)
            return out

    return ExportWrapper(layer)


def _input_shape(card, input_shape: Optional[Sequence]) -> list:
    if input_shape is not None:
        shape = [None if (s is None or int(s) <= 0) else int(s) for s in input_shape]
        if len(shape) != 4 or shape[1] not in (None, 3):
            raise ConfigError(f"input_shape {list(input_shape)!r} must be [N, 3, H, W] (-1 or None for any)")
        shape[1] = 3
        return shape
    if card.export.dynamic_shape:
        return [None, 3, None, None]
    if card.export.fixed_input_shape is None:
        raise ExportError(
            f"{card.name}: its card says it has no dynamic input shape but gives no "
            "export.fixed_input_shape; pass input_shape=[1, 3, H, W]"
        )
    return list(card.export.fixed_input_shape)


def deploy_yml(model_name: str, config: Any, input_shape: list, output_op: str, record: Optional[dict] = None) -> dict:
    """The ``inference.yml`` content (PaddleSeg's ``export.py`` keys, plus ``segzoo:``).

    ``record`` (:func:`segzoo.inference.netid.export_record`) names the network
    the program was exported from, so its ONNX conversion is shared with the
    same weights given as a ``.pdparams`` file.
    """
    return {
        "Global": {"model_name": model_name},
        "Deploy": {
            "model": "inference.json",
            "params": "inference.pdiparams",
            "transforms": [
                {"type": "Normalize", "mean": [float(m) for m in config.mean], "std": [float(s) for s in config.std]}
            ],
            "input_shape": input_shape,
            "output_op": output_op,
            "output_dtype": "int32" if output_op == "argmax" else "float32",
        },
        "segzoo": {"num_classes": int(config.num_classes), "version": __version__, **(record or {})},
    }


def export_model(
    model_name: str,
    out_dir,
    config: Any = None,
    weights=None,
    layer: Any = None,
    input_shape: Optional[Sequence] = None,
    output_op: str = "argmax",
    explicit: Optional[Collection[str]] = None,
) -> Path:
    """Export ``model_name`` to ``out_dir`` (PaddleX layout); return ``out_dir``.

    Args:
        model_name: a registered model.
        out_dir: the directory to write; it must not exist, be empty, or hold
            a previous export (``inference.yml``), which is replaced.
        config: the model's config object or a dict of its fields
            (``num_classes`` ...); defaults to the card's.
        weights: a ``.pdparams`` file to load; it must fit the network. Fields
            ``config`` leaves out come from the run's config saved beside it
            (``config.yaml`` of a ``segzoo train`` checkpoint), the class count
            else from its shapes.
        layer: an already built network to export as it is (then ``weights``
            must be ``None``); its train/eval mode is restored afterwards.
        input_shape: ``[N, 3, H, W]`` (-1 / None for any); default: dynamic,
            or the card's fixed shape.
        output_op: ``"argmax"`` (int32 labels, PaddleX's default),
            ``"softmax"`` or ``"none"`` (scores).
        explicit: with ``weights``, the fields of ``config`` that win over the
            weights' saved config (default: all of ``config``'s); the others
            yield to it.
    """
    import paddle
    import yaml

    registry = get_registry()
    card = registry.card(model_name)
    if not card.export.static:
        raise ExportError(f"{model_name} cannot be exported to a static graph: {card.export.note or 'its card says so'}")
    if output_op not in OUTPUT_OPS:
        raise ConfigError(f"output_op {output_op!r} is not one of {', '.join(OUTPUT_OPS)}")
    if layer is not None and weights is not None:
        raise ConfigError("give either layer= (a built network) or weights=, not both")
    cfg = registry.config(model_name, config)
    shape = _input_shape(card, input_shape)
    out_dir = Path(out_dir).expanduser()
    _check_target(out_dir)

    if layer is None:
        if weights is not None:
            if explicit is not None:
                given: Any = set(explicit)
            else:
                given = config is not None and (not isinstance(config, dict) or "num_classes" in config)
            layer, cfg = build_with_weights(model_name, cfg, Path(weights).expanduser(), given)
        else:
            layer = registry.build_model(model_name, cfg)
    was_training = bool(getattr(layer, "training", False))
    layer.eval()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        wrapper = _wrapper(model_name, cfg, layer, output_op)
        wrapper.eval()
        spec = [paddle.static.InputSpec(shape=shape, dtype="float32", name="x")]
        try:
            with quiet_export():  # without Paddle's "PIR not support input out tensor" line
                static = paddle.jit.to_static(wrapper, input_spec=spec, full_graph=True)
                paddle.jit.save(static, str(tmp / "inference"))
        except Exception as exc:
            raise ExportError(
                f"{model_name} failed to export with input {shape}: {paddle_error_summary(exc)}. If the "
                "network computes sizes in Python, compute them with tensor ops (paddle.shape(x)) or give "
                "its card export.dynamic_shape=False and a fixed_input_shape (docs/plugins.md, 'Export and ONNX')"
            ) from exc
        if not (tmp / "inference.json").is_file():
            raise ExportError(
                f"paddle.jit.save wrote {sorted(p.name for p in tmp.iterdir())} instead of inference.json; "
                "segzoo needs Paddle 3's PIR format (paddlepaddle>=3)"
            )
        record = export_record(model_name, cfg, layer, tmp / "inference.json", tmp / "inference.pdiparams")
        with atomic_write(tmp / "inference.yml") as fh:
            yaml.safe_dump(deploy_yml(model_name, cfg, shape, output_op, record), fh, sort_keys=False,
                           default_flow_style=None)
        for path in tmp.iterdir():  # the files are complete on disk before the directory appears
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
        replace_dir(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        if was_training:
            layer.train()
    return out_dir


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def paddle_error_summary(exc: Exception) -> str:
    """One line out of Paddle's many-line trace errors: the error itself and the user's line that raised it.

    ``paddle.jit.to_static`` and Paddle Inference wrap the real error in an
    "In transformed code:" / "In user code:" trace that marks the offending
    source line with ``<--- HERE``; this keeps that line, its file and the
    final ``XxxError: message``.
    """
    import re

    lines = [line.rstrip() for line in str(exc).splitlines()]
    where = ""
    for i, line in enumerate(lines):
        if "<--- HERE" in line:
            code = line.split("<--- HERE")[0].strip(" ~^")
            if not code.strip("~^ ") and i > 0:  # the marker sits under the code, on a line of its own
                code = lines[i - 1].strip()
            files = [m for m in (re.search(r'File "([^"]+)", line (\d+)', x) for x in lines[:i]) if m]
            where = f" (at {files[-1].group(1)}:{files[-1].group(2)}: {code})" if files else f" (at: {code})"
            break
    errors = [m.group(0).strip() for m in (re.match(r"\s*(\(\w+\)|\w+(Error|Exception)):? .+", x) for x in lines) if m]
    message = errors[-1] if errors else _first_line(exc)
    if not message.startswith(type(exc).__name__) and not errors:
        message = f"{type(exc).__name__}: {message}"
    return message + where


def _check_target(out_dir: Path) -> None:
    check_output_dir(out_dir.parent, "export target folder")
    if out_dir.exists():
        if not out_dir.is_dir():
            raise ExportError(f"export target {out_dir} is a file; give a directory path")
        if any(out_dir.iterdir()) and not (out_dir / "inference.yml").is_file():
            raise ExportError(
                f"export target {out_dir} is not empty and holds no earlier export (inference.yml); "
                "give a new or empty directory"
            )


