"""target_size semantics and priority, each image at its own size (padding only for a card's pad_to), batches, sliding windows."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import yaml

from segzoo import ConfigError
from segzoo.inference import Predictor, create_model
from segzoo.inference.predictor import resize_scores
from segzoo.inference.sizes import ResizePlan, parse_size, resolve_target_size, window_grid


@pytest.mark.parametrize(
    "value, want",
    [
        (None, None),
        (-1, (-1, -1)),
        ((-1, -1), (-1, -1)),
        ("-1", (-1, -1)),
        (512, (512, 512)),
        (np.int64(64), (64, 64)),
        ((1024, 512), (1024, 512)),
        ([640, 480], (640, 480)),
        ("1024,512", (1024, 512)),
        ("1024x512", (1024, 512)),
        (np.array([32, 16]), (32, 16)),
    ],
)
def test_parse_size(value, want):
    assert parse_size(value) == want


@pytest.mark.parametrize("value", [0, -2, (0, 5), (5, -3), "abc", 1.5, True, (1, 2, 3), (1.5, 2)])
def test_parse_size_rejects(value):
    with pytest.raises(ConfigError, match="target_size"):
        parse_size(value)


def test_resolve_priority_and_keep_ratio_plan():
    yml = ResizePlan((64, 64), keep_ratio=True, size_divisor=32)
    assert resolve_target_size(None, None, yml) is yml
    assert resolve_target_size(None, 100, yml).size == (100, 100)
    assert resolve_target_size((30, 20), 100, yml).size == (30, 20)
    assert resolve_target_size(-1, 100, yml).is_original
    assert resolve_target_size(None, None, None).is_original
    # PaddleX's keep-ratio box: 200×100 into 64×64 → 64×32, then up to multiples of 32
    assert yml.output_size(200, 100) == (64, 32)
    assert ResizePlan((64, 64), keep_ratio=True, size_divisor=None).output_size(300, 100) == (64, 21)
    assert ResizePlan((50, 20)).output_size(300, 100) == (50, 20)


def test_target_size_priority_as_seen_by_the_network(point, make_image):
    """predict() argument > create_model() argument > original size; the mask is at the original size."""
    image = make_image(1, (100, 70))
    layer = point.layer
    point.target_size = (64, 48)
    res = next(point.predict(image))
    assert layer.seen[-1] == (1, 3, 48, 64)
    assert res.pred.shape == (70, 100)
    next(point.predict(image, target_size=32))
    assert layer.seen[-1] == (1, 3, 32, 32)
    next(point.predict(image, target_size=-1))
    assert layer.seen[-1] == (1, 3, 70, 100)  # the original size, not padded
    point.target_size = None
    next(point.predict(image))
    assert layer.seen[-1] == (1, 3, 70, 100)
    with pytest.raises(ConfigError, match="target_size"):
        point.predict(image, target_size=(0, 4))


def test_resized_scores_come_back_bilinearly(point, make_image, point_numpy_scores):
    """With a target_size, scores are resized bilinearly to the original size before the argmax."""
    image = make_image(2, (90, 50))
    small = cv2.resize(image, (40, 24), interpolation=cv2.INTER_LINEAR)
    scores = resize_scores(point_numpy_scores(point.layer, point.config, small), (90, 50))
    got = next(point.predict(image, target_size=(40, 24))).pred
    assert got.shape == (50, 90)
    assert np.array_equal(got, np.argmax(scores, axis=0))
    assert np.allclose(point.predict_scores([image], target_size=(40, 24))[0], scores, atol=1e-5)
    # bilinear, not nearest: the resized scores take values between the small map's
    nearest = cv2.resize(point_numpy_scores(point.layer, point.config, small).transpose(1, 2, 0), (90, 50),
                         interpolation=cv2.INTER_NEAREST).transpose(2, 0, 1)
    assert not np.allclose(scores, nearest, atol=1e-3)


def test_yml_resize_is_the_lowest_level(tiny, make_image, tmp_path):
    """A Resize in inference.yml applies unless create_model() or predict() say otherwise."""
    import shutil

    image = make_image(3, (83, 61))
    resized_dir = tmp_path / "with_resize"
    shutil.copytree(tiny.export_dir, resized_dir)
    data = yaml.safe_load((resized_dir / "inference.yml").read_text())
    data["Deploy"]["transforms"].insert(0, {"type": "Resize", "target_size": [64, 32], "keep_ratio": False})
    (resized_dir / "inference.yml").write_text(yaml.safe_dump(data))
    plain = create_model(tiny.name, model_dir=tiny.export_dir)
    with_resize = create_model(tiny.name, model_dir=resized_dir)
    at_64x32 = plain.predict_arrays([image], target_size=(64, 32))[0]
    original = plain.predict_arrays([image])[0]
    assert not np.array_equal(at_64x32, original), "the test image must tell the two sizes apart"
    assert np.array_equal(with_resize.predict_arrays([image])[0], at_64x32)
    assert np.array_equal(with_resize.predict_arrays([image], target_size=-1)[0], original)
    overridden = create_model(tiny.name, model_dir=resized_dir, target_size=-1)
    assert np.array_equal(overridden.predict_arrays([image])[0], original)
    assert with_resize.predict_arrays([image])[0].shape == (61, 83)


# -- each image at its own size ------------------------------------------------------------------------
def test_odd_size_is_fed_at_its_own_size(tiny, make_image):
    """37×53 goes into the network as 37×53 (no padding), as paddleseg and PaddleX feed it."""
    import paddle

    image = make_image(4, (53, 37))
    got = tiny.predictor.predict_arrays([image])[0]
    assert got.shape == (37, 53) and got.dtype == np.uint8
    registry = tiny.predictor.registry
    chw = registry.preprocess(tiny.name, tiny.config, image)
    with paddle.no_grad():
        own = registry.postprocess(tiny.name, tiny.config, tiny.layer(paddle.to_tensor(chw[None]))).numpy()[0]
        padded = np.zeros((1, 3, 64, 64), np.float32)
        padded[0, :, :37, :53] = chw
        pad = registry.postprocess(tiny.name, tiny.config, tiny.layer(paddle.to_tensor(padded))).numpy()[0]
    assert np.array_equal(got, own.argmax(0))
    assert not np.array_equal(got, pad[:, :37, :53].argmax(0)), "padding must change this model's mask (global context)"
    # the engine through Paddle Inference agrees
    exported = create_model(tiny.name, model_dir=tiny.export_dir).predict_arrays([image])[0]
    assert (exported == got).mean() >= 0.999


def test_pad_to_pads_with_zeros_and_crops_back(padded_point_model, make_image, point_numpy_scores):
    """A card's pad_to: 37×53 → padded to 48×64 with 0 after normalising (the mean colour), cropped back."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = create_model(padded_point_model, device="cpu", pretrained=False, engine="dygraph")
    image = make_image(4, (53, 37))
    got = model.predict_scores([image])[0]
    assert model.layer.seen == [(1, 3, 48, 64)]
    assert np.allclose(got, point_numpy_scores(model.layer, model.config, image), atol=1e-5)
    model.layer.seen.clear()
    model.predict_scores([image], slide_window=(20, 20), slide_stride=(16, 16))
    assert {s[2:] for s in model.layer.seen} == {(32, 32)}, "windows are padded to pad_to too"


def test_pointwise_model_matches_numpy_exactly_at_odd_sizes(point, make_image, point_numpy_scores):
    for size in [(53, 37), (16, 16), (17, 1), (1, 33)]:
        image = make_image(5, size) if min(size) > 8 else np.random.default_rng(0).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
        want = point_numpy_scores(point.layer, point.config, image).argmax(0)
        got = point.predict_arrays([image])[0]
        assert got.shape == image.shape[:2]
        assert np.array_equal(got, want), size


# -- batches -------------------------------------------------------------------------------------------
def test_batch_of_different_sizes_equals_one_by_one(tiny, make_image):
    images = [
        make_image(20, (53, 37)),
        make_image(21, (64, 64)),
        make_image(22, (50, 60)),
        make_image(23, (60, 60)),
        make_image(24, (100, 30)),
        make_image(25, (64, 64)),
    ]
    one = [tiny.predictor.predict_arrays([img])[0] for img in images]
    for batch_size in (2, 4, 6):
        batched = [r.pred for r in tiny.predictor.predict(images, batch_size=batch_size)]
        for i, (a, b) in enumerate(zip(batched, one)):
            assert a.shape == images[i].shape[:2]
            assert (a == b).mean() >= 0.999, (batch_size, i)
    assert all(np.array_equal(a, b) for a, b in zip(tiny.predictor.predict_arrays(images, batch_size=3), one))


def test_only_images_of_the_same_size_run_as_one_batch(point, make_image):
    images = [make_image(30, (60, 60)), make_image(31, (64, 64)), make_image(32, (40, 40)), make_image(33, (50, 60)),
              make_image(34, (60, 60))]
    point.predict_arrays(images, batch_size=5)
    assert sorted(point.layer.seen) == [(1, 3, 40, 40), (1, 3, 60, 50), (1, 3, 64, 64), (2, 3, 60, 60)]


def test_bad_batch_size(tiny, make_image):
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ConfigError, match="batch_size"):
            tiny.predictor.predict(make_image(1), batch_size=bad)


# -- sliding windows -----------------------------------------------------------------------------------
def test_window_grid_covers_the_image():
    boxes = window_grid(50, 70, (32, 32), (24, 24))
    cover = np.zeros((50, 70), int)
    for y1, y2, x1, x2 in boxes:
        assert (y2 - y1, x2 - x1) == (32, 32)
        cover[y1:y2, x1:x2] += 1
    assert cover.min() >= 1
    assert window_grid(20, 20, (32, 32), (24, 24)) == [(0, 20, 0, 20)]


def test_slide_equals_whole_image_for_a_pointwise_model(point, make_image):
    image = make_image(40, (97, 75))
    whole = point.predict_scores([image], max_pixels=None)[0]
    slid = point.predict_scores([image], slide_window=(32, 32), slide_stride=(20, 24))[0]
    assert np.allclose(whole, slid, atol=1e-5)
    assert np.array_equal(
        next(point.predict(image, slide_window=(32, 32))).pred, next(point.predict(image, max_pixels=None)).pred
    )


def test_slide_averages_the_window_scores(tiny, make_image):
    """Stitched scores == the average, computed by hand, of every window's scores."""
    image = make_image(41, (100, 70))
    window, stride = (64, 48), (40, 30)
    slid = tiny.predictor.predict_scores([image], slide_window=window, slide_stride=stride)[0]
    total = np.zeros_like(slid)
    count = np.zeros(image.shape[:2])
    for y1, y2, x1, x2 in window_grid(70, 100, window, stride):
        crop = np.ascontiguousarray(image[y1:y2, x1:x2])
        total[:, y1:y2, x1:x2] += tiny.predictor.predict_scores([crop], max_pixels=None)[0]
        count[y1:y2, x1:x2] += 1
    assert count.max() > 1, "the windows must overlap for this test to mean anything"
    assert np.allclose(slid, total / count, atol=1e-5)
    whole = tiny.predictor.predict_scores([image], max_pixels=None)[0]
    assert not np.allclose(slid, whole, atol=1e-3), "a model with global context differs when sliding"


def test_large_images_slide_automatically(point, make_image):
    image = make_image(42, (90, 70))
    auto = point.predict_scores([image], max_pixels=1000)[0]
    point.layer.seen.clear()
    explicit = point.predict_scores([image], slide_window=(32, 32), slide_stride=(24, 24))[0]
    assert {s[2:] for s in point.layer.seen} == {(32, 32)}
    assert np.allclose(auto, explicit)
    with pytest.raises(ConfigError, match="max_pixels"):
        point.predict_scores([image], max_pixels=0)


def test_slide_needs_scores(tiny, make_image, caplog):
    exported = create_model(tiny.name, model_dir=tiny.export_dir)
    with pytest.raises(ConfigError, match="labels only"):
        exported.predict(make_image(1), slide_window=(32, 32))
    with pytest.raises(ConfigError, match="labels only"):
        exported.predict_arrays([make_image(1, (90, 70))], max_pixels=1000)
    # by default a labels-only engine predicts large images whole, and says so
    small_limit = create_model(tiny.name, model_dir=tiny.export_dir, max_pixels=1000)
    image = make_image(1, (90, 70))
    with caplog.at_level("WARNING", logger="segzoo"):
        got = small_limit.predict_arrays([image])[0]
    assert "predicted whole, not window by window" in caplog.text
    assert np.array_equal(got, exported.predict_arrays([image])[0])
    with pytest.raises(ConfigError, match="slide_stride .* larger than slide_window"):
        tiny.predictor.predict(make_image(1), slide_window=(16, 16), slide_stride=(32, 8))
    with pytest.raises(ConfigError, match="slide_window is not"):
        tiny.predictor.predict(make_image(1), slide_stride=(8, 8))


def test_from_model_restores_train_mode(tiny, make_image):
    tiny.layer.train()
    try:
        Predictor.from_model(tiny.name, tiny.config.model_dump(), tiny.layer).predict_arrays([make_image(1)])
        assert tiny.layer.training
    finally:
        tiny.layer.eval()


@pytest.mark.parametrize("text", ["10,x", "300x", "x200", "10,", "1,2,3", "10 20", "3.5", "512px", "-1,5"])
def test_a_size_written_otherwise_is_an_error_not_a_guess(text):
    """Only N, -1, W,H and WxH are sizes: '10,x' was once read as 10×10."""
    with pytest.raises(ConfigError, match=r"--target-size: .* is not a size; write -1 \(original size\), N for N×N, or W,H"):
        parse_size(text, "--target-size")


@pytest.mark.parametrize("text, want", [("300x200", (300, 200)), ("300X200", (300, 200)), (" 1024 , 512 ", (1024, 512)),
                                        ("-1", (-1, -1)), ("64", (64, 64))])
def test_the_documented_size_forms(text, want):
    assert parse_size(text, "--target-size") == want
