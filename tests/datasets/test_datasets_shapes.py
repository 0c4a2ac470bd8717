"""The drawn-shapes generator's options: shapes kept apart, contrasting colours, shape sizes."""

import cv2
import numpy as np
import pytest

from segzoo.datasets import SegDataset
from segzoo.datasets.shapes import GAP, draw_sample, make_shapes_dataset


def components(label):
    """(mask, class) of every connected shape region of ``label``."""
    count, ids = cv2.connectedComponents((label > 0).astype(np.uint8), connectivity=8)
    return [(ids == i, int(np.bincount(label[ids == i]).argmax())) for i in range(1, count)]


@pytest.mark.parametrize("seed", range(40))
def test_shapes_kept_apart_are_whole_single_class_regions_gap_pixels_apart(seed):
    image, label = draw_sample(np.random.default_rng(seed), (96, 80), max_shapes=6, min_shapes=3, overlap=False)
    parts = components(label)
    assert parts, "the first shape is always drawn"
    for mask, cls in parts:
        assert set(np.unique(label[mask])) == {cls}  # no shape drawn over another
    for i, (a, _) in enumerate(parts):
        # distance from every pixel to shape a; every other shape lies more than GAP pixels away
        dist = cv2.distanceTransform((~a).astype(np.uint8), cv2.DIST_L2, 5)
        for b, _ in parts[i + 1 :]:
            assert dist[b].min() > GAP


def test_overlapping_shapes_do_touch_sometimes():
    """The default still lets shapes overlap (what the demo model was trained on)."""
    touching = 0
    for seed in range(40):
        _, label = draw_sample(np.random.default_rng(seed), (96, 80), max_shapes=6, min_shapes=3)
        parts = components(label)
        touching += any(len(np.unique(label[m])) > 1 for m, _ in parts)
    assert touching > 0


@pytest.mark.parametrize("seed", range(40))
def test_min_contrast_sets_shapes_apart_from_their_background(seed):
    image, label = draw_sample(np.random.default_rng(seed), (96, 96), overlap=False, min_contrast=80)
    for mask, _ in components(label):
        colour = image[mask].astype(np.float64).mean(0)
        assert image[mask].std(0).max() == 0  # one flat colour
        ring = cv2.dilate(mask.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool) & (label == 0)
        # the ring's mean stands for the background under the shape (gradient and noise: a margin of 20)
        assert np.linalg.norm(colour - image[ring].astype(np.float64).mean(0)) >= 80 - 20


def test_extent_sets_the_shape_size():
    small = [(draw_sample(np.random.default_rng(s), (128, 128), 1, 1, extent=(0.05, 0.06))[1] > 0).sum()
             for s in range(10)]
    large = [(draw_sample(np.random.default_rng(s), (128, 128), 1, 1, extent=(0.3, 0.35))[1] > 0).sum()
             for s in range(10)]
    assert max(small) < min(large)


def test_make_shapes_dataset_passes_the_options_to_every_image(tmp_path):
    root = make_shapes_dataset(tmp_path / "d", num_train=6, num_val=3, size=(64, 64), seed=3,
                               image_ext=".png", overlap=False, min_contrast=80)
    rng = np.random.default_rng(3)
    for split, n in (("train", 6), ("val", 3)):
        ds = SegDataset(root, split)
        for i in range(n):
            image, label = draw_sample(rng, (64, 64), overlap=False, min_contrast=80)
            got_image, got_label = ds[i]
            np.testing.assert_array_equal(got_label, label)
            np.testing.assert_array_equal(got_image, image)
