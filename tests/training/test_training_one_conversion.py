"""Trained weights are converted to ONNX once, whichever door they come in by (issue 28, item 4).

``segzoo train`` writes ``best_model/model.pdparams`` and exports ``best_model/inference``; ``segzoo evaluate``
builds the network from the weights, ``segzoo predict --model-dir`` takes the file, its folder or the export.
All are one network (model, graph config, weights), so the exports cache holds one conversion of it.
"""

from __future__ import annotations

import warnings

import pytest

import segzoo
from segzoo.datasets.shapes import shapes_image
from segzoo.inference.export_cache import exports_cache
from segzoo.inference.netid import layer_digest, network_id, recorded_network


def _conversions() -> list:
    """The paddle2onnx conversions in the cache (a labels graph derived from one, ``.onnx.argmax``, is not one)."""
    return sorted(p.name for p in exports_cache().glob("*.onnx")) if exports_cache().is_dir() else []


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A SeaFormer_tiny run of `segzoo train` (one iteration, exported as training exports) in its own cache."""
    from segzoo.datasets.shapes import make_shapes_dataset
    from segzoo.training import train

    root = tmp_path_factory.mktemp("one_conversion")
    mp = pytest.MonkeyPatch()
    mp.setenv("SEGZOO_HOME", str(root / "home"))
    data = make_shapes_dataset(root / "data", num_train=4, num_val=2, size=(64, 64), seed=5)
    config = {
        "Global": {"model": "SeaFormer_tiny", "mode": "train", "dataset_dir": str(data), "device": "cpu",
                   "output": str(root / "out")},
        "Train": {"epochs_iters": 1, "batch_size": 2, "crop_size": [64, 64], "eval_interval": 1, "log_interval": 1,
                  "export": True, "warmup_steps": 0, "learning_rate": 0.01, "pretrain_weight_path": None},
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train(config, progress=False)
    yield root / "out" / "best_model", data
    mp.undo()


def test_trained_weights_are_converted_once_whichever_door(trained):
    from segzoo.training import evaluate

    best, data = trained
    assert (best / "inference" / "inference.yml").is_file() and (best / "model.pdparams").is_file()
    assert _conversions() == []
    image = shapes_image(11)[0][:97, :123]  # an odd size
    dygraph = segzoo.create_model(model_dir=best / "model.pdparams", engine="dygraph").predict_arrays([image])[0]

    # the export training wrote: its argmax program converted; the scores graph is its own minus the argmax
    model = segzoo.create_model(model_dir=best / "inference")
    assert model.engine.name == "openvino" and model.engine.outputs == "labels"
    assert float((model.predict_arrays([image])[0] == dygraph).mean()) >= 0.999
    (converted,) = _conversions()
    assert (exports_cache() / (converted + ".argmax")).is_file()

    # the .pdparams file, its folder and segzoo evaluate: the same conversion, nothing exported or converted again
    for door in (best / "model.pdparams", best):
        model = segzoo.create_model(model_dir=door)
        assert model.engine.name == "openvino" and model.engine.outputs == "scores"  # predict --model-dir: scores
        assert float((model.predict_arrays([image])[0] == dygraph).mean()) >= 0.999, door
    result = evaluate("SeaFormer_tiny", data, best / "model.pdparams", progress=False, verbose=False)
    reference = evaluate("SeaFormer_tiny", data, best / "model.pdparams", progress=False, verbose=False,
                         engine="dygraph")
    assert result["metrics"]["mIoU"] == pytest.approx(reference["metrics"]["mIoU"], abs=2e-3)
    assert _conversions() == [converted]
    assert not [p for p in exports_cache().iterdir() if p.is_dir() and not p.name.startswith(".")]  # no export


def test_the_identity_separates_weights_and_graph_configs_but_not_training_fields(trained):
    best, _ = trained
    registry = segzoo.get_registry()
    model = segzoo.create_model(model_dir=best / "model.pdparams", engine="dygraph")
    config, layer = model.config, model.layer
    digest = layer_digest(layer)
    same = network_id("SeaFormer_tiny", config, digest)
    assert network_id("SeaFormer_tiny", config.model_copy(update={"learning_rate": 0.5, "crop_size": (32, 32),
                                                                   "mean": (0.1, 0.2, 0.3)}), digest) == same
    assert network_id("SeaFormer_tiny", config.model_copy(update={"align_corners": True}), digest) != same
    assert network_id("SeaFormer_small", config, digest) != same
    other = registry.build_model("SeaFormer_tiny", config)
    assert network_id("SeaFormer_tiny", config, layer_digest(other)) != same  # other weights
    # the export records the network it was made from, and the record is trusted only for those files
    deploy = segzoo.create_model(model_dir=best / "inference", engine="paddle").source.deploy
    assert recorded_network(deploy) == same
    deploy.raw["segzoo"]["files_sha256"] = "0" * 64  # as if inference.pdiparams were replaced afterwards
    assert recorded_network(deploy) is None
