"""``segzoo serve --pipeline my.yaml``: PaddleX's pipeline YAML chooses the served model and its default targetSize.

In-process: the command line's own parser and settings, the model loaded as ``segzoo serve`` loads it,
the app driven with FastAPI's TestClient; the answer must equal the pipeline's ``predict()``.
"""

from __future__ import annotations

import numpy as np
from fastapi.testclient import TestClient

import segzoo
from segzoo.cli import build_parser
from segzoo.inference.demo import read_demo_yml
from segzoo.serving import create_app, load_predictor
from segzoo.serving.cli import settings_from_args

from .conftest import b64, drawn, encode


def test_serve_takes_the_model_and_target_size_from_a_pipeline_yaml(tmp_path):
    demo = read_demo_yml()
    yaml_path = tmp_path / "demo_pipeline.yaml"
    yaml_path.write_text(
        "pipeline_name: semantic_segmentation\n\nSubModules:\n  SemanticSegmentation:\n"
        "    module_name: semantic_segmentation\n"
        f"    model_name: {demo['model_name']}\n    model_dir: {demo['weights']}\n"
        "    batch_size: 1\n    target_size: [96, 64]\n"
    )
    args = build_parser().parse_args(["serve", "--pipeline", str(yaml_path), "--device", "cpu", "--port", "0"])
    settings = settings_from_args(args)
    assert (settings.model, settings.model_dir, settings.target_size) == (
        demo["model_name"], str(demo["weights"]), (96, 64)
    )
    pipeline = segzoo.create_pipeline(config=str(yaml_path), device="cpu")
    image = drawn(5, (150, 110))
    (want,) = [r.pred for r in pipeline.predict(image)]
    (original,) = [r.pred for r in pipeline.predict(image, target_size=-1)]
    assert not np.array_equal(want, original)  # the config's target size changes the mask: it must be used
    with TestClient(create_app(load_predictor(settings), settings)) as client:
        res = client.post("/semantic-segmentation", json={"image": b64(encode(image))}).json()["result"]
        health = client.get("/health").json()["result"]
    assert np.array_equal(np.asarray(res["labelMap"]).reshape(res["size"]), want)
    assert health["model"] == demo["model_name"] and health["classNames"] is None  # the page shows "class N"
    # flags given on the command line win over the YAML
    args = build_parser().parse_args(["serve", "--pipeline", str(yaml_path), "--model-dir", "elsewhere.pdparams"])
    assert settings_from_args(args).model_dir == "elsewhere.pdparams"
