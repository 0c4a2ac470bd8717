"""A network's identity: model name, the config fields that shape its graph and a digest of its weights.

The exports cache keys one ONNX conversion by it (:mod:`segzoo.inference.netcache`),
so the same weights are converted once whichever way they arrive: a built
layer (``segzoo evaluate``), a ``.pdparams`` file or the folder holding it
(``segzoo predict --model-dir``), or the inference directory ``segzoo train``
and ``segzoo export`` write, whose ``inference.yml`` records the identity of
the network it was exported from (:func:`export_record`) together with a
digest of its two files, so a program edited afterwards is not mistaken for
it (:func:`recorded_network`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Optional

import numpy as np

#: fields of every model's config that do not shape the exported graph (training and preprocessing only)
NOT_IN_GRAPH = frozenset({
    "pretrained", "ignore_index", "mean", "std", "crop_size", "loss_weights", "loss", "optimizer",
    "learning_rate", "weight_decay", "momentum", "warmup_iters", "lr_power", "grad_clip",
})


def layer_digest(layer: Any) -> str:
    """SHA-256 of a layer's state (names, dtypes, shapes and values), in name order."""
    h = hashlib.sha256()
    for name, tensor in sorted(layer.state_dict().items()):
        arr = np.ascontiguousarray(tensor.numpy())
        h.update(f"{name}|{arr.dtype}|{arr.shape}|".encode())
        h.update(memoryview(arr).cast("B"))
    return h.hexdigest()


def file_digest(*paths: Path) -> str:
    """SHA-256 of the files' contents, in order."""
    h = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                h.update(block)
        h.update(b"|")
    return h.hexdigest()


def graph_config(config: Any) -> dict:
    """The fields of ``config`` that shape the network's graph (all but :data:`NOT_IN_GRAPH`), JSON-ready."""
    if hasattr(config, "model_dump"):
        data = config.model_dump(mode="json")
    else:
        data = json.loads(json.dumps(dict(config), default=str))
    return {k: v for k, v in data.items() if k not in NOT_IN_GRAPH}


def network_id(model_name: str, config: Any, weights_digest: str) -> str:
    """The identity of a network: a hash of its model name, :func:`graph_config` and :func:`layer_digest`."""
    text = json.dumps({"model": model_name, "config": graph_config(config), "weights": weights_digest},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def export_record(model_name: str, config: Any, layer: Any, model_file: Path, params_file: Path) -> dict:
    """What ``inference.yml``'s ``segzoo:`` section records of the network an export was made from."""
    return {"network": network_id(model_name, config, layer_digest(layer)),
            "files_sha256": file_digest(model_file, params_file)}


def recorded_network(deploy) -> Optional[str]:
    """The network identity ``deploy``'s ``inference.yml`` records, when its program is still the one exported.

    ``None`` for exports made elsewhere (PaddleX's), older segzoo exports,
    fixed-shape ones, output ops other than ``argmax`` and ``none``, and
    directories whose ``inference.json`` / ``inference.pdiparams`` no longer
    match the digest recorded beside the identity.
    """
    extra = deploy.raw.get("segzoo") if isinstance(deploy.raw, dict) else None
    if not isinstance(extra, dict) or not isinstance(extra.get("network"), str):
        return None
    if deploy.output_op not in ("argmax", "none"):
        return None
    if deploy.input_shape is not None and any(s is not None for i, s in enumerate(deploy.input_shape) if i != 1):
        return None
    if extra.get("files_sha256") != file_digest(deploy.model_file, deploy.params_file):
        return None
    return extra["network"]
