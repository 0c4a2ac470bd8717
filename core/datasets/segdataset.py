"""The SegDataset reader.

Layout (PaddleX's "SegDataset")::

    dataset_dir/
      images/          a.jpg ...
      annotations/     a.png ...   single-channel 8-bit, 0..num_classes-1, 255 = ignore
      train.txt        images/a.jpg annotations/a.png
      val.txt
      class_name.txt   optional: line i is the name of class i

**List-file lines** follow the rule written in :mod:`segzoo.datasets.listfile`
(two paths relative to ``dataset_dir``, a tab between them when a path has
spaces); :func:`read_list` and :class:`Sample` live there and are re-exported here.

Reading is kept separate from augmentation: ``SegDataset[i]`` returns the
decoded image and mask, and the training loop wraps it with its transforms.
Images are decoded EXIF-orientation-aware exactly as the checker decides (see
:mod:`segzoo.datasets._imageio`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

import numpy as np

from ..errors import DatasetError
from ._imageio import DecodeError, decode_image, decode_label
from .listfile import (  # noqa: F401  (moved; old home keeps them)
    IMAGE_EXTENSIONS,
    LineError,
    Sample,
    _list_path,
    format_list_line,
    iter_list,
    parse_list_line,
    read_list,
    recover_interrupted_split,
)

PathLike = Union[str, os.PathLike]

__all__ = [
    "Sample",
    "SegDataset",
    "read_list",
    "read_class_names",
    "read_image",
    "read_label",
    "parse_list_line",
    "format_list_line",
    "LineError",
]

CHECK_HINT = "Run `segzoo check-dataset DATASET_DIR` to list every problem at once."


def read_class_names(dataset_dir: PathLike) -> Optional[list[str]]:
    """Class names from ``dataset_dir/class_name.txt`` (line i = class i), or None if absent."""
    path = Path(dataset_dir) / "class_name.txt"
    if not path.is_file():
        return None
    with open(path, "r", encoding="utf-8-sig") as fh:
        names = [line.strip() for line in fh]
    while names and not names[-1]:
        names.pop()
    return names


def _read_bytes(path: Path, what: str, where: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise DatasetError(f"{path} ({where}): {what} file not found. Fix: restore it or remove the line.") from None
    except OSError as exc:
        raise DatasetError(f"{path} ({where}): cannot read the {what} ({exc.strerror}).") from None


def read_image(path: PathLike, *, where: str = "") -> np.ndarray:
    """Read an image as upright (EXIF-applied) 3-channel BGR ``uint8`` ``H×W×3``."""
    path = Path(path)
    where = where or str(path.name)
    data = _read_bytes(path, "image", where)
    try:
        return decode_image(data).image
    except DecodeError as exc:
        raise DatasetError(f"{path} ({where}): {exc}. Fix: re-export or remove the image.") from None


def read_label(path: PathLike, *, where: str = "") -> np.ndarray:
    """Read a mask as ``uint8`` ``H×W`` (palette PNGs give their indices).

    Multi-channel or 16-bit masks raise :class:`~segzoo.errors.DatasetError`.
    """
    path = Path(path)
    where = where or str(path.name)
    data = _read_bytes(path, "mask", where)
    try:
        dec = decode_label(data)
    except DecodeError as exc:
        raise DatasetError(f"{path} ({where}): {exc}. Fix: re-export or remove the mask.") from None
    arr = dec.array
    if arr.ndim != 2:
        raise DatasetError(
            f"{path} ({where}): the mask has {arr.shape[2]} channels; SegDataset masks are "
            f"single-channel 8-bit PNGs holding class ids. {CHECK_HINT}"
        )
    if arr.dtype != np.uint8:
        raise DatasetError(
            f"{path} ({where}): the mask is {arr.dtype}, not 8-bit. Fix: save it as an 8-bit PNG. {CHECK_HINT}"
        )
    return arr


class SegDataset:
    """Read-only access to one split of a SegDataset.

    >>> ds = SegDataset("my_dataset", split="train")
    >>> image, label = ds[0]    # H×W×3 BGR uint8, H×W uint8

    ``split`` names the list file: ``"train"`` reads ``train.txt`` (a name
    ending in ``.txt`` is used as given). ``samples`` holds the parsed
    :class:`Sample` entries; ``class_names`` the lines of ``class_name.txt`` or
    ``None``. A split interrupted by a kill is completed (or rolled back) first,
    see :func:`segzoo.datasets.split_dataset`.
    """

    def __init__(self, dataset_dir: PathLike, split: str = "train"):
        self.dataset_dir = Path(dataset_dir)
        if not self.dataset_dir.is_dir():
            raise DatasetError(f"{self.dataset_dir}: dataset directory not found.")
        recover_interrupted_split(self.dataset_dir)
        self.split = split
        name = split if split.endswith(".txt") else f"{split}.txt"
        self.list_file = _list_path(self.dataset_dir, name)
        self.samples: list[Sample] = read_list(self.dataset_dir, name)
        self.class_names: Optional[list[str]] = read_class_names(self.dataset_dir)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        s = self.samples[index]
        where = s.where()
        image = read_image(s.image, where=where)
        label = read_label(s.label, where=where)
        if image.shape[:2] != label.shape:
            raise DatasetError(
                f"{s.label} ({where}): mask is {label.shape[1]}×{label.shape[0]} but the image "
                f"{s.image_rel} is {image.shape[1]}×{image.shape[0]} (after EXIF orientation). {CHECK_HINT}"
            )
        return image, label

    def __repr__(self) -> str:
        return f"SegDataset({str(self.dataset_dir)!r}, split={self.split!r}, samples={len(self)})"
