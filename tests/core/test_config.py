"""The YAML config: validation messages, typed -o overrides, model defaults, and `segzoo config` round-trips."""

from __future__ import annotations

import pytest
import yaml

from segzoo import get_registry, list_models
from segzoo.cli import main
from segzoo.config import (
    apply_overrides,
    default_config,
    load_config,
    model_config_for,
    parse_override,
    render_config,
    resolve_config,
)
from segzoo.errors import ConfigError, UnknownModelError

BASE = {"Global": {"model": "PP-LiteSeg-T"}}


def _err(overrides=(), data=None):
    with pytest.raises(ConfigError) as info:
        load_config(data=data or BASE, overrides=overrides)
    return str(info.value)


@pytest.mark.parametrize(
    "override, expected",
    [
        ("Trian.epochs_iters=1", "Trian: unknown key; did you mean Train?"),
        ("Train.epochs_iter=1", "Train.epochs_iter: unknown key; did you mean epochs_iters"),
        ("Train.augment.flip_prb=1", "Train.augment.flip_prb: unknown key; did you mean flip_prob"),
        ("CheckDataset.split.enabel=True", "CheckDataset.split.enabel: unknown key; did you mean enable"),
        ("Global.mdoe=train", "Global.mdoe: unknown key; did you mean mode"),
        ("Model.optimzer=sgd", "Model.optimzer: unknown key; did you mean optimizer"),
    ],
)
def test_unknown_keys_name_the_field_and_the_nearest_key(override, expected):
    assert expected in _err([override])


@pytest.mark.parametrize(
    "override, expected",
    [
        ("Train.learning_rate=-1", "Train.learning_rate: Input should be greater than 0"),
        ("Train.batch_size=two", "Train.batch_size: Input should be a valid integer"),
        ("Global.mode=fly", "Global.mode: Input should be 'check_dataset', 'train'"),
        ("Global.device=tpu:0", "Global.device: Value error, device 'tpu:0' is not valid"),
        ("Train.augment.flip_prob=1.5", "Train.augment.flip_prob: Input should be less than or equal to 1"),
        ("Model.momentum=1.5", "Model.momentum: Input should be less than 1"),
        ("Model.learning_rate=0.1", "Model.learning_rate: set it as Train.learning_rate"),
        ("Train.pretrain_weight_path=ftp://x.org/a.pdparams", "only http(s) URLs are fetched"),
        ("Train.crop_size=[0,4]", "Train.crop_size: Value error, crop sides must be > 0"),
    ],
)
def test_bad_values_fail_before_any_work_naming_the_field(override, expected):
    assert expected in _err([override])


def test_split_percentages_must_sum_to_100():
    msg = _err(["CheckDataset.split.enable=True", "CheckDataset.split.train_percent=80",
                "CheckDataset.split.val_percent=30"])
    assert "CheckDataset.split" in msg and "must be 100" in msg


def test_unknown_model_suggests_names():
    with pytest.raises(UnknownModelError, match="Did you mean: PP-LiteSeg-T"):
        load_config(data={"Global": {"model": "PP-LiteSeg"}})
    assert "Global.model: required" in _err(data={"Train": {"epochs_iters": 3}})


def test_overrides_are_typed():
    assert parse_override("Train.epochs_iters=10") == (["Train", "epochs_iters"], 10)
    assert parse_override("CheckDataset.split.enable=True") == (["CheckDataset", "split", "enable"], True)
    assert parse_override("Train.learning_rate=1e-3")[1] == pytest.approx(0.001)  # YAML 1.1 reads it as text
    assert parse_override("Train.crop_size=[64, 32]")[1] == [64, 32]
    assert parse_override("Global.dataset_dir=null")[1] is None
    assert parse_override("Global.device=gpu:0,1")[1] == "gpu:0,1"
    assert parse_override("Global.output=a=b")[1] == "a=b"
    cfg = load_config(data=BASE, overrides=["Train.learning_rate=1e-3", "CheckDataset.split.enable=True",
                                            "CheckDataset.split.train_percent=90", "CheckDataset.split.val_percent=10",
                                            "Global.dataset_dir=2024", "Train.crop_size=[64, 32]"])
    assert cfg.Train.learning_rate == pytest.approx(1e-3)
    assert cfg.CheckDataset.split.enable is True and cfg.CheckDataset.split.train_percent == 90
    assert cfg.Global.dataset_dir == "2024"  # a number given for a text field is text
    assert cfg.Train.crop_size == (64, 32)
    with pytest.raises(ConfigError, match="expected Section.key=value"):
        parse_override("Train.epochs_iters")
    with pytest.raises(ConfigError, match="must be Section.key"):
        parse_override("epochs_iters=3")
    with pytest.raises(ConfigError, match="Train.epochs_iters is a value"):
        apply_overrides({"Train": {"epochs_iters": 3}}, ["Train.epochs_iters.x=1"])



def test_comma_separated_overrides_fill_tuple_and_list_fields():
    """Issue 28 item 13: `-o Train.crop_size=128,128` is (128, 128); text fields keep their commas."""
    from segzoo.config import model_config_for

    cfg = load_config(data=BASE, overrides=["Train.crop_size=128,128", "Predict.target_size=512, 256",
                                            "Predict.input=a,b.jpg", "Global.device=gpu:0,1", "Model.mean=0.5,0.5,0.5"])
    assert cfg.Train.crop_size == (128, 128) and cfg.Predict.target_size == (512, 256)
    assert cfg.Predict.input == "a,b.jpg" and cfg.Global.device == "gpu:0,1"  # text fields: a path, GPU ids
    assert model_config_for(cfg).crop_size == (128, 128) and model_config_for(cfg).mean == (0.5, 0.5, 0.5)
    with pytest.raises(ConfigError, match=r"Train.crop_size: Input should be a valid tuple .*written as 128,128 or \[128,128\]"):
        load_config(data=BASE, overrides=["Train.crop_size=128"])

def test_later_overrides_win_and_apply_on_top_of_the_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("Global:\n  model: SeaFormer_tiny\nTrain:\n  epochs_iters: 7\n  batch_size: 4\n")
    cfg = load_config(path, ["Train.epochs_iters=9", "Train.epochs_iters=11"])
    assert cfg.Train.epochs_iters == 11 and cfg.Train.batch_size == 4


def test_file_errors_name_the_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("Global:\n  model: PP-LiteSeg-T\n  mode: [train\n")
    with pytest.raises(ConfigError, match=r"bad.yaml line \d+, column \d+: not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="not found; print a complete one with `segzoo config MODEL"):
        load_config(tmp_path / "missing.yaml")
    listy = tmp_path / "list.yaml"
    listy.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="must be a mapping of sections"):
        load_config(listy)
    typo = tmp_path / "typo.yaml"
    typo.write_text("Global:\n  model: PP-LiteSeg-T\nTrain:\n  epoch_iters: 3\n")
    with pytest.raises(ConfigError, match=r"typo.yaml: Train.epoch_iters: unknown key; did you mean epochs_iters"):
        load_config(typo)
    # the bad key is in the file, not in the -o items: the file is named
    with pytest.raises(ConfigError, match=r"typo.yaml: Train.epoch_iters: unknown key"):
        load_config(typo, ["Train.batch_size=3"])


def test_model_defaults_fill_what_the_yaml_leaves_unset(tmp_path):
    sea = model_config_for(load_config(data={"Global": {"model": "SeaFormer_tiny"}}))
    assert sea.optimizer == "adamw" and sea.learning_rate == pytest.approx(2.5e-4) and sea.warmup_iters == 1500
    lite = model_config_for(load_config(data=BASE, overrides=["Train.learning_rate=0.05", "Train.warmup_steps=7",
                                                              "Train.num_classes=3", "Model.loss_weights=[1,0.5,0.5]"]))
    assert lite.optimizer == "sgd" and lite.learning_rate == pytest.approx(0.05) and lite.warmup_iters == 7
    assert lite.num_classes == 3 and lite.loss_weights == (1.0, 0.5, 0.5)
    # num_classes: Train.num_classes, else class_name.txt, else the card
    ds = tmp_path / "ds"
    ds.mkdir()
    (ds / "class_name.txt").write_text("bg\na\nb\n\n")
    assert model_config_for(load_config(data={"Global": {"model": "PP-LiteSeg-T", "dataset_dir": str(ds)}})).num_classes == 3
    assert model_config_for(load_config(data=BASE)).num_classes == get_registry().card("PP-LiteSeg-T").num_classes
    msg = _err(["Model.loss_weights=[1, 2]"])
    assert msg.startswith("Model.loss_weights")  # the PP-LiteSeg config wants 3 weights


@pytest.mark.parametrize("name", list_models())
def test_printed_config_round_trips_for_every_model(name):
    cfg = default_config(name)
    text = render_config(cfg)
    again = load_config(data=yaml.safe_load(text))
    assert again == cfg
    assert render_config(again) == text
    assert model_config_for(again) == get_registry().card(name).default_config()
    # every key is commented where a description exists, and every section is there
    for section in ("Global:", "CheckDataset:", "Train:", "Evaluate:", "Export:", "Predict:", "Model:"):
        assert f"\n{section}" in text
    assert "epochs_iters: 1000  # training iterations" in text


def test_resolved_config_writes_every_default_and_changes_nothing():
    cfg = load_config(data=BASE, overrides=["Train.learning_rate=0.02", "Model.weight_decay=0.001"])
    full = resolve_config(cfg)
    assert full.Train.learning_rate == 0.02 and full.Train.warmup_steps == 0 and full.Train.crop_size == (512, 512)
    assert full.Model["weight_decay"] == 0.001 and full.Model["optimizer"] == "sgd"
    assert model_config_for(full) == model_config_for(cfg)
    assert load_config(data=yaml.safe_load(render_config(full))) == full


def test_segzoo_config_command_prints_a_loadable_file(capsys, tmp_path):
    assert main(["config", "SegFormer-B0", "-o", "Train.epochs_iters=42"]) == 0
    text = capsys.readouterr().out
    cfg = load_config(data=yaml.safe_load(text))
    assert cfg.Global.model == "SegFormer-B0" and cfg.Train.epochs_iters == 42
    assert cfg.Model["optimizer"] == "adamw"
    out = tmp_path / "seg.yaml"
    assert main(["config", "SegFormer-B0", "--save", str(out)]) == 0
    assert load_config(out) == default_config("SegFormer-B0")
    assert main(["config", "SegFormer-B9"]) == 2
    assert "Unknown model 'SegFormer-B9'" in capsys.readouterr().err


def test_cli_config_errors_exit_2_with_one_line(capsys, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("Global:\n  model: PP-LiteSeg-T\n")
    assert main(["-c", str(path), "-o", "Train.epoch_iters=3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("segzoo -c: error: -o Train.epoch_iters: unknown key; did you mean epochs_iters")
    assert "Traceback" not in err
    assert main(["train", "-c", str(path), "-o", "Train.batch_size=0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("segzoo train: error: -o Train.batch_size: Input should be greater than 0")
    assert main(["-c", str(path), "-o", "Global.mode=train"]) == 2
    assert "Global.dataset_dir: required" in capsys.readouterr().err
