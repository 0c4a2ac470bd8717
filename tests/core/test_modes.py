"""The mode dispatch's home (segzoo.modes), the aliases of its old names, and the launch target's error line."""

from __future__ import annotations

import argparse

import pytest

from segzoo.errors import ConfigError


def test_old_names_of_the_mode_dispatch_still_work_with_a_warning():
    import segzoo.config
    import segzoo.modes
    import segzoo.training.commands

    with pytest.warns(DeprecationWarning, match="segzoo.modes.run_config"):
        assert segzoo.config.run_config is segzoo.modes.run_config
    with pytest.warns(DeprecationWarning, match="segzoo.modes.run_from_top_level"):
        assert segzoo.training.commands.run_from_top_level is segzoo.modes.run_from_top_level
    with pytest.raises(AttributeError):
        segzoo.config.no_such_name  # noqa: B018


def test_launch_target_reports_a_user_error_as_the_cli_does(tmp_path, capsys):
    from segzoo.training._launch_main import main

    assert main(["train", "-c", str(tmp_path / "missing.yaml")]) == 2
    assert "segzoo train: error: config file" in capsys.readouterr().err


def test_predict_config_form_outside_the_cli_names_the_command():
    from segzoo.inference.cli import add_arguments_predict, config_form, run_predict

    p = argparse.ArgumentParser()
    add_arguments_predict(p)
    args = p.parse_args(["-c", "cfg.yaml", "--batch-size", "2", "-o", "Global.device=cpu"])
    assert config_form(args) == ["Predict.batch_size=2", "Global.device=cpu", "Global.mode=predict"]
    with pytest.raises(ConfigError, match="segzoo predict -c CFG.yaml"):
        run_predict(args)
