"""Isolation of every test from the user's caches and from the network.

* ``SEGZOO_HOME`` (segzoo's cache) and ``PADDLE_PDX_CACHE_HOME`` (PaddleX's)
  point into a temporary directory for the whole session; module fixtures may
  point ``SEGZOO_HOME`` elsewhere, and tests that fill caches use their own
  (``tests/core/test_official.py``).
* ``SEGZOO_MODEL_BASE_URL`` points at a dead local address, so nothing a test
  does can download from PaddleX's host; tests that download start a local
  server and point it there.
* ``SEGZOO_OFFLINE`` and ``SEGZOO_MODEL_MIRROR`` of the developer's shell are
  removed.
* ``SEGZOO_PRECISION=fp32``: the openvino engine runs fp32 when no precision is
  asked for, as the tests that compare it with dygraph expect, instead of
  measuring bf16's agreement once per set of weights (a few seconds each);
  ``tests/inference/test_int8_precision.py`` removes it to test that rule.

The variables are set in ``os.environ``, so subprocesses started by tests
inherit them.
"""

from __future__ import annotations

import os

import pytest

#: nothing listens there: a download that escapes a test fails at once (connection refused)
DEAD_BASE_URL = "http://127.0.0.1:9/"


@pytest.fixture(autouse=True, scope="session")
def _isolated_caches_and_network(tmp_path_factory):
    root = tmp_path_factory.mktemp("isolated")
    values = {
        "SEGZOO_HOME": str(root / "segzoo_home"),
        "PADDLE_PDX_CACHE_HOME": str(root / "paddlex_home"),
        "SEGZOO_MODEL_BASE_URL": DEAD_BASE_URL,
        "SEGZOO_PRECISION": "fp32",
    }
    with pytest.MonkeyPatch.context() as mp:
        for key, value in values.items():
            mp.setenv(key, value)
        for key in ("SEGZOO_OFFLINE", "SEGZOO_MODEL_MIRROR"):
            mp.delenv(key, raising=False)
        yield


@pytest.fixture(autouse=True)
def _no_network_by_default(monkeypatch):
    """Each test starts with the dead base URL and no offline/mirror setting, whatever the last test did."""
    monkeypatch.setenv("SEGZOO_MODEL_BASE_URL", DEAD_BASE_URL)
    monkeypatch.delenv("SEGZOO_OFFLINE", raising=False)
    monkeypatch.delenv("SEGZOO_MODEL_MIRROR", raising=False)
