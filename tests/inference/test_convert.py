"""The conversion child: started ahead of its program, stopped when it gets none, and its errors name the file."""

from __future__ import annotations

import pytest

from segzoo.errors import ExportError
from segzoo.inference.convert import Conversion, convert_to_onnx


def test_a_child_that_gets_no_program_is_stopped_on_exit():
    with Conversion() as conversion:
        assert conversion.proc.poll() is None  # importing paddle2onnx while the caller writes the program
    assert conversion.proc.poll() is not None


def test_a_conversion_of_a_missing_program_names_it(tmp_path):
    missing = tmp_path / "no_such" / "inference.json"
    with pytest.raises(ExportError, match=r"conversion of .*no_such.*inference\.json is not usable"):
        convert_to_onnx(missing, missing.with_suffix(".pdiparams"), tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()
