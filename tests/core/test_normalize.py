"""``segzoo.plugin.normalize_image``: PaddleX's Normalize, looked up per channel for uint8 images."""

from __future__ import annotations

import numpy as np
import pytest

from segzoo.plugin import normalize_image


def _direct(image, mean, std):
    rgb = image[:, :, ::-1].astype(np.float32) * (1.0 / 255.0)
    return np.ascontiguousarray(((rgb - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)).transpose(2, 0, 1))


@pytest.mark.parametrize("mean, std", [([0.5] * 3, [0.5] * 3), ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
def test_the_table_gives_the_same_bits_as_computing_every_pixel(mean, std):
    # every value in every channel, in a non-contiguous view (a crop), as images arrive from a decoder
    values = np.arange(256, dtype=np.uint8)
    image = np.stack([values, values[::-1], np.roll(values, 77)], axis=-1).reshape(16, 16, 3)
    image = np.pad(image, ((2, 3), (1, 4), (0, 0)), mode="reflect")[1:-1, 2:-2]
    got = normalize_image(image, mean, std)
    assert got.dtype == np.float32 and got.shape == (3,) + image.shape[:2] and got.flags.c_contiguous
    assert np.array_equal(got.view(np.uint32), _direct(image, mean, std).view(np.uint32))
    assert got[0, 0, 0] == np.float32((image[0, 0, 2] * np.float32(1 / 255) - np.float32(mean[0])) / np.float32(std[0]))


def test_float_images_are_computed():
    image = np.random.default_rng(0).uniform(0, 255, (5, 7, 3)).astype(np.float32)
    assert np.array_equal(normalize_image(image, [0.5] * 3, [0.5] * 3), _direct(image, [0.5] * 3, [0.5] * 3))
