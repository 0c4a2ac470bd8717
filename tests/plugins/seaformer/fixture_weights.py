"""Regenerate the seeded SeaFormer-tiny fixture weights (numpy only).

The reference outputs in ``data/tiny_fanin_outputs.npz`` were produced by
PaddleSeg's SeaFormer with weights drawn by the recipe in
``data/tiny_fanin_fixture.json`` ("weights_generation"): one
``np.random.default_rng(0)``; for every state-dict entry, in state-dict order
(the order of ``data/tiny_state_dict.tsv``), draw
``n = rng.standard_normal(shape).astype(float32)`` and scale it by kind:

* BatchNorm ``_variance``: ``1 + 0.1 * |n|``
* BatchNorm ``weight``: ``1 + 0.02 * n``
* Conv2D ``weight`` (4-D): ``n * float32(sqrt(2 / fan_in))``,
  ``fan_in = prod(shape[1:])``
* ``pos_embed``: ``n``
* everything else (conv biases, BatchNorm bias and ``_mean``): ``n * 0.02``

Rebuilding them here keeps the 6.6 MB weight file out of the repository.
"""

import json
import math
from collections import Counter

import numpy as np


def read_state_dict_tsv(path):
    """``[(name, shape_tuple, dtype)]`` in file order from a state-dict TSV."""
    entries = []
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        assert header == ["name", "shape", "dtype"], header
        for line in f:
            if not line.strip():
                continue
            name, shape, dtype = line.rstrip("\n").split("\t")
            dims = tuple(int(d) for d in shape.split(",")) if shape else ()
            entries.append((name, dims, dtype))
    return entries


def weight_kind(name, shape, batch_norm_prefixes):
    """Which scaling rule of the recipe applies to this entry."""
    prefix, _, leaf = name.rpartition(".")
    if leaf == "pos_embed":
        return "pos_embed"
    if prefix in batch_norm_prefixes:
        if leaf == "_variance":
            return "bn_variance"
        if leaf == "weight":
            return "bn_weight"
        return "other"
    if leaf == "weight" and len(shape) == 4:
        return "conv_weight"
    return "other"


def regenerate_weights(tsv_path, fixture_json_path=None):
    """The fixture weights as ``{name: float32 array}`` in state-dict order.

    When ``fixture_json_path`` is given, the number of entries and the count
    of each kind are checked against the recipe's own record.
    """
    entries = read_state_dict_tsv(tsv_path)
    batch_norm_prefixes = {
        name.rpartition(".")[0] for name, _, _ in entries
        if name.endswith("._mean")
    }
    rng = np.random.default_rng(0)
    weights, kinds = {}, Counter()
    for name, shape, dtype in entries:
        assert dtype == "float32", (name, dtype)
        n = rng.standard_normal(shape).astype(np.float32)
        kind = weight_kind(name, shape, batch_norm_prefixes)
        kinds[kind] += 1
        if kind == "bn_variance":
            value = 1 + 0.1 * np.abs(n)
        elif kind == "bn_weight":
            value = 1 + 0.02 * n
        elif kind == "conv_weight":
            fan_in = int(np.prod(shape[1:]))
            value = n * np.float32(math.sqrt(2 / fan_in))
        elif kind == "pos_embed":
            value = n
        else:
            value = n * np.float32(0.02)
        weights[name] = np.asarray(value, dtype=np.float32)

    if fixture_json_path is not None:
        with open(fixture_json_path, encoding="utf-8") as f:
            recipe = json.load(f)
        assert len(weights) == recipe["weights_entries"]
        expected = recipe["weights_generation"]["counts"]
        assert kinds["conv_weight"] == expected["conv_weight"], kinds
        assert kinds["bn_weight"] == expected["bn_weight"], kinds
        assert kinds["bn_variance"] == expected["bn_variance"], kinds
        assert kinds["pos_embed"] == expected["pos_embed"], kinds
        assert kinds["other"] == expected["other(bias,bn_bias,bn_mean)"], kinds
    return weights
