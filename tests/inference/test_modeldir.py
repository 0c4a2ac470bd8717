"""model_dir: exported directories, dygraph weights, names, class counts, engines, warnings."""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pytest
import yaml

from segzoo import ConfigError, UnknownModelError, WeightsError
from segzoo.inference import RandomWeightsWarning, create_model
from segzoo.inference.modeldir import resolve_model_dir


def test_exported_dir_runs_on_the_fast_default_engine_and_on_paddle_inference(tiny, make_image):
    image = make_image(1)
    want = tiny.predictor.predict_arrays([image])[0]
    model = create_model(tiny.name, model_dir=tiny.export_dir)  # the default: OpenVINO on the CPU
    assert model.engine.name == "openvino" and model.engine.outputs == "labels"
    assert model.layer is None and model.config.num_classes == 4
    assert (model.predict_arrays([image])[0] == want).mean() >= 0.999
    paddle = create_model(tiny.name, model_dir=tiny.export_dir, engine="paddle")
    assert paddle.engine.name == "paddle" and paddle.engine.outputs == "labels"
    assert (paddle.predict_arrays([image])[0] == want).mean() >= 0.999
    # the model name may come from inference.yml
    inferred = create_model(model_dir=tiny.export_dir)
    assert inferred.model_name == tiny.name


def test_model_name_mismatch_is_a_clear_error(tiny):
    with pytest.raises(ConfigError, match=r"Global\.model_name is 'SeaFormer_tiny' but the model asked for is 'PP-LiteSeg-T'"):
        create_model("PP-LiteSeg-T", model_dir=tiny.export_dir)
    with pytest.raises(UnknownModelError, match="SeaFormer_tiny"):
        create_model("SeaFormer_tinyy", model_dir=tiny.export_dir)


def test_pdparams_file_and_directory(tiny, make_image, tmp_path):
    image = make_image(2)
    want = tiny.predictor.predict_arrays([image])[0]
    # a training-style best_model/ directory with model.pdparams beside other files
    best = tmp_path / "best_model"
    best.mkdir()
    shutil.copy(tiny.weights, best / "model.pdparams")
    (best / "model.pdopt").write_bytes(b"optimizer state")
    for model_dir in (tiny.weights, best):
        with warnings.catch_warnings():
            warnings.simplefilter("error", RandomWeightsWarning)
            model = create_model(tiny.name, model_dir=model_dir)
        assert model.engine.name == "openvino" and model.source.kind == "weights"  # the fast default
        assert model.config.num_classes == 4, "the class count is read from the weights"
        assert (model.predict_arrays([image])[0] == want).mean() >= 0.999
    # pretrained= is the same thing; the dygraph reference gives the very same masks
    assert (create_model(tiny.name, pretrained=str(tiny.weights)).predict_arrays([image])[0] == want).mean() >= 0.999
    reference = create_model(tiny.name, model_dir=tiny.weights, engine="dygraph")
    assert np.array_equal(reference.predict_arrays([image])[0], want)


def test_wrong_num_classes_names_the_right_one(tiny):
    with pytest.raises(WeightsError, match=r"holds a 4-class SeaFormer_tiny, but num_classes=5 was given; set num_classes=4"):
        create_model(tiny.name, model_dir=tiny.weights, num_classes=5)
    with pytest.raises(WeightsError, match="none of the"):
        create_model("PP-LiteSeg-T", model_dir=tiny.weights)


def test_model_dir_errors(tiny, tmp_path):
    with pytest.raises(ConfigError, match=r"nowhere does not exist"):
        create_model(tiny.name, model_dir=tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="holds neither inference.yml"):
        create_model(tiny.name, model_dir=tmp_path / "empty")
    two = tmp_path / "two"
    two.mkdir()
    shutil.copy(tiny.weights, two / "a.pdparams")
    shutil.copy(tiny.weights, two / "b.pdparams")
    with pytest.raises(WeightsError, match=r"several \.pdparams files \(a\.pdparams, b\.pdparams\)"):
        create_model(tiny.name, model_dir=two)
    no_yml = tmp_path / "no_yml"
    shutil.copytree(tiny.export_dir, no_yml)
    (no_yml / "inference.yml").unlink()
    with pytest.raises(ConfigError, match="no inference.yml"):
        create_model(tiny.name, model_dir=no_yml)
    no_params = tmp_path / "no_params"
    shutil.copytree(tiny.export_dir, no_params)
    (no_params / "inference.pdiparams").unlink()
    with pytest.raises(ConfigError, match=r"Deploy\.params names 'inference\.pdiparams'"):
        create_model(tiny.name, model_dir=no_params)
    with pytest.raises(ConfigError, match="give the weights once"):
        create_model(tiny.name, model_dir=tiny.export_dir, pretrained=str(tiny.weights))
    with pytest.raises(ConfigError, match="model_name is missing"):
        create_model(model_dir=tiny.weights)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d["Deploy"]["transforms"].append({"type": "RandomFlip"}), r"Deploy\.transforms\[1\]: transform type 'RandomFlip'"),
        (lambda d: d["Deploy"]["transforms"][0].update(std=[0.5, 0, 0.5]), r"std: every std must be > 0"),
        (lambda d: d["Deploy"]["transforms"][0].update(mean=[1, 2]), r"mean: \[1, 2\] must be a number or a list of 3"),
        (lambda d: d.pop("Deploy"), "Deploy section is missing"),
        (lambda d: d["Deploy"].update(input_shape=[3, 32]), r"Deploy\.input_shape must be"),
    ],
)
def test_bad_inference_yml_names_the_field(tiny, tmp_path, edit, message):
    target = tmp_path / "edited"
    shutil.copytree(tiny.export_dir, target)
    data = yaml.safe_load((target / "inference.yml").read_text())
    edit(data)
    (target / "inference.yml").write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=message) as info:
        create_model(tiny.name, model_dir=target)
    assert "inference.yml" in str(info.value)


def test_paddlex_style_yml_is_read(tiny, tmp_path, make_image):
    """PaddleX's own files: Deploy.model may still say model.pdmodel; scalar mean/std; no segzoo section."""
    target = tmp_path / "paddlex_style"
    shutil.copytree(tiny.export_dir, target)
    data = yaml.safe_load((target / "inference.yml").read_text())
    data["Deploy"]["model"] = "model.pdmodel"
    data["Deploy"]["transforms"] = [{"type": "Normalize", "mean": 0.5, "std": 0.5}]
    data["Deploy"]["input_shape"] = [None, 3, None, None]
    del data["segzoo"]
    (target / "inference.yml").write_text(yaml.safe_dump(data))
    source = resolve_model_dir(target)
    assert source.deploy.model_file.name == "inference.json"
    assert source.deploy.mean == (0.5, 0.5, 0.5) and source.deploy.fixed_hw is None
    model = create_model(tiny.name, model_dir=target / "inference.yml")
    image = make_image(3)
    assert (model.predict_arrays([image])[0] == tiny.predictor.predict_arrays([image])[0]).mean() >= 0.999


def test_random_init_warns_once_and_says_how_to_give_weights():
    with pytest.warns(RandomWeightsWarning) as record:
        create_model("SeaFormer_tiny", num_classes=2, pretrained=False)
    messages = [str(w.message) for w in record if issubclass(w.category, RandomWeightsWarning)]
    assert len(messages) == 1
    assert "model_dir=" in messages[0] and "pretrained=" in messages[0] and "pretrained=False" in messages[0]


def test_engine_choice_and_options(tiny, make_image):
    with pytest.raises(ConfigError, match=r"engine 'onnx' is unknown; choose one of auto, dygraph, onnxruntime, openvino, paddle"):
        create_model(tiny.name, model_dir=tiny.export_dir, engine="onnx")
    with pytest.raises(ConfigError, match=r"engine 'dygraph' cannot run an exported inference directory"):
        create_model(tiny.name, model_dir=tiny.export_dir, engine="dygraph")
    with pytest.raises(ConfigError, match=r"\['threads'\] are not options of engine 'paddle'"):
        create_model(tiny.name, model_dir=tiny.export_dir, engine="paddle", engine_options={"threads": 2})
    image = make_image(4, (130, 90))
    on = create_model(tiny.name, model_dir=tiny.export_dir, engine="paddle", engine_options={"onednn": True, "cpu_threads": 2})
    off = create_model(tiny.name, model_dir=tiny.export_dir, engine="paddle", engine_options={"onednn": False, "cpu_threads": 1})
    assert on.engine.onednn and not off.engine.onednn and off.engine.cpu_threads == 1
    assert (on.predict_arrays([image])[0] == off.predict_arrays([image])[0]).mean() >= 0.999


def test_register_engine_extends_the_table(tiny, make_image):
    """A new engine (what the ONNX Runtime engine will do) plugs in with register_engine."""
    from segzoo.inference.engines import ENGINES, Engine, register_engine

    class Doubled(Engine):
        name = "doubled"
        outputs = "labels"

        def __init__(self, inner):
            self.inner = inner

        def run(self, batch):
            return self.inner.run(batch)

    def factory(model_name, config, source, device, options):
        from segzoo.inference.engines import PaddleInferenceEngine

        return Doubled(PaddleInferenceEngine(source.deploy, device=device, **options))

    register_engine("doubled", factory, sources=("inference",), options=("onednn",))
    try:
        model = create_model(tiny.name, model_dir=tiny.export_dir, engine="doubled", engine_options={"onednn": False})
        image = make_image(5)
        assert model.engine.name == "doubled"
        assert (model.predict_arrays([image])[0] == tiny.predictor.predict_arrays([image])[0]).mean() >= 0.999
    finally:
        del ENGINES["doubled"]


def test_old_pdmodel_layout(point_model, make_image, tmp_path):
    """inference.pdmodel + inference.pdiparams (Paddle 2's program format) also run through Paddle Inference."""
    import subprocess
    import sys

    out = tmp_path / "old"
    script = (
        "import sys, numpy as np, paddle\n"
        "paddle.seed(5)\n"
        "net = paddle.nn.Conv2D(3, 3, 1)\n"
        "net.eval()\n"
        "spec = [paddle.static.InputSpec([None, 3, None, None], 'float32', name='x')]\n"
        "paddle.jit.save(paddle.jit.to_static(net, input_spec=spec, full_graph=True), sys.argv[1] + '/inference')\n"
        "np.savez(sys.argv[1] + '/w.npz', w=net.weight.numpy(), b=net.bias.numpy())\n"
    )
    out.mkdir()
    env = dict(__import__("os").environ, FLAGS_enable_pir_api="0")
    subprocess.run([sys.executable, "-c", script, str(out)], check=True, env=env, capture_output=True)
    assert (out / "inference.pdmodel").is_file() and not (out / "inference.json").exists()
    (out / "inference.yml").write_text(
        yaml.safe_dump(
            {
                "Global": {"model_name": point_model},
                "Deploy": {
                    "model": "inference.pdmodel",
                    "params": "inference.pdiparams",
                    "transforms": [{"type": "Normalize", "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}],
                    "input_shape": [-1, 3, -1, -1],
                    "output_op": "none",
                },
            }
        )
    )
    weights = np.load(out / "w.npz")
    image = make_image(6, (53, 37))
    x = (image[:, :, ::-1].astype(np.float32) / 255.0 - 0.5) / 0.5
    want = (np.einsum("hwc,kc->khw", x, weights["w"][:, :, 0, 0]) + weights["b"][:, None, None]).argmax(0)
    model = create_model(model_dir=out)
    assert model.source.deploy.model_file.name == "inference.pdmodel"
    assert np.array_equal(model.predict_arrays([image])[0], want)
