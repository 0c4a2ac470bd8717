"""The last bad inputs of prediction: one line naming the culprit, exit 2, nothing written, nothing blocks.

Pipes and devices, URL schemes other than http(s), target sizes whose buffers cannot fit, and output
paths that are existing files. The CLI runs in a daemon thread with a time limit, so an input that
blocks fails the test instead of hanging it.
"""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

import segzoo
from segzoo.cli import main
from segzoo.errors import ConfigError, InputError
from segzoo.inference import Predictor
from segzoo.inference.inputs import _read_bytes, check_inputs, iter_inputs
from segzoo.inference.result import SegResult
from segzoo.weights import save_weights

SUFFIXES = ".png, .jpg, .jpeg, .bmp, .webp, .tif, .tiff"


def run_cli(args, timeout: float = 120.0) -> int:
    """``main(args)`` in a daemon thread; fails (instead of hanging) if it does not return in time."""
    box = {}
    thread = threading.Thread(target=lambda: box.setdefault("rc", main([str(a) for a in args])), daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"segzoo {' '.join(map(str, args))} did not return within {timeout} s"
    return box["rc"]


def last_err(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def point_weights(point_model, tmp_path_factory):
    """Weights of the pointwise test model (3 classes), as a .pdparams file."""
    registry = segzoo.get_registry()
    layer = registry.build_model(point_model, registry.config(point_model))
    return save_weights(layer, tmp_path_factory.mktemp("point") / "model.pdparams")


@pytest.fixture()
def cli(point_model, point_weights, tmp_path):
    """``segzoo predict`` of the point model, writing to ``tmp_path/out``, with extra arguments."""
    out = tmp_path / "out"

    def predict(*extra, output=out):
        return run_cli(["predict", "--model", point_model, "--model-dir", point_weights, "--engine", "dygraph",
                        "--device", "cpu", "--output", output, "--quiet", *extra])

    predict.out = out
    return predict


@pytest.fixture()
def image(tmp_path, make_image, save_image):
    return save_image(tmp_path / "in" / "a.png", make_image(1, (40, 30)))


# -- pipes, devices ------------------------------------------------------------------------------------------
def test_a_fifo_is_refused_not_read(cli, tmp_path, capsys):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    assert cli("--input", fifo) == 2
    assert last_err(capsys) == (
        f"segzoo predict: error: input {fifo} is a named pipe (FIFO), not a regular file; give image files, PDFs, "
        "directories or http(s) URLs (segzoo never reads from pipes or devices)"
    )
    assert not cli.out.exists()
    with pytest.raises(InputError, match="is a named pipe"):  # the API, lazily
        next(iter_inputs(str(fifo)))
    with pytest.raises(InputError, match="is a named pipe"):  # a pipe swapped in after the checks: not waited on
        _read_bytes(fifo)


def test_a_device_is_refused(cli, capsys):
    assert cli("--input", "/dev/null") == 2
    assert last_err(capsys) == (
        "segzoo predict: error: input /dev/null is a character device, not a regular file; give image files, "
        "PDFs, directories or http(s) URLs (segzoo never reads from pipes or devices)"
    )
    assert not cli.out.exists()


def test_a_fifo_inside_a_directory_fails_the_whole_run_before_anything_is_written(cli, image, capsys):
    fifo = image.parent / "b.png"
    os.mkfifo(fifo)
    os.mkfifo(image.parent / "notes.fifo")  # not an image name: ignored like any other non-image file
    assert cli("--input", image.parent) == 2
    assert last_err(capsys) == (
        f"segzoo predict: error: input {fifo} (in directory {image.parent}) is a named pipe (FIFO), not a regular "
        "file; give image files, PDFs, directories or http(s) URLs (segzoo never reads from pipes or devices)"
    )
    assert not cli.out.exists()  # a.png, before the pipe, was not predicted either
    fifo.unlink()
    assert check_inputs([str(image.parent)]) == 1


# -- URL schemes ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "url, message",
    [
        ("ftp://host/a.png", "input ftp://host/a.png: the URL scheme 'ftp' is not supported; segzoo reads "
         "http:// and https:// URLs and local paths"),
        ("file:///etc/passwd", "input file:///etc/passwd: the URL scheme 'file' is not supported; segzoo reads "
         "http:// and https:// URLs and local paths (for a local file, give its path: /etc/passwd)"),
    ],
)
def test_url_schemes_other_than_http_are_named(cli, url, message, capsys):
    assert cli("--input", url) == 2
    assert last_err(capsys) == f"segzoo predict: error: {message}"
    assert not cli.out.exists()
    with pytest.raises(InputError) as info:
        next(iter_inputs([url]))
    assert str(info.value) == message


# -- the pixel limit -----------------------------------------------------------------------------------------
def test_a_target_size_above_the_pixel_limit(cli, image, point_model, point_weights, capsys):
    assert cli("--input", image, "--target-size", "100000") == 2
    assert last_err(capsys) == (
        "segzoo predict: error: --target-size 100000×100000 = 10,000,000,000 pixels is above the limit of "
        "178,956,970 pixels per image; choose a smaller size, or raise the limit with --pixel-limit N "
        "(pixel_limit=N in create_model)"
    )
    assert not cli.out.exists()

    # the limit is what the message says, and raising it works
    assert cli("--input", image, "--target-size", "300", "--pixel-limit", "50000") == 2
    assert last_err(capsys) == (
        "segzoo predict: error: --target-size 300×300 = 90,000 pixels is above the limit of 50,000 pixels per "
        "image; choose a smaller size, or raise the limit with --pixel-limit N (pixel_limit=N in create_model)"
    )
    assert cli("--input", image, "--target-size", "300", "--pixel-limit", "90000") == 0
    assert sorted(p.name for p in cli.out.iterdir()) == ["a_overlay.png", "a_res.json", "a_res.png"]

    # the API: create_model, predict(), and sizes that depend on the image (checked per image)
    with pytest.raises(ConfigError) as info:
        segzoo.create_model(point_model, model_dir=point_weights, target_size=(20000, 10000), device="cpu")
    assert str(info.value) == (
        "target_size 20000×10000 = 200,000,000 pixels is above the limit of 178,956,970 pixels per image; "
        "choose a smaller size, or raise the limit with --pixel-limit N (pixel_limit=N in create_model)"
    )
    model = segzoo.create_model(point_model, model_dir=point_weights, device="cpu", pixel_limit=2000)
    with pytest.raises(ConfigError, match=r"^target_size 100000×100000 = 10,000,000,000 pixels is above the limit "
                       r"of 2,000 pixels per image"):
        model.predict(np.zeros((8, 8, 3), np.uint8), target_size=100000)
    (res,) = model.predict(np.zeros((30, 40, 3), np.uint8), target_size=-1)  # 1,200 pixels: within 2,000
    assert res.pred.shape == (30, 40)
    layer = model.layer
    small = Predictor.from_model(point_model, model.config, layer, pixel_limit=1000)
    with pytest.raises(ConfigError) as info:
        small.predict_arrays([np.zeros((30, 40, 3), np.uint8)], target_size=-1)
    assert str(info.value) == (
        "image 0 of the batch (40×30) would be 40×30 = 1,200 pixels after resizing, above the limit of 1,000 "
        "pixels per image; choose a smaller target size, or raise the limit with --pixel-limit N (pixel_limit=N "
        "in create_model)"
    )


# -- output paths that are files -----------------------------------------------------------------------------
def test_output_naming_an_existing_file(cli, image, tmp_path, capsys):
    target = tmp_path / "results.txt"
    target.write_text("keep me\n")
    assert cli("--input", image, output=target) == 2
    assert last_err(capsys) == (
        f"segzoo predict: error: --output {target}: it is an existing file; give a directory path (created if missing)"
    )
    assert target.read_text() == "keep me\n"


def test_save_to_a_path_that_is_an_existing_file(tmp_path):
    res = SegResult(np.zeros((4, 5), np.uint8), np.zeros((4, 5, 3), np.uint8), name="x")
    target = tmp_path / "a_file"
    target.write_text("keep me\n")
    with pytest.raises(ConfigError) as info:
        res.save_to_img(target)
    assert str(info.value) == (
        f"save path {target}: it is an existing file, not a directory; give a directory (created if missing) "
        f"or a file name ending in {SUFFIXES} for the image"
    )
    with pytest.raises(ConfigError) as info:
        res.save_to_json(target)
    assert str(info.value) == (
        f"save path {target}: it is an existing file, not a directory; give a directory (created if missing) "
        "or a file name ending in .json for the json"
    )
    with pytest.raises(ConfigError) as info:
        res.save_to_img(target / "x.png")
    assert str(info.value) == (
        f"save path folder {target}: it is an existing file; give a directory path (created if missing)"
    )
    assert target.read_text() == "keep me\n" and sorted(os.listdir(tmp_path)) == ["a_file"]
    assert res.save_to_json(tmp_path / "out").is_file()  # a directory path still works
