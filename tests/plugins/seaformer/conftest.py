"""Fixtures for the SeaFormer network tests.

The network module and the weight regenerator are loaded from their file
paths (no ``sys.path`` changes, no installed package needed).
"""

import importlib.util
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[2]
DATA_DIR = HERE / "data"
NETWORK_FILE = REPO_ROOT / "plugins" / "seaformer" / "network.py"
FIXTURE_WEIGHTS_FILE = HERE / "fixture_weights.py"


def _load_module(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def seaformer_data_dir():
    """Directory of the copied reference data (TSVs, summaries, fixture)."""
    return DATA_DIR


@pytest.fixture(scope="session")
def seaformer_network():
    """``plugins/seaformer/network.py`` as a module."""
    return _load_module("_segzoo_test_seaformer_network", NETWORK_FILE)


@pytest.fixture(scope="session")
def fixture_weights_module():
    """``fixture_weights.py`` (the seeded-weight regenerator) as a module."""
    return _load_module("_segzoo_test_seaformer_fixture_weights",
                        FIXTURE_WEIGHTS_FILE)


@pytest.fixture(scope="session")
def tiny_fixture_weights(fixture_weights_module):
    """The regenerated SeaFormer-tiny fixture weights, ``{name: array}``."""
    return fixture_weights_module.regenerate_weights(
        DATA_DIR / "tiny_state_dict.tsv", DATA_DIR / "tiny_fanin_fixture.json")
