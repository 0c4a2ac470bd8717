"""One ONNX conversion per network: the exports-cache entry keyed by the weights' content, whichever door they use.

The same trained weights reach the ONNX engines three ways: as a built layer
(``segzoo evaluate``), as a ``.pdparams`` file or the folder holding it
(``segzoo predict --model-dir``), and as the inference directory that
``segzoo train`` exports beside them. All three are one network
(:mod:`segzoo.inference.netid`: model name, the config that shapes the graph,
the weights), so :func:`network_onnx` keeps one conversion for it in the
exports cache, ``<model>-<key>.onnx``: the network's class scores. Labels
(the ``argmax`` output op) are that graph with an ``ArgMax`` appended,
``<model>-<key>.onnx.argmax``, written in milliseconds from it (or, when the
first door was an ``argmax`` export, the conversion of that program, and the
scores graph its own with the ``ArgMax`` taken off: :mod:`segzoo.inference.onnx_ops`).

**Shipped conversions.** A package may ship the conversion of a network it
ships the weights of (the built-in demo: ``segzoo/assets/demo/demo.onnx``),
with a ``<file>.json`` beside it naming the network (``{"network": ID,
"outputs": "scores"}``); :func:`network_onnx` runs it in place instead of
converting. ``scripts/make_demo_model.py`` writes the demo's, and a test checks
it against the weights.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Callable, Optional

from ..errors import ExportError
from ..fileio import atomic_write, write_json
from .convert import convert_to_onnx
from .export import export_model
from .export_cache import OPSET, _key, _lock, _safe, _touch, _versions, exports_cache, prune_cache, work_dir
from .netid import layer_digest, network_id
from .onnx_ops import add_argmax, float16_storage, strip_argmax

log = logging.getLogger("segzoo")

#: where shipped conversions are looked for: ``segzoo/assets/*/*.onnx.json``
SHIPPED_ROOT = Path(__file__).resolve().parent.parent / "assets"
#: the suffix of the labels graph beside a network's scores graph
ARGMAX_SUFFIX = ".argmax"


def shipped_onnx(network: str) -> Optional[Path]:
    """The scores graph of ``network`` shipped in the package (see the module docstring), or ``None``."""
    for meta in sorted(SHIPPED_ROOT.glob("*/*.onnx.json")):
        try:
            data = json.loads(meta.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        onnx_file = meta.with_suffix("")
        if isinstance(data, dict) and data.get("network") == network and data.get("outputs") == "scores" \
                and onnx_file.is_file():
            return onnx_file
    return None


def network_target(model_name: str, network: str) -> Path:
    """The cache path of ``network``'s scores graph (its labels graph adds :data:`ARGMAX_SUFFIX`)."""
    return exports_cache() / f"{_safe(model_name)}-{_key(kind='onnx-network', network=network, opset=OPSET)}.onnx"


def network_onnx(model_name: str, network: str, want: str, make: Callable[[Path], None], makes: str = "scores") -> Path:
    """The ``.onnx`` file giving ``want`` (``"scores"`` or ``"labels"``) of ``network``, converted at most once.

    Looked for in the cache, then among the shipped conversions; else
    ``make(path)`` converts the network into ``path``: the scores graph's
    path when ``makes`` is ``"scores"``, the labels graph's when
    ``"labels"``. The other output is derived from it without converting
    (:mod:`segzoo.inference.onnx_ops`). A conversion that failed is
    remembered (``.failed`` beside the target): the :class:`ExportError`
    is raised again without trying.
    """
    scores = network_target(model_name, network)
    labels = scores.with_name(scores.name + ARGMAX_SUFFIX)
    failed = scores.with_name(scores.name + ".failed")
    path = scores if want == "scores" else labels
    with _lock(scores):
        shipped = None if scores.is_file() else shipped_onnx(network)
        if want == "scores" and shipped is not None:
            return shipped
        if not path.is_file():
            _derive(scores, labels, shipped)
        if not path.is_file():
            if failed.is_file():
                _touch(failed)
                raise ExportError(failed.read_text(encoding="utf-8").strip())
            if (scores.is_file() or labels.is_file()) and makes != want:  # the other output's graph did not fit
                raise ExportError(f"{path.name} cannot be made from the conversion of {model_name} in the cache")
            log.info("%s: converting to ONNX once for the fast engine (cached in %s) ...", model_name, scores.parent)
            try:
                make(scores if makes == "scores" else labels)
            except ExportError as exc:
                with atomic_write(failed) as fh:
                    fh.write(str(exc))
                raise
            _derive(scores, labels, None)
        if not path.is_file():
            raise ExportError(f"the ONNX conversion of {model_name} gives no {want} graph ({path.name})")
        for made in (scores, labels):
            if made.is_file():
                _touch(made)
    prune_cache()
    return path


def _derive(scores: Path, labels: Path, shipped: Optional[Path]) -> None:
    """Write whichever of ``scores`` / ``labels`` is missing from the other (or from ``shipped`` scores).

    A graph the edit does not fit is left alone (logged): the caller converts instead.
    """
    try:
        if not labels.is_file() and (scores.is_file() or shipped is not None):
            add_argmax(scores if scores.is_file() else shipped, labels)
        elif labels.is_file() and not scores.is_file() and shipped is None:
            strip_argmax(labels, scores)
    except Exception as exc:  # noqa: BLE001 - an onnx model the edit does not fit: convert instead
        text = str(exc).strip().splitlines()
        log.info("could not derive %s from %s: %s", labels.name, scores.name, text[0] if text else type(exc).__name__)


def write_shipped_onnx(model_name: str, config: Any, layer: Any, out_file: Path) -> Path:
    """Convert ``layer``'s network and write it to ship: ``out_file`` and ``out_file.json`` naming the network.

    The graph gives the class scores with a dynamic H×W; float32 weights that
    float16 holds exactly are stored as float16 (:func:`~segzoo.inference.onnx_ops.float16_storage`).
    """
    out_file = Path(out_file)
    with work_dir("ship") as tmp:
        export = export_model(model_name, tmp / "export", config=config, layer=layer, output_op="none")
        convert_to_onnx(export / "inference.json", export / "inference.pdiparams", tmp / "scores.onnx")
        float16_storage(tmp / "scores.onnx", out_file)
    write_json(out_file.with_name(out_file.name + ".json"), {
        "network": network_id(model_name, config, layer_digest(layer)),
        "outputs": "scores",
        "model_name": model_name,
        "opset": OPSET,
        "made_with": _versions(),
    })
    return out_file
