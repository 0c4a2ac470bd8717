"""Training augmentations and the sample order: sizes, label handling, determinism, sharding."""

from __future__ import annotations

import numpy as np
import pytest

from segzoo.config import AugmentConfig
from segzoo.datasets.shapes import draw_sample
from segzoo.training.data import _stream_keys
from segzoo.training.transforms import Augment, random_distort, random_flip, random_pad_crop, random_scale


@pytest.fixture
def pair():
    return draw_sample(np.random.default_rng(5), (48, 40))  # W 48, H 40


def test_scale_uses_the_step_grid_and_nearest_labels(pair):
    image, label = pair
    sizes = set()
    for seed in range(40):
        im, lab = random_scale(image, label, np.random.default_rng(seed), 0.5, 2.0, 0.5)
        assert im.shape[:2] == lab.shape
        sizes.add(lab.shape)
        # nearest-neighbour resizing creates no new label values
        assert set(np.unique(lab)) <= set(np.unique(label))
    # factors 0.5, 1.0, 1.5, 2.0 on 48×40
    assert sizes == {(20, 24), (40, 48), (60, 72), (80, 96)}


def test_pad_crop_pads_labels_with_ignore_and_keeps_alignment(pair):
    image, label = pair
    im, lab = random_pad_crop(image, label, np.random.default_rng(0), (64, 50), ignore_index=255)
    assert im.shape == (50, 64, 3) and lab.shape == (50, 64)
    # the image is never shifted when it is smaller than the crop: the pad is right/bottom
    np.testing.assert_array_equal(lab[:40, :48], label)
    assert (lab[40:, :] == 255).all() and (lab[:, 48:] == 255).all()
    assert (im[40:, :] == 127).all()
    # a crop of a larger image is a window of it, the same window for image and label
    big_im, big_lab = draw_sample(np.random.default_rng(1), (100, 90))
    for seed in range(5):
        im, lab = random_pad_crop(big_im, big_lab, np.random.default_rng(seed), (32, 24))
        assert im.shape == (24, 32, 3)
        hits = [(y, x) for y in range(90 - 23) for x in range(100 - 31)
                if np.array_equal(big_lab[y:y + 24, x:x + 32], lab) and np.array_equal(big_im[y:y + 24, x:x + 32], im)]
        assert hits


def test_flip_mirrors_both(pair):
    image, label = pair
    im, lab = random_flip(image, label, np.random.default_rng(0), prob=1.0)
    np.testing.assert_array_equal(lab, label[:, ::-1])
    np.testing.assert_array_equal(im, image[:, ::-1])
    im, lab = random_flip(image, label, np.random.default_rng(0), prob=0.0)
    assert lab is label


def test_distort_changes_only_the_image_values_within_range(pair):
    image, _ = pair
    out = random_distort(image, np.random.default_rng(0), 1.0, 0.4, 0.4, 0.4)
    assert out.dtype == np.uint8 and out.shape == image.shape
    assert not np.array_equal(out, image)
    same = random_distort(image, np.random.default_rng(0), 0.0, 0.4, 0.4, 0.4)
    assert same is image
    # brightness only: every pixel scaled by one factor within 1 ± 0.4
    bright = random_distort(image, np.random.default_rng(3), 1.0, 0.4, 0.0, 0.0)
    mask = (image > 20) & (image < 150)
    ratio = bright[mask].astype(float) / image[mask]
    assert 0.6 - 0.05 <= ratio.min() and ratio.max() <= 1.4 + 0.05
    assert np.ptp(ratio) < 0.1


def test_augment_is_deterministic_per_generator_and_exact_size(pair):
    image, label = pair
    aug = Augment.from_config(AugmentConfig(), (32, 32))
    a = aug(image, label, np.random.default_rng([0, 1, 2]))
    b = aug(image, label, np.random.default_rng([0, 1, 2]))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert a[0].shape == (32, 32, 3) and a[1].shape == (32, 32)
    outs = {aug(image, label, np.random.default_rng([0, 1, i]))[1].tobytes() for i in range(6)}
    assert len(outs) > 1


def test_stream_covers_each_epoch_once_and_is_position_addressed():
    n = 7
    keys = _stream_keys(n, seed=3, start=0, count=3 * n)
    for epoch in range(3):
        part = keys[epoch * n : (epoch + 1) * n]
        assert {e for e, _ in part} == {epoch}
        assert sorted(i for _, i in part) == list(range(n))
    # starting in the middle gives the same keys as slicing the whole stream (what resuming relies on)
    assert _stream_keys(n, 3, 5, 9) == keys[5:14]
    assert _stream_keys(n, 4, 0, n) != keys[:n]  # the seed changes the order


def test_sampler_gives_each_rank_its_own_share():
    from segzoo.training.data import batch_sampler_class

    class DS:
        def __len__(self):
            return 10

    cls = batch_sampler_class()
    r0 = list(cls(DS(), 2, seed=0, start_iter=0, total_iters=5, num_replicas=2, rank=0))
    r1 = list(cls(DS(), 2, seed=0, start_iter=0, total_iters=5, num_replicas=2, rank=1))
    assert len(r0) == len(r1) == 5 and all(len(b) == 2 for b in r0 + r1)
    for b0, b1 in zip(r0, r1):
        assert not set(b0) & set(b1)
    first_epoch = [k for b0, b1 in zip(r0[:2], r1[:2]) for k in b0 + b1]
    assert sorted(i for _, i in first_epoch[:8]) == sorted(set(i for _, i in first_epoch[:8]))
    resumed = list(cls(DS(), 2, seed=0, start_iter=3, total_iters=5, num_replicas=2, rank=1))
    assert resumed == r1[3:]
