"""``segzoo predict`` / ``segzoo export``, the built-in demo and ``run_predict``."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import paddle
import pytest
import yaml

import segzoo
from segzoo import ConfigError
from segzoo.cli import main
from segzoo.inference import load_demo, run_predict


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory, make_image):
    """A demo directory as scripts/make_demo_model.py lays it out: float16 SeaFormer_tiny, 4 classes."""
    root = tmp_path_factory.mktemp("demo")
    registry = segzoo.get_registry()
    config = registry.config("SeaFormer_tiny", num_classes=4)
    paddle.seed(3)
    layer = registry.build_model("SeaFormer_tiny", config)
    state = {k: v.astype("float16") for k, v in layer.state_dict().items()}
    paddle.save(state, str(root / "demo_fp16.pdparams"))
    cv2.imwrite(str(root / "shapes.png"), make_image(60, (96, 64)))
    (root / "demo.yml").write_text(
        yaml.safe_dump(
            {
                "model_name": "SeaFormer_tiny",
                "num_classes": 4,
                "weights": "demo_fp16.pdparams",
                "image": "shapes.png",
                "class_names": ["background", "circle", "rectangle", "triangle"],
                "miou": 12.5,
            }
        )
    )
    return root


def test_load_demo(demo_dir, monkeypatch):
    monkeypatch.setenv("SEGZOO_DEMO_DIR", str(demo_dir))
    predictor, image = load_demo()
    assert image == demo_dir / "shapes.png"
    assert predictor.model_name == "SeaFormer_tiny" and predictor.num_classes == 4
    assert predictor.class_names == ["background", "circle", "rectangle", "triangle"]
    assert predictor.source.kind == "weights"
    # float16 weights are loaded into the float32 network
    assert predictor.layer.parameters()[0].dtype == paddle.float32
    res = next(predictor.predict(str(image)))
    assert res.pred.shape == (64, 96) and int(res.pred.max()) < 4


def test_predict_without_arguments_runs_the_demo(demo_dir, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("SEGZOO_DEMO_DIR", str(demo_dir))
    monkeypatch.chdir(tmp_path)
    assert main(["predict"]) == 0
    out = capsys.readouterr().out
    written = sorted(p.name for p in (tmp_path / "output").iterdir())
    assert written == ["shapes_overlay.png", "shapes_res.json", "shapes_res.png"]
    assert str((tmp_path / "output").resolve()) in out
    assert "classes: " in out and "%" in out
    data = json.loads((tmp_path / "output" / "shapes_res.json").read_text())
    assert data["res"]["input_path"] == str(demo_dir / "shapes.png")


def test_missing_demo_says_how_to_build_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SEGZOO_DEMO_DIR", str(tmp_path / "no_demo"))
    assert main(["predict", "--output", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "python scripts/make_demo_model.py" in err and "demo.yml does not exist" in err
    assert "Traceback" not in err
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "demo.yml").write_text("model_name: SeaFormer_tiny\nnum_classes: 4\nweights: w.pdparams\nimage: i.png\n")
    monkeypatch.setenv("SEGZOO_DEMO_DIR", str(tmp_path / "half"))
    with pytest.raises(ConfigError, match=r"weights names 'w\.pdparams'.*make_demo_model"):
        load_demo()


def test_predict_command(tiny, make_image, save_image, pdf_maker, tmp_path, capsys):
    folder = tmp_path / "in"
    save_image(folder / "a.png", make_image(61))
    save_image(folder / "sub" / "b.jpg", make_image(62))
    pdf = pdf_maker(tmp_path / "doc.pdf", 2)
    out = tmp_path / "out"
    code = main(
        ["predict", "--model", tiny.name, "--model-dir", str(tiny.weights), "--input", str(folder), str(pdf),
         "--batch-size", "2", "--target-size", "64,48", "--output", str(out), "--device", "cpu"]
    )
    assert code == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed[-1].startswith(f"4 result(s) of {tiny.name} written to")
    assert any(line.startswith(f"{pdf} page 1 -> ") for line in printed)
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(f"{s}_{k}" for s in ("a", "b", "doc_0", "doc_1") for k in ("res.json", "res.png", "overlay.png"))
    a = json.loads((out / "a_res.json").read_text())["res"]["pred"]
    assert np.array(a).shape == (61, 83)


def test_predict_command_errors_are_one_line(tiny, tmp_path, capsys, make_image, save_image):
    x = str(save_image(tmp_path / "x.png", make_image(0, (16, 16))))  # inputs are checked before the model
    cases = [
        (["predict", "--model", tiny.name, "--model-dir", str(tiny.weights), "--input", str(tmp_path / "none.png")],
         "none.png does not exist"),
        (["predict", "--model", tiny.name, "--model-dir", str(tiny.weights)], "give the images to predict: segzoo predict PATH"),
        (["predict", "--model", "PP-LiteSeg-T", "--model-dir", str(tiny.export_dir), "--input", x],
         "Global.model_name is 'SeaFormer_tiny'"),
        (["predict", "--model", tiny.name, "--model-dir", str(tiny.weights), "--input", x, "--target-size", "0"],
         "--target-size: 0 is not a valid size"),
        (["predict", "--model", "SegFormer-B9", "--input", x], "Did you mean"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("segzoo predict: error: ") and message in err, err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_export_command_then_predict_from_it(tiny, make_image, save_image, tmp_path, capsys):
    out = tmp_path / "exported"
    assert main(["export", "--model", tiny.name, "--weights", str(tiny.weights), "--output", str(out)]) == 0
    assert "inference.json, inference.pdiparams, inference.yml" in capsys.readouterr().out
    img = save_image(tmp_path / "x.png", make_image(63))
    assert main(["predict", "--model-dir", str(out), "--input", str(img), "--output", str(tmp_path / "res"), "--quiet"]) == 0
    assert capsys.readouterr().out.startswith("1 result(s) of SeaFormer_tiny")
    pred = np.array(json.loads((tmp_path / "res" / "x_res.json").read_text())["res"]["pred"])
    assert (pred == tiny.predictor.predict_arrays([make_image(63)])[0]).mean() >= 0.999
    assert main(["export", "--model", "SeaFormer_tiny", "--output", str(tmp_path / "x"), "--num-classes", "0"]) == 2
    assert "num_classes" in capsys.readouterr().err


def test_run_predict_returns_the_written_paths(tiny, make_image, tmp_path):
    paths = run_predict(tiny.name, [make_image(64), make_image(65)], tmp_path / "o", model_dir=tiny.export_dir)
    assert [p.name for p in paths] == [
        "array_0_res.json", "array_0_res.png", "array_0_overlay.png",
        "array_1_res.json", "array_1_res.png", "array_1_overlay.png",
    ]
    assert all(p.is_file() for p in paths)


def test_cli_help_does_not_import_paddle():
    code = (
        "import sys\n"
        "from segzoo.cli import build_parser\n"
        "build_parser().parse_args(['predict', '--input', 'x.png'])\n"
        "import segzoo.inference\n"
        "assert 'paddle' not in sys.modules, sorted(m for m in sys.modules if 'paddle' in m)[:5]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_predict_command_with_random_weights_warns_in_one_line(make_image, save_image, tmp_path, capsys):
    img = save_image(tmp_path / "x.png", make_image(66))
    assert main(["predict", "--model", "SeaFormer_tiny", "--no-pretrained", "--num-classes", "3", "--input", str(img),
                 "--output", str(tmp_path / "o"), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "segzoo predict: warning: SeaFormer_tiny has random weights" in err and "Traceback" not in err
    assert (tmp_path / "o" / "x_overlay.png").is_file()


def test_export_and_predict_take_the_paddlex_config_form(tmp_path):
    """`segzoo export -c cfg.yaml -o ...` and `segzoo predict -c cfg.yaml ...`, as PaddleX users run them."""
    import subprocess
    import sys

    from segzoo.inference.demo import demo_dir, read_demo_yml

    demo = read_demo_yml()
    weights = demo_dir() / demo["weights"]
    image = demo_dir() / demo["image"]
    cfg = tmp_path / "cfg.yaml"

    def segzoo(*args):
        return subprocess.run([sys.executable, "-m", "segzoo.cli", *args], capture_output=True, text=True, cwd=tmp_path)

    out = segzoo("config", demo["model_name"], "-o", f"Train.num_classes={demo['num_classes']}", "--save", str(cfg))
    assert out.returncode == 0, out.stderr
    out = segzoo("export", "-c", str(cfg), "-o", f"Export.weight_path={weights}", "--output", "run")
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "run" / "inference" / "inference.yml").is_file()
    out = segzoo("predict", "-c", str(cfg), "--output", "run", "--input", str(image),
                 "-o", "Predict.model_dir=run/inference")
    assert out.returncode == 0, out.stderr
    assert sorted(p.name for p in (tmp_path / "run" / "predict").iterdir() if p.suffix == ".json") == ["demo_res.json"]
    out = segzoo("export", "-o", "Export.weight_path=x")
    assert out.returncode == 2 and "-o needs -c CFG.yaml" in out.stderr and "Traceback" not in out.stderr


def test_predict_takes_positional_inputs_and_skip_errors_goes_on(tiny, make_image, save_image, tmp_path, capsys):
    """Issue 28 items 12 and 17: `segzoo predict a.jpg` is `--input a.jpg`; `--skip-errors` lists what it skipped."""
    folder = tmp_path / "in"
    save_image(folder / "a.png", make_image(71))
    (folder / "b.png").write_bytes(b"not an image")  # sorts between the good ones
    save_image(folder / "c" / "c.jpg", make_image(72))
    (folder / "c" / "d.jpg").write_bytes(save_image(tmp_path / "d.jpg", make_image(73)).read_bytes()[:300])  # truncated
    single = save_image(tmp_path / "e.png", make_image(74))
    common = ["--model", tiny.name, "--model-dir", str(tiny.weights), "--engine", "dygraph", "--device", "cpu",
              "--batch-size", "2"]

    assert main(["predict", str(single), "--output", str(tmp_path / "one")]) == 2  # inputs, but no model
    assert "give the model: --model NAME" in capsys.readouterr().err
    assert main(["predict", str(single), *common, "--output", str(tmp_path / "one")]) == 0
    assert sorted(p.name for p in (tmp_path / "one").iterdir()) == ["e_overlay.png", "e_res.json", "e_res.png"]
    capsys.readouterr()

    out = tmp_path / "out"
    assert main(["predict", str(folder), *common, "--output", str(out)]) == 2  # by default the first one stops the run
    err = capsys.readouterr().err
    assert err.startswith("segzoo predict: error: cannot read image") and "b.png" in err and "--skip-errors" in err

    assert main(["predict", str(folder), str(single), *common, "--output", str(out), "--skip-errors"]) == 1
    captured = capsys.readouterr()
    written = [line.split(" -> ")[0] for line in captured.out.splitlines() if " -> " in line]
    assert written == [str(folder / "a.png"), str(folder / "c" / "c.jpg"), str(single)]  # in order, all the others
    assert sorted(p.name for p in out.glob("*_res.png")) == ["a_res.png", "c_res.png", "e_res.png"]
    lines = captured.err.strip().splitlines()
    assert lines[0] == "segzoo predict: error: 2 input(s) could not be read and were skipped:"
    assert [line.split(": ")[0].split()[-1] for line in lines[1:]] == [str(folder / "b.png"), str(folder / "c" / "d.jpg")]
    assert "Traceback" not in captured.err


def test_an_override_without_its_equals_sign_says_how_to_write_it(tmp_path, capsys):
    """Issue 28 item 12: `-o Global.dataset_dir my_data` gets one line that shows `-o Global.dataset_dir=my_data`."""
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("Global: {model: PP-LiteSeg-T}\n")
    assert main(["train", "-c", str(cfg), "-o", "Global.dataset_dir", "my_data"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == ("segzoo: error: -o Global.dataset_dir my_data: an override is one argument, key=value; "
                           "write -o Global.dataset_dir=my_data")
    with pytest.raises(SystemExit):  # a stray argument elsewhere: the usage of its own command
        main(["evaluate", "photo.jpg"])
    err = capsys.readouterr().err
    assert err.startswith("usage: segzoo evaluate") and "unrecognized arguments: photo.jpg" in err


def test_engine_help_texts_come_from_the_engine_table(capsys, monkeypatch):
    """Issue 28 item 10: every registered engine and the engine the default rule really picks, in every help text."""
    from segzoo.cli import build_parser
    from segzoo.inference.builtin import ENGINES
    from segzoo.inference.engine_table import default_engine, register_engine

    monkeypatch.delenv("SEGZOO_ENGINE", raising=False)
    dynamic = next(c.name for c in segzoo.get_registry().cards()
                   if c.export.static and c.export.dynamic_shape and c.export.onnx and not c.export.onnx_static_hw)
    cpu, gpu = default_engine("weights", dynamic, "cpu"), default_engine("weights", dynamic, "gpu")
    register_engine("helptestengine", lambda *args: None, sources=("inference",))  # a plugin's engine shows too
    try:
        for command in ("predict", "serve", "benchmark"):
            with pytest.raises(SystemExit):
                build_parser().parse_args([command, "--help"])
            text = " ".join(capsys.readouterr().out.split())
            for name in ENGINES:
                assert f"{name}," in text or f"{name} or" in text or f"or {name};" in text, (command, name)
            assert f"default: the fastest whose masks agree with dygraph: {cpu} on this CPU" in text, command
            assert f"; {gpu} on a GPU;" in text, command
    finally:
        ENGINES.pop("helptestengine")
