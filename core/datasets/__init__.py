"""Datasets: the SegDataset reader, checker, LabelMe converter and splitter.

Plain numpy/OpenCV: nothing here imports paddle. The names below are loaded
on first use, so ``import segzoo.datasets.cli`` (done by ``segzoo --help``)
does not import OpenCV.

>>> from segzoo.datasets import SegDataset, check_dataset
>>> result = check_dataset("my_dataset", "output/check_dataset")
>>> result["check_pass"], result["attributes"]["num_classes"]
>>> image, label = SegDataset("my_dataset", "train")[0]

Public API::

    read_list(dataset_dir, list_file) -> list[Sample]
    SegDataset(dataset_dir, split="train")      # len, [i] -> (BGR uint8 H×W×3, uint8 H×W)
    read_image(path) / read_label(path) / read_class_names(dataset_dir)
    check_dataset(dataset_dir, output_dir, num_classes=None, sample_num=10, progress=True) -> dict
    check_dataset_from_config(check_cfg, dataset_dir, output_dir, *, num_classes=None, ...) -> dict
    convert_labelme(src_dir, dst_dir, *, overwrite=False, val_percent=20, seed=0) -> ConversionReport
    split_dataset(dataset_dir, train_percent, val_percent, seed=0) -> dict
    recover_interrupted_split(dataset_dir) -> bool
    voc_palette(n=256) / colorize(label, *, bgr=False) / overlay(image_bgr, label, alpha=0.5)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

_EXPORTS = {
    "PROBLEM_CODES": ".check",
    "check_dataset": ".check",
    "check_dataset_from_config": ".check",
    "ConversionReport": ".labelme",
    "convert_labelme": ".labelme",
    "colorize": ".palette",
    "overlay": ".palette",
    "voc_palette": ".palette",
    "Sample": ".listfile",
    "SegDataset": ".segdataset",
    "read_class_names": ".segdataset",
    "read_image": ".segdataset",
    "read_label": ".segdataset",
    "read_list": ".listfile",
    "recover_interrupted_split": ".listfile",
    "split_dataset": ".split",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    from .check import PROBLEM_CODES, check_dataset, check_dataset_from_config
    from .labelme import ConversionReport, convert_labelme
    from .listfile import Sample, read_list, recover_interrupted_split
    from .palette import colorize, overlay, voc_palette
    from .segdataset import SegDataset, read_class_names, read_image, read_label
    from .split import split_dataset
