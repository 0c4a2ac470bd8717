"""The dataset check's entry: prepare (convert, split), check a SegDataset and write the result JSON.

Find every problem before training does. The scanning lives in
:mod:`segzoo.datasets.scan`, the problem record and whole-dataset checks in
:mod:`segzoo.datasets.problems`, the pictures in :mod:`segzoo.datasets.report`.

:func:`check_dataset` streams over ``train.txt`` then ``val.txt``, decodes
every image and mask once, and writes into ``output_dir``:

* ``check_dataset_result.json`` -- PaddleX's keys (``done_flag``,
  ``check_pass``, ``attributes``, ``analysis``, ``dataset_path``,
  ``show_type``, ``dataset_type``) plus ``errors`` (every problem, each
  ``{file, line, code, message, list_file}``), ``error_counts``,
  ``warnings``, ``class_stats`` and ``num_classes_source``;
* ``histogram.png`` -- images per class and pixel share per class, train vs
  val;
* ``demo_img/train_NNN_<name>.png`` and ``demo_img/val_NNN_<name>.png`` --
  the first ``sample_num`` readable samples of each split, blended with their
  mask in the VOC palette.

Paths in the JSON (``analysis.histogram``, ``*_sample_paths``) are relative
to ``output_dir``; a problem's ``file`` is relative to the dataset root (the
list file for list problems, else the image or mask), ``line`` is the list
line that names it (``null`` for problems of a whole file or split), and
``list_file`` the list it is in.

Problem codes (each makes ``check_pass`` false):

=========================== ===================================================
``missing_list_file``       ``train.txt`` or ``val.txt`` is absent
``unreadable_list_file``    a list file the OS refuses to read
``empty_split``             a list file without any sample line
``bad_line``                a line that is not two paths (or not UTF-8)
``outside_root``            a path outside the dataset root (``../x``, ``/abs``)
``missing_image``           the image a line names does not exist
``missing_label``           the mask a line names does not exist
``empty_file``              a 0-byte image or mask
``unreadable_file``         a file the OS refuses to read (permissions, ...)
``corrupt_image``           an image that does not decode (or is truncated)
``corrupt_label``           a mask that does not decode (or is truncated)
``label_jpeg``              a mask stored as JPEG (lossy: class ids are smeared)
``label_not_single_channel`` an RGB/RGBA/gray+alpha mask (a palette PNG whose
                            indices are class ids is fine)
``label_not_8bit``          a 16-bit mask
``label_0_255``             a binary mask stored as 0/255 (255 means *ignore*)
``label_out_of_range``      values >= ``num_classes`` other than 255 (named)
``size_mismatch``           image and mask sizes differ
``exif_orientation``        the image's EXIF orientation turns it to a size the
                            mask does not have (the mask fits the stored pixels)
``duplicate_entry``         the same image/mask pair twice in one list
``train_val_overlap``       the same image in train and val
``class_missing_in_train``  a class present in val but never in train
=========================== ===================================================

``label_0_255`` is decided over the whole dataset: a mask whose values are
exactly {0, 255} is flagged when ``num_classes`` is at most 2 (given or
inferred) or when no other mask uses 255 next to a foreground class -- i.e.
when 255 cannot be an ignore value there.

If ``num_classes`` is ``None`` it is inferred as the largest value in the
train masks (255 excluded) plus one, and recorded with
``num_classes_source: "inferred from train"``.

**Memory** does not grow with the dataset: samples are streamed; what is kept
is per-class counters (256 entries), at most ``sample_num`` overlays on disk,
at most 1000 detailed problems per code (the count is exact, see
``error_counts``), and, for duplicate detection, 20 bytes per list line in
numpy arrays (two 8-byte path hashes and the line number: 20 MB per million
lines).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import numpy as np

from ..errors import ConfigError, DatasetError
from ..fileio import check_output_dir, make_output_dir, write_json
from .labelme import convert_labelme
from .listfile import recover_interrupted_split
from .problems import MAX_DETAILS_PER_CODE, PROBLEM_CODES, _fmt_values  # noqa: F401  (moved; old home keeps them)
from .report import DEMO_DIR, HISTOGRAM_FILE, _clear_demos, _histogram_png  # noqa: F401  (moved; old home keeps them)
from .scan import _Checker
from .segdataset import read_class_names
from .split import split_dataset, validate_percents

PathLike = Union[str, os.PathLike]

__all__ = ["check_dataset", "check_dataset_from_config", "PROBLEM_CODES", "RESULT_FILE"]

RESULT_FILE = "check_dataset_result.json"


def _validate_args(num_classes, sample_num):
    if num_classes is not None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or not 1 <= num_classes <= 255:
            raise ConfigError(f"num_classes: must be an integer in 1..255 (255 is the ignore value), got {num_classes!r}")
    if isinstance(sample_num, bool) or not isinstance(sample_num, int) or sample_num < 0:
        raise ConfigError(f"sample_num: must be an integer >= 0, got {sample_num!r}")


def _share(counts: np.ndarray, c: int) -> float:
    total = int(counts.sum() - counts[255])
    return round(float(counts[c]) / total, 6) if total else 0.0



def check_dataset(
    dataset_dir: PathLike,
    output_dir: PathLike,
    num_classes: Optional[int] = None,
    sample_num: int = 10,
    progress: bool = True,
) -> dict:
    """Check a SegDataset, report every problem at once and write the results.

    Returns the dict also written to ``output_dir/check_dataset_result.json``
    (see the module docstring). Problems in the data never raise: they are
    collected, and ``check_pass`` is false. A missing ``dataset_dir`` or bad
    arguments raise :class:`~segzoo.errors.DatasetError` /
    :class:`~segzoo.errors.ConfigError`.
    """
    _validate_args(num_classes, sample_num)
    root = Path(dataset_dir).absolute()
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset directory not found. Fix: pass the folder holding train.txt and val.txt.")
    out = make_output_dir(output_dir, "output_dir")
    _clear_demos(out)
    recover_interrupted_split(root)

    checker = _Checker(root, out, num_classes, sample_num, progress)
    names = read_class_names(root)
    train = checker.scan("train.txt")
    source = "argument"
    if num_classes is None:
        if train.max_value >= 0 or train.labels_ok:
            checker.num_classes = max(train.max_value, 0) + 1
            source = "inferred from train"
    val = checker.scan("val.txt")
    nc = checker.num_classes
    if nc is None:
        if val.labels_ok:
            nc = max(val.max_value, 0) + 1
            source = "inferred from val (train has no readable mask)"
        else:
            source = "unknown (no readable mask)"
    checker.zero_255(nc)
    checker.duplicates(train, val)
    checker.val_only_classes(train, val, names)

    problems = checker.problems
    if names is not None and nc is not None and len(names) != nc:
        problems.warn(
            "class_names_mismatch",
            root / "class_name.txt",
            f"class_name.txt lists {len(names)} names but num_classes is {nc} ({source}).",
        )
    if nc is not None:
        seen = np.flatnonzero((train.image_count + val.image_count)[:255] > 0)
        unseen = [c for c in range(nc) if c not in set(seen.tolist())]
        if unseen:
            problems.warn(
                "class_never_seen",
                None,
                f"classes {_fmt_values(unseen)} of 0..{nc - 1} appear in no mask.",
            )

    top = max([nc or 0] + [int(c) + 1 for c in np.flatnonzero((train.image_count + val.image_count)[:255] > 0)])
    class_stats = []
    for c in range(top):
        class_stats.append(
            {
                "class_id": c,
                "name": names[c] if names and c < len(names) else None,
                "train_images": int(train.image_count[c]),
                "val_images": int(val.image_count[c]),
                "train_pixel_share": _share(train.pixel_count, c),
                "val_pixel_share": _share(val.pixel_count, c),
                "in_range": nc is not None and c < nc,
            }
        )

    def ignore_share(st):
        total = int(st.pixel_count.sum())
        return round(float(st.pixel_count[255]) / total, 6) if total else 0.0

    _histogram_png(class_stats, out / HISTOGRAM_FILE, f"{root.name}: classes in train and val")

    # stable order: by list file, then line, then code
    order = {"train.txt": 0, "val.txt": 1}
    errors = sorted(
        problems.items,
        key=lambda p: (order.get(p["list_file"], 2), p["line"] if p["line"] is not None else math.inf, p["code"]),
    )
    result: dict[str, Any] = {
        "done_flag": True,
        "check_pass": not problems.counts,
        "attributes": {
            "train_samples": train.samples,
            "val_samples": val.samples,
            "num_classes": nc,
            "train_sample_paths": train.demo_paths,
            "val_sample_paths": val.demo_paths,
        },
        "analysis": {"histogram": HISTOGRAM_FILE},
        "dataset_path": str(root),
        "show_type": "image",
        "dataset_type": "SegDataset",
        "num_classes_source": source,
        "class_names": names,
        "class_stats": class_stats,
        "ignore_pixel_share": {"train": ignore_share(train), "val": ignore_share(val)},
        "errors": errors,
        "error_counts": dict(sorted(problems.counts.items())),
        "warnings": problems.warnings,
    }
    write_json(out / RESULT_FILE, result)
    return result


# ---------------------------------------------------------------------------
# PaddleX's CheckDataset section


def _section(cfg: Mapping, key: str) -> Mapping:
    value = cfg.get(key) or {}
    if hasattr(value, "model_dump"):
        value = value.model_dump()
    if not isinstance(value, Mapping):
        raise ConfigError(f"CheckDataset.{key}: must be a mapping, got {type(value).__name__}")
    return value


def check_dataset_from_config(
    check_cfg: Optional[Mapping],
    dataset_dir: PathLike,
    output_dir: PathLike,
    *,
    num_classes: Optional[int] = None,
    sample_num: int = 10,
    progress: bool = True,
) -> dict:
    """Run PaddleX's ``CheckDataset`` section: convert, then split, then check.

    ``check_cfg`` is the section as a plain dict (a pydantic model works too)::

        {"convert": {"enable": bool, "src_dataset_type": "LabelMe",
                     "src_dataset_dir": str, "overwrite": bool (optional)},
         "split": {"enable": bool, "train_percent": int, "val_percent": int,
                   "seed": int (optional, default 0)}}

    Conversion writes the SegDataset into ``dataset_dir`` (it never converts in
    place: ``src_dataset_dir`` must be another folder). A ``dataset_dir``
    produced by an earlier conversion of the same source is replaced without
    ``overwrite``. Returns :func:`check_dataset`'s dict plus ``convert`` and
    ``split`` summaries (``None`` where disabled).
    """
    check_output_dir(output_dir, "output_dir")  # before a conversion or split changes anything
    cfg: Mapping = check_cfg or {}
    if hasattr(cfg, "model_dump"):
        cfg = cfg.model_dump()
    conv = _section(cfg, "convert")
    spl = _section(cfg, "split")
    convert_summary = split_summary = None
    if conv.get("enable"):
        kind = conv.get("src_dataset_type")
        if not isinstance(kind, str) or kind.lower() != "labelme":
            raise ConfigError(
                f"CheckDataset.convert.src_dataset_type: {kind!r} is not supported for SegDataset; use 'LabelMe'"
            )
        src = conv.get("src_dataset_dir")
        if not src:
            raise ConfigError(
                "CheckDataset.convert.src_dataset_dir: set it to the LabelMe folder; segzoo converts into "
                "Global.dataset_dir and never over its own source"
            )
        report = convert_labelme(src, dataset_dir, overwrite=bool(conv.get("overwrite", False)))
        convert_summary = report.to_dict()
    if spl.get("enable"):
        validate_percents(spl.get("train_percent"), spl.get("val_percent"), prefix="CheckDataset.split")
        seed = spl.get("seed", 0)
        split_summary = split_dataset(
            dataset_dir, spl.get("train_percent"), spl.get("val_percent"), seed=0 if seed is None else seed
        )
    result = check_dataset(dataset_dir, output_dir, num_classes=num_classes, sample_num=sample_num, progress=progress)
    return {**result, "convert": convert_summary, "split": split_summary}
