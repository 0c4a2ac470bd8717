"""`segzoo list-models`, `info` and `plugins`, as a user runs them."""

import json
import subprocess
import sys

import pytest

from segzoo.cli import main


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "segzoo.cli", *args], capture_output=True, text=True, env=env)


def test_list_models_does_not_import_paddle():
    code = (
        "import sys; from segzoo.cli import main; rc = main(['list-models', '--json']); "
        "heavy = [m for m in ('paddle', 'paddleseg', 'cv2') if m in sys.modules]; "
        "assert not heavy, heavy; sys.exit(rc)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    cards = json.loads(out.stdout)
    assert {"PP-LiteSeg-T", "SegFormer-B5", "SeaFormer_large"} <= {c["name"] for c in cards}


def test_list_models_json_has_cards_and_config_schema(capsys):
    assert main(["list-models", "PP-LiteSeg*", "--json"]) == 0
    cards = json.loads(capsys.readouterr().out)
    assert [c["name"] for c in cards] == ["PP-LiteSeg-B", "PP-LiteSeg-T"]
    t = cards[1]
    assert t["figures"]["miou"] == 73.10 and t["figures"]["cpu_ms_hp"] == 235.01
    assert t["config"]["arm_out_chs"]["default"] == [32, 64, 128]
    assert t["export"]["onnx"] is True and t["export"]["onnx_static_hw"] is False  # shape-free pooling: one conversion
    assert "Cityscapes val" in t["eval_protocol"]


def test_list_models_table(capsys):
    assert main(["list-models", "--family", "segformer"]) == 0
    out = capsys.readouterr().out
    assert "SegFormer-B3" in out and "82.47" in out and "PP-LiteSeg" not in out
    assert "6 models" in out


def test_no_match_exits_1(capsys):
    assert main(["list-models", "nothing*"]) == 1
    assert "no model matches" in capsys.readouterr().out


def test_unknown_model_is_one_clean_line_and_exit_2():
    out = run_cli("info", "PP-LiteSeg")
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert out.stderr.strip().count("\n") == 0
    assert "Did you mean: PP-LiteSeg-T, PP-LiteSeg-B?" in out.stderr


def test_info_shows_card_and_config(capsys):
    assert main(["info", "OCRNet_HRNet-W48"]) == 0
    out = capsys.readouterr().out
    assert "OCRNet / HRNet_W48" in out and "loss_weights: (1.0, 0.4)" in out
    assert "evaluation protocol: Cityscapes val" in out


def test_plugins_lists_hooks_and_versions(capsys):
    assert main(["plugins", "--json"]) == 0
    infos = {p["name"]: p for p in json.loads(capsys.readouterr().out)}
    assert infos["SegFormer-B0"]["distribution"] == "segzoo"
    assert set(infos["SegFormer-B0"]["hooks"]) == {"model_card", "build_model", "preprocess", "postprocess", "train_step"}


@pytest.mark.parametrize("argv", [["--version"], ["list-models", "--help"]])
def test_help_and_version(argv):
    out = run_cli(*argv)
    assert out.returncode == 0 and out.stdout


def test_the_model_count_says_what_it_is_made_of(capsys):
    """Issue 28 item 11: list-models' footer and the README agree with the cards: PaddleX's 18 plus which two."""
    from pathlib import Path

    from segzoo import get_registry

    cards = get_registry().cards()
    official = [c for c in cards if c.official is not None]
    timed = [c.name for c in official if c.figures.cpu_ms or c.figures.gpu_ms]
    untimed = [c.name for c in official if c.name not in timed]
    assert len(timed) == 18 and len(untimed) == 2
    assert main(["list-models"]) == 0
    footer = capsys.readouterr().out.splitlines()[-2]
    assert footer.startswith(f"{len(cards)} models: 18 with PaddleX's published times, plus 2 with its mIoU only "
                             f"({', '.join(untimed)})"), footer
    readme = " ".join((Path(__file__).parents[2] / "README.md").read_text().split())
    assert f"all {len(official)} models of PaddleX's semantic-segmentation module (its page says 18 but lists " \
           f"{len(official)}: the 18 with published speeds, plus {' and '.join(sorted(untimed, reverse=True))}" in readme
