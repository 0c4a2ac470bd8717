"""`segzoo -c cfg.yaml -o Global.mode=...`: every PaddleX mode runs from one config file."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from segzoo.cli import main

DEMO_WEIGHTS = Path(__file__).resolve().parents[2] / "core" / "assets" / "demo" / "demo.pdparams"


def _cfg(tmp_path, dataset, **sections) -> Path:
    data = {"Global": {"model": "SeaFormer_tiny", "dataset_dir": str(dataset), "device": "cpu",
                       "output": str(tmp_path / "output")}, **sections}
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_check_dataset_mode(shapes64, tmp_path, capsys):
    path = _cfg(tmp_path, shapes64)
    assert main(["-c", str(path), "-o", "Global.mode=check_dataset"]) == 0
    result = json.loads((tmp_path / "output" / "check_dataset" / "check_dataset_result.json").read_text())
    assert result["check_pass"] is True and result["attributes"]["num_classes"] == 4
    assert result["attributes"]["train_samples"] == 12 and result["attributes"]["val_samples"] == 4
    assert "check: passed" in capsys.readouterr().out


def test_export_and_predict_modes(shapes64, tmp_path, capsys):
    path = _cfg(tmp_path, shapes64, Export={"weight_path": str(DEMO_WEIGHTS)})
    assert main(["-c", str(path), "-o", "Global.mode=export"]) == 0
    exported = tmp_path / "output" / "inference"
    assert {p.name for p in exported.iterdir()} >= {"inference.json", "inference.pdiparams", "inference.yml"}
    deploy = yaml.safe_load((exported / "inference.yml").read_text())
    assert deploy["Global"]["model_name"] == "SeaFormer_tiny"
    image = shapes64 / "images" / "val_00000.jpg"
    assert main(["-c", str(path), "-o", "Global.mode=predict", "-o", f"Predict.model_dir={exported}",
                 "-o", f"Predict.input={image}"]) == 0
    res = json.loads((tmp_path / "output" / "predict" / "val_00000_res.json").read_text())
    pred = res["res"]["pred"]
    assert len(pred) == 64 and len(pred[0]) == 64
    capsys.readouterr()
    assert main(["-c", str(path), "-o", "Global.mode=predict"]) == 2
    assert "Predict.input: required for mode predict" in capsys.readouterr().err
