"""A model hidden by SEGZOO_BLOCK_PLUGINS says it is blocked, and by which variable and value."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from segzoo import ModelCard, ModelConfig, ModelPlugin, UnknownModelError
from segzoo.registry import BlockedModelError, Registry


def test_a_blocked_built_in_model_says_so(monkeypatch):
    monkeypatch.setenv("SEGZOO_BLOCK_PLUGINS", "SegFormer-*, Foo")
    registry = Registry()
    assert "SegFormer-B0" not in registry.list_models()
    with pytest.raises(BlockedModelError) as info:
        registry.card("SegFormer-B0")
    assert str(info.value) == (
        "Model 'SegFormer-B0' is installed but blocked by SEGZOO_BLOCK_PLUGINS='SegFormer-*, Foo' "
        "(pattern 'SegFormer-*'); remove that pattern from SEGZOO_BLOCK_PLUGINS, or unset the variable, "
        "to use the model."
    )
    assert isinstance(info.value, UnknownModelError)  # code catching unknown names still catches it
    with pytest.raises(UnknownModelError) as unknown:  # a name that is not installed stays "unknown"
        registry.card("Foo")
    assert not isinstance(unknown.value, BlockedModelError)


def test_a_blocked_plugin_registered_at_run_time_says_so(monkeypatch):
    monkeypatch.setenv("SEGZOO_BLOCK_PLUGINS", "TinyUNet")
    registry = Registry(load_entrypoints=False)
    card = ModelCard(name="TinyUNet", family="tiny", dataset="none", num_classes=2, config_class=ModelConfig)
    registry.register(ModelPlugin(card, build=lambda config: None))
    with pytest.raises(BlockedModelError, match=r"^Model 'TinyUNet' is installed but blocked by "
                       r"SEGZOO_BLOCK_PLUGINS='TinyUNet'; remove it from SEGZOO_BLOCK_PLUGINS, or unset"):
        registry.card("TinyUNet")


def test_the_cli_prints_one_line_and_exits_2():
    env = dict(os.environ, SEGZOO_BLOCK_PLUGINS="PP-LiteSeg-T")
    cmd = [sys.executable, "-c", "import sys; from segzoo.cli import main; sys.exit(main())", "info", "PP-LiteSeg-T"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "segzoo info: error: Model 'PP-LiteSeg-T' is installed but blocked by SEGZOO_BLOCK_PLUGINS='PP-LiteSeg-T'; "
        "remove it from SEGZOO_BLOCK_PLUGINS, or unset the variable, to use the model."
    )
    assert "Traceback" not in proc.stderr
