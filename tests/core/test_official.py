"""``create_model(name)`` with PaddleX's official model, served from 127.0.0.1 in the official layout.

The served files are segzoo's own export of PP-LiteSeg-T (seeded random
weights), stripped of segzoo's ``inference.yml`` section as PaddleX's tars
are, tarred as ``PP-LiteSeg-T_infer.tar``, and the same weights as
``PP-LiteSeg-T_pretrained.pdparams``.
"""

from __future__ import annotations

import json
import logging
import warnings

import numpy as np
import pytest
import yaml

import segzoo
from segzoo import ModelCard, ModelConfig, ModelPlugin, official
from segzoo.cli import main
from segzoo.datasets.shapes import draw_sample
from segzoo.errors import ConfigError, WeightsError
from segzoo.inference import RandomWeightsWarning, create_model

from .official_server import OfficialServer, tar_folder

MODEL = "PP-LiteSeg-T"
TAR = f"official_inference_model/{official.INFERENCE_VERSION}/{MODEL}_infer.tar"
PDPARAMS = f"official_pretrained_model/{MODEL}_pretrained.pdparams"


def _images():
    rng = np.random.default_rng(3)
    return [draw_sample(rng, size, max_shapes=5, min_shapes=3)[0] for size in ((96, 64), (70, 50))]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """``(server, folder)``: the official-layout files of PP-LiteSeg-T, and the folder they were tarred from."""
    import paddle

    from segzoo.inference import export_model
    from segzoo.weights import save_weights

    root = tmp_path_factory.mktemp("official")
    registry = segzoo.get_registry()
    config = registry.config(MODEL)
    paddle.seed(0)
    layer = registry.build_model(MODEL, config)
    layer.eval()
    folder = export_model(MODEL, root / "export", config=config, layer=layer)
    yml = yaml.safe_load((folder / "inference.yml").read_text())
    yml.pop("segzoo", None)  # PaddleX's inference.yml has no segzoo section
    (folder / "inference.yml").write_text(yaml.safe_dump(yml))
    weights = save_weights(layer, root / "weights" / "model.pdparams")
    server = OfficialServer()
    server.put(TAR, tar_folder(folder, top=f"{MODEL}_infer"))
    server.put(PDPARAMS, weights.read_bytes())
    yield server, folder
    server.close()


@pytest.fixture()
def hub(served, tmp_path, monkeypatch):
    server, folder = served
    with server.lock:
        server.requests.clear()
    monkeypatch.setenv("SEGZOO_MODEL_BASE_URL", server.base_url)
    monkeypatch.setenv("SEGZOO_HOME", str(tmp_path / "segzoo_home"))
    monkeypatch.setenv("PADDLE_PDX_CACHE_HOME", str(tmp_path / "paddlex_home"))
    return server, folder


def test_a_name_alone_downloads_once_and_predicts_like_the_served_folder(hub, caplog):
    server, folder = hub
    caplog.set_level(logging.INFO, logger="segzoo")
    model = create_model(MODEL, device="cpu")
    assert model.source.kind == "inference" and model.source.path == official.models_dir() / MODEL
    assert f"downloading {MODEL} inference model (" in caplog.text and server.base_url + TAR in caplog.text
    direct = create_model(model_dir=folder, device="cpu")
    images = _images()
    got, want = model.predict_arrays(images), direct.predict_arrays(images)
    assert all(np.array_equal(g, w) for g, w in zip(got, want))
    assert len(np.unique(got[0])) > 1  # a real mask, not one class everywhere
    assert model.num_classes == 19  # the card's: the official inference.yml does not say
    assert server.count() == 1
    again = create_model(MODEL, device="cpu")
    assert np.array_equal(again.predict_arrays(images[:1])[0], want[0])
    assert server.count() == 1  # the second call made no request


def test_pretrained_official_loads_the_official_pdparams(hub):
    server, folder = hub
    model = create_model(MODEL, pretrained="official", device="cpu")
    assert model.source.kind == "weights" and model.layer is not None
    images = _images()
    direct = create_model(model_dir=folder, device="cpu").predict_arrays(images)
    for got, want in zip(model.predict_arrays(images), direct):
        assert (got == want).mean() >= 0.99  # dygraph vs Paddle Inference: float rounding at class borders
    assert server.count(PDPARAMS) == 1 and server.count(TAR) == 0


def test_random_weights_only_when_asked(hub):
    server, _ = hub
    with pytest.warns(RandomWeightsWarning, match="pretrained=False"):
        model = create_model("SeaFormer_tiny", pretrained=False, device="cpu")
    assert model.source.kind == "random"
    assert server.count() == 0


def test_a_class_count_other_than_the_official_one_is_an_error(hub):
    with pytest.raises(ConfigError, match="predicts 19 classes; num_classes=3 .* pretrained=False"):
        create_model(MODEL, num_classes=3, device="cpu")


def test_a_model_without_official_weights_asks_for_weights(hub):
    name = "OfficialTestNoWeights"
    card = ModelCard(name=name, family="official-tests", dataset="none", num_classes=2, config_class=ModelConfig)
    segzoo.register_plugin(ModelPlugin(card, build=lambda config: None))
    try:
        with pytest.raises(WeightsError, match="has no official weights.*pretrained=False"):
            create_model(name)
        assert official.cache_status(name) is None
    finally:
        segzoo.get_registry().unregister(name)
    assert hub[0].count() == 0


def test_predict_command_with_a_name_and_offline_after_download(hub, tmp_path, capsys, monkeypatch):
    import cv2

    server, folder = hub
    image = tmp_path / "x.png"
    cv2.imwrite(str(image), _images()[0])
    monkeypatch.setenv("SEGZOO_OFFLINE", "1")
    assert main(["predict", "--model", MODEL, "--input", str(image), "--output", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "SEGZOO_OFFLINE=1" in err and f"segzoo download {MODEL}" in err
    monkeypatch.delenv("SEGZOO_OFFLINE")
    assert main(["download", MODEL]) == 0
    assert "inference model downloaded" in capsys.readouterr().out
    monkeypatch.setenv("SEGZOO_OFFLINE", "1")  # cached now: offline works
    assert main(["predict", "--model", MODEL, "--input", str(image), "--output", str(tmp_path / "o"), "--quiet"]) == 0
    assert capsys.readouterr().out.startswith(f"1 result(s) of {MODEL}")
    pred = np.array(json.loads((tmp_path / "o" / "x_res.json").read_text())["res"]["pred"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = create_model(model_dir=folder, device="cpu").predict_arrays([cv2.imread(str(image))])[0]
    assert np.array_equal(pred, want)
    assert server.count() == 1


def test_predict_command_with_a_name_and_the_dygraph_engine_builds_the_official_pdparams(hub, tmp_path, capsys):
    """`--model NAME --engine dygraph` fetches the official .pdparams (not the program dygraph cannot run)."""
    import cv2

    server, folder = hub
    image = tmp_path / "x.png"
    cv2.imwrite(str(image), _images()[1])
    argv = ["predict", "--model", MODEL, "--engine", "dygraph", "--input", str(image), "--output", str(tmp_path / "o")]
    assert main(argv + ["--quiet"]) == 0, capsys.readouterr().err
    assert server.count(PDPARAMS) == 1 and server.count(TAR) == 0
    pred = np.array(json.loads((tmp_path / "o" / "x_res.json").read_text())["res"]["pred"])
    want = create_model(model_dir=folder, engine="paddle", device="cpu").predict_arrays([cv2.imread(str(image))])[0]
    assert len(np.unique(want)) > 1 and (pred == want).mean() >= 0.99  # the served program's mask, up to rounding


def test_arguments_are_checked_before_any_download(tmp_path, monkeypatch):
    server = OfficialServer()
    try:
        monkeypatch.setenv("SEGZOO_MODEL_BASE_URL", server.base_url)
        monkeypatch.setenv("SEGZOO_HOME", str(tmp_path / "segzoo_home"))
        monkeypatch.setenv("PADDLE_PDX_CACHE_HOME", str(tmp_path / "paddlex_home"))
        bad = [
            ({"num_classes": 0}, "num_classes: Input should be greater than 0"),
            ({"engine": "dygrap"}, "engine 'dygrap' is unknown"),
            ({"engine": "dygraph", "engine_options": {"cpu_threads": 2}}, "not options of engine 'dygraph'"),
            ({"device": "tpu"}, "device 'tpu' is not valid"),
            ({"slide_window": "abc"}, "slide_window: 'abc' is not a size"),
        ]
        for kwargs, message in bad:
            with pytest.raises(ConfigError, match=message):
                create_model("SeaFormer_tiny", **kwargs)
        assert server.count() == 0 and not (tmp_path / "segzoo_home").exists()
    finally:
        server.close()


def test_serve_loads_the_official_model_by_name(hub):
    from segzoo.serving.server import load_predictor
    from segzoo.serving.settings import ServeSettings

    server, _ = hub
    predictor = load_predictor(ServeSettings(model=MODEL, device="cpu"))
    assert predictor.source.path == official.models_dir() / MODEL
    assert server.count(TAR) == 1
