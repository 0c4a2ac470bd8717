"""A weights file brings its run's config: the README's train → evaluate → export → predict, word for word.

`segzoo config` writes `Train.num_classes: 19` (the card's default) into cfg.yaml; training overrides it
with `-o Train.num_classes=4` and a model field with `-o Model.mean=...`. Evaluate, export and predict
then run on the weights without repeating those overrides, an explicit `-o` still wins, and a value the
weights contradict is one line naming the exact key to set.
"""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

import segzoo
from segzoo.cli import main
from segzoo.inference.runconfig import WeightsFitError
from segzoo.training import evaluate

MODEL = "PP-LiteSeg-T"
MEAN = [0.25, 0.5, 0.75]


@pytest.fixture(scope="module")
def run(tmp_path_factory, shapes64):
    """cfg.yaml from `segzoo config`, and a 2-iteration training with -o Train.num_classes=4 and -o Model.mean."""
    root = tmp_path_factory.mktemp("readme")
    cfg = root / "cfg.yaml"
    assert main(["config", MODEL, "--save", str(cfg)]) == 0
    assert yaml.safe_load(cfg.read_text())["Train"]["num_classes"] == 19
    out = root / "output"
    code = main([
        "train", "-c", str(cfg), "-o", f"Global.dataset_dir={shapes64}", "-o", "Train.num_classes=4",
        "-o", "Train.epochs_iters=2", "-o", "Train.eval_interval=2", "-o", "Train.batch_size=2",
        "-o", "Train.crop_size=[64,64]", "-o", "Train.pretrain_weight_path=null", "-o", "Train.export=false",
        "-o", f"Model.mean={MEAN}", "-o", f"Global.output={out}", "-o", "Global.device=cpu", "--no-progress",
    ])
    assert code == 0
    return {"root": root, "cfg": cfg, "out": out, "best": out / "best_model", "data": shapes64}


def _err(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


def test_every_checkpoint_holds_the_runs_config(run):
    out = run["out"]
    for folder in (out / "best_model", out / "iter_2"):
        saved = folder / "config.yaml"
        assert saved.read_bytes() == (out / "config.yaml").read_bytes()
        data = yaml.safe_load(saved.read_text())
        assert data["Train"]["num_classes"] == 4 and data["Model"]["mean"] == MEAN


def test_evaluate_export_and_predict_need_no_repeated_overrides(run, tmp_path, capsys, monkeypatch):
    cfg, best, data = run["cfg"], run["best"], run["data"]
    weights = best / "model.pdparams"
    monkeypatch.chdir(tmp_path)  # cfg.yaml's Global.output is ./output
    # the README's lines, word for word: no -o Global.dataset_dir, no -o Train.num_classes
    assert main(["evaluate", "-c", str(cfg), "-o", f"Evaluate.weight_path={weights}", "--no-progress"]) == 0
    assert f"evaluating on {data}, the dataset the weights were trained on ({best / 'config.yaml'})" in (
        capsys.readouterr().err
    )
    result = json.loads((tmp_path / "output" / "evaluate_result.json").read_text())
    assert result["num_classes"] == 4 and len(result["metrics"]["class_IoU"]) == 4
    assert result["dataset_dir"] == str(data)

    assert main(["export", "-c", str(cfg), "-o", f"Export.weight_path={weights}"]) == 0
    yml = yaml.safe_load((tmp_path / "output" / "inference" / "inference.yml").read_text())
    assert yml["segzoo"]["num_classes"] == 4
    assert yml["Deploy"]["transforms"][0]["mean"] == MEAN  # the run's Model field travelled with the weights

    pr = tmp_path / "pr"
    image = next((data / "images").iterdir())
    assert main(["predict", "--model-dir", str(best), "--input", str(image), "--output", str(pr),
                 "--engine", "dygraph", "--device", "cpu", "--quiet"]) == 0
    assert "PP-LiteSeg-T" in capsys.readouterr().out
    assert (pr / f"{image.stem}_res.json").is_file()

    model = segzoo.create_model(model_dir=weights, engine="dygraph", device="cpu")  # no model name needed
    assert (model.model_name, model.num_classes, list(model.config.mean)) == (MODEL, 4, MEAN)


def test_an_explicit_override_wins(run, tmp_path):
    ex = tmp_path / "ex"
    assert main(["export", "-c", str(run["cfg"]), "-o", f"Global.output={ex}", "-o", "Model.mean=[0.5,0.5,0.5]",
                 "-o", f"Export.weight_path={run['best'] / 'model.pdparams'}"]) == 0
    yml = yaml.safe_load((ex / "inference" / "inference.yml").read_text())
    assert yml["Deploy"]["transforms"][0]["mean"] == [0.5, 0.5, 0.5] and yml["segzoo"]["num_classes"] == 4


def test_a_contradicting_class_count_names_the_key(run, tmp_path, capsys):
    cfg, best, data = run["cfg"], run["best"], run["data"]
    weights = best / "model.pdparams"
    ev = tmp_path / "ev"
    code = main(["evaluate", "-c", str(cfg), "-o", f"Global.dataset_dir={data}", "-o", f"Global.output={ev}",
                 "-o", "Train.num_classes=19", "-o", f"Evaluate.weight_path={weights}", "--no-progress"])
    assert code == 2
    assert _err(capsys) == (
        f"segzoo evaluate: error: {weights} was trained with 4 classes (see {best / 'config.yaml'}), but "
        "-o Train.num_classes=19 was given; set -o Train.num_classes=4, or leave the class count out to take "
        "it from the weights"
    )
    assert not ev.exists()

    assert main(["predict", "--model-dir", str(best), "--num-classes", "3", "--input", str(data / "images"),
                 "--output", str(tmp_path / "pr"), "--engine", "dygraph"]) == 2
    assert _err(capsys) == (
        f"segzoo predict: error: {weights} was trained with 4 classes (see {best / 'config.yaml'}), but "
        "--num-classes 3 was given; set --num-classes 4, or leave the class count out to take it from the weights"
    )
    assert not (tmp_path / "pr").exists()

    assert main(["export", "--model", "SegFormer-B0", "--weights", str(weights), "--output", str(tmp_path / "x")]) == 2
    assert _err(capsys) == (
        f"segzoo export: error: {weights} holds weights of {MODEL} (see {best / 'config.yaml'}), not of "
        f"SegFormer-B0; set --model {MODEL} to use them"
    )

    with pytest.raises(WeightsFitError) as info:
        segzoo.create_model(MODEL, model_dir=weights, num_classes=5, engine="dygraph", device="cpu")
    assert "but num_classes=5 was given; set num_classes=4, or leave" in str(info.value)


def test_weights_without_a_saved_config_get_their_class_count_from_their_shapes(run, tmp_path, capsys):
    """PaddleX's own .pdparams have no config beside them: the class count comes from the head's shapes."""
    bare = tmp_path / "bare" / "paddlex.pdparams"
    bare.parent.mkdir()
    shutil.copyfile(run["best"] / "model.pdparams", bare)
    cfg, data = run["cfg"], run["data"]
    ev = tmp_path / "ev"
    assert main(["evaluate", "-c", str(cfg), "-o", f"Global.dataset_dir={data}", "-o", f"Global.output={ev}",
                 "-o", f"Evaluate.weight_path={bare}", "--no-progress"]) == 0
    assert json.loads((ev / "evaluate_result.json").read_text())["num_classes"] == 4

    assert main(["evaluate", "-c", str(cfg), "-o", f"Global.dataset_dir={data}", "-o", f"Global.output={ev}",
                 "-o", "Train.num_classes=19", "-o", f"Evaluate.weight_path={bare}", "--no-progress"]) == 2
    assert _err(capsys) == (
        f"segzoo evaluate: error: {bare} holds a 4-class {MODEL}, but -o Train.num_classes=19 was given; "
        "set -o Train.num_classes=4, or leave the class count out to take it from the weights"
    )
    with pytest.raises(WeightsFitError, match=r"but num_classes=7 was given; set num_classes=4, or leave"):
        evaluate(MODEL, data, bare, num_classes=7, progress=False, verbose=False)
