"""The SegDataset checker: find every problem before training does.

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

import hashlib
import io
import math
import os
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import cv2
import numpy as np

from ..errors import ConfigError, DatasetError
from ..fileio import check_output_dir, make_output_dir, write_bytes, write_json
from ._imageio import DecodeError, DecodedImage, decode_image, decode_label
from .palette import overlay
from .segdataset import LineError, Sample, iter_list, read_class_names

PathLike = Union[str, os.PathLike]

__all__ = ["check_dataset", "check_dataset_from_config", "PROBLEM_CODES", "RESULT_FILE"]

RESULT_FILE = "check_dataset_result.json"
HISTOGRAM_FILE = "histogram.png"
DEMO_DIR = "demo_img"
MAX_DETAILS_PER_CODE = 1000
_ZERO_255_KEEP = MAX_DETAILS_PER_CODE

PROBLEM_CODES = (
    "missing_list_file",
    "unreadable_list_file",
    "empty_split",
    "bad_line",
    "outside_root",
    "missing_image",
    "missing_label",
    "empty_file",
    "unreadable_file",
    "corrupt_image",
    "corrupt_label",
    "label_jpeg",
    "label_not_single_channel",
    "label_not_8bit",
    "label_0_255",
    "label_out_of_range",
    "size_mismatch",
    "exif_orientation",
    "duplicate_entry",
    "train_val_overlap",
    "class_missing_in_train",
)

_ROTATION_WORDS = {
    2: "mirrored",
    3: "rotated 180°",
    4: "flipped vertically",
    5: "transposed",
    6: "rotated 90° clockwise",
    7: "transversed",
    8: "rotated 90° counter-clockwise",
}


class _Problems:
    def __init__(self, root: Path):
        self.root = root
        self.items: list[dict] = []
        self.counts: Counter = Counter()
        self.warnings: list[dict] = []

    def rel(self, path: PathLike) -> str:
        p = os.path.abspath(path)
        r = os.path.abspath(self.root)
        try:
            if os.path.commonpath([p, r]) == r:
                return Path(os.path.relpath(p, r)).as_posix()
        except ValueError:
            pass
        return str(path)

    def add(self, code: str, file: PathLike, line: Optional[int], message: str, list_file: Optional[str] = None):
        self.counts[code] += 1
        if self.counts[code] <= MAX_DETAILS_PER_CODE:
            self.items.append(
                {"file": self.rel(file), "line": line, "code": code, "message": message, "list_file": list_file}
            )

    def warn(self, code: str, file: Optional[PathLike], message: str):
        self.warnings.append(
            {"file": self.rel(file) if file else None, "line": None, "code": code, "message": message}
        )


@dataclass
class _SplitStats:
    name: str
    present: bool = False
    samples: int = 0
    bad_lines: int = 0
    labels_ok: int = 0
    image_count: np.ndarray = field(default_factory=lambda: np.zeros(256, np.int64))
    pixel_count: np.ndarray = field(default_factory=lambda: np.zeros(256, np.int64))
    first_file: dict = field(default_factory=dict)  # class -> (label path, line); <= 256 entries
    pair_hash: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    image_hash: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    lines: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint32))
    n_hashed: int = 0
    demo_paths: list = field(default_factory=list)
    max_value: int = -1  # largest non-255 label value seen


def _hash(*parts: str) -> int:
    h = hashlib.blake2b("\0".join(parts).encode("utf-8", "surrogatepass"), digest_size=8)
    return int.from_bytes(h.digest(), "little")


def _count_lines(path: Path) -> int:
    n = 0
    last = b"\n"
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(1 << 20)
            if not chunk:
                break
            n += chunk.count(b"\n")
            last = chunk[-1:]
    return n + (0 if last == b"\n" else 1)


def _fmt_values(values) -> str:
    values = [int(v) for v in values]
    shown = ", ".join(str(v) for v in values[:12])
    return shown + (f" ... ({len(values)} values)" if len(values) > 12 else "")


def _safe_stem(path: Path) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", path.stem)[:60] or "sample"


class _Checker:
    def __init__(self, root: Path, out: Path, num_classes: Optional[int], sample_num: int, progress: bool):
        self.root = root
        self.out = out
        self.num_classes = num_classes
        self.sample_num = sample_num
        self.progress = progress
        self._nc_given = num_classes is not None
        self.problems = _Problems(root)
        # 0/255 detection state
        self.zero255: list[tuple[Path, int, str]] = []
        self.zero255_count = 0
        self.fg_with_255 = False

    # -- reading -------------------------------------------------------
    def _read(self, path: Path, kind: str, s: Sample) -> Optional[bytes]:
        lf, ln = s.list_file.name, s.line
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            rel = s.image_rel if kind == "image" else s.label_rel
            self.problems.add(
                f"missing_{'image' if kind == 'image' else 'label'}",
                path,
                ln,
                f"{lf} line {ln}: the {kind} {rel} does not exist. Fix: add the file or remove the line.",
                lf,
            )
            return None
        except IsADirectoryError:
            self.problems.add(
                "unreadable_file", path, ln, f"{lf} line {ln}: the {kind} path is a directory, not a file.", lf
            )
            return None
        except OSError as exc:
            self.problems.add(
                "unreadable_file",
                path,
                ln,
                f"{lf} line {ln}: cannot read the {kind} ({exc.strerror}). Fix: check its permissions.",
                lf,
            )
            return None
        if not data:
            self.problems.add(
                "empty_file",
                path,
                ln,
                f"{lf} line {ln}: the {kind} is an empty (0-byte) file, e.g. an interrupted copy. "
                "Fix: copy it again or remove the line.",
                lf,
            )
            return None
        return data

    def _image(self, s: Sample) -> Optional[DecodedImage]:
        data = self._read(s.image, "image", s)
        if data is None:
            return None
        try:
            return decode_image(data)
        except DecodeError as exc:
            self.problems.add(
                "corrupt_image",
                s.image,
                s.line,
                f"{s.where()}: the image cannot be read: {exc}. Fix: re-export it or remove the line.",
                s.list_file.name,
            )
            return None

    def _label(self, s: Sample) -> Optional[np.ndarray]:
        data = self._read(s.label, "mask", s)
        if data is None:
            return None
        lf, ln = s.list_file.name, s.line
        try:
            dec = decode_label(data)
        except DecodeError as exc:
            self.problems.add(
                "corrupt_label",
                s.label,
                ln,
                f"{lf} line {ln}: the mask cannot be read: {exc}. Fix: re-export it or remove the line.",
                lf,
            )
            return None
        if dec.format == "jpeg":
            self.problems.add(
                "label_jpeg",
                s.label,
                ln,
                f"{lf} line {ln}: the mask is a JPEG; lossy compression changes class ids at every edge. "
                "Fix: export masks as single-channel 8-bit PNG.",
                lf,
            )
            return None
        arr = dec.array
        if arr.ndim == 3:
            ch = arr.shape[2]
            if ch >= 3 and np.array_equal(arr[:, :, 0], arr[:, :, 1]) and np.array_equal(arr[:, :, 1], arr[:, :, 2]):
                how = (
                    "all colour channels are equal, so it is a grayscale mask saved as RGB. "
                    "Fix: save it single-channel, e.g. cv2.imwrite(path, cv2.imread(path, cv2.IMREAD_GRAYSCALE))."
                )
            else:
                how = (
                    "it holds colours, not class ids. Fix: map each colour to its class id and save a "
                    "single-channel 8-bit PNG (a palette PNG whose indices are the class ids also works)."
                )
            self.problems.add(
                "label_not_single_channel",
                s.label,
                ln,
                f"{lf} line {ln}: the mask has {ch} channels; {how}",
                lf,
            )
            return None
        if arr.dtype != np.uint8:
            self.problems.add(
                "label_not_8bit",
                s.label,
                ln,
                f"{lf} line {ln}: the mask is {arr.dtype} ({arr.dtype.itemsize * 8}-bit); SegDataset masks "
                "are 8-bit. Fix: save it as an 8-bit PNG (class ids 0..254, 255 = ignore).",
                lf,
            )
            return None
        return arr

    # -- one sample ----------------------------------------------------
    def _sample(self, s: Sample, st: _SplitStats):
        lf, ln = s.list_file.name, s.line
        k = st.n_hashed
        if k >= len(st.pair_hash):  # the line count is exact; grow defensively anyway
            grow = max(16, len(st.pair_hash))
            st.pair_hash = np.concatenate([st.pair_hash, np.zeros(grow, np.uint64)])
            st.image_hash = np.concatenate([st.image_hash, np.zeros(grow, np.uint64)])
            st.lines = np.concatenate([st.lines, np.zeros(grow, np.uint32)])
        ikey = os.path.normcase(str(s.image))
        st.image_hash[k] = _hash(ikey)
        st.pair_hash[k] = _hash(ikey, os.path.normcase(str(s.label)))
        st.lines[k] = ln
        st.n_hashed += 1

        img = self._image(s)
        lbl = self._label(s)
        sizes_ok = False
        if img is not None and lbl is not None:
            lw, lh = lbl.shape[1], lbl.shape[0]
            iw, ih = img.size
            sw, sh = img.stored_size
            if (iw, ih) == (lw, lh):
                sizes_ok = True
            elif img.orientation != 1 and (sw, sh) == (lw, lh):
                self.problems.add(
                    "exif_orientation",
                    s.image,
                    ln,
                    f"{lf} line {ln}: the image carries EXIF orientation {img.orientation} "
                    f"({_ROTATION_WORDS.get(img.orientation, '')}), so it is read as {iw}×{ih}, but its mask "
                    f"{s.label_rel} is {lw}×{lh}, the size of the stored, unrotated pixels. Fix: if the mask was "
                    "drawn on the stored pixels, drop the tag by re-saving the image unrotated "
                    "(cv2.imwrite(path, cv2.imread(path, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION))); "
                    "otherwise rotate the mask the way the tag rotates the image.",
                    lf,
                )
            else:
                exif = (
                    f" (after its EXIF orientation {img.orientation}; stored as {sw}×{sh})"
                    if img.orientation != 1
                    else ""
                )
                self.problems.add(
                    "size_mismatch",
                    s.label,
                    ln,
                    f"{lf} line {ln}: the image {s.image_rel} is {iw}×{ih}{exif} but the mask "
                    f"{s.label_rel} is {lw}×{lh}. Fix: pair the right mask with the image, or "
                    "re-export the mask at the image's size.",
                    lf,
                )
        if lbl is not None:
            st.labels_ok += 1
            hist = np.bincount(lbl.ravel(), minlength=256)
            values = np.flatnonzero(hist)
            st.image_count += hist > 0
            st.pixel_count += hist
            non_ignore = values[values != 255]
            if non_ignore.size:
                st.max_value = max(st.max_value, int(non_ignore.max()))
            if len(values) == 2 and values[0] == 0 and values[1] == 255:
                self.zero255_count += 1
                if len(self.zero255) < _ZERO_255_KEEP:
                    self.zero255.append((s.label, ln, lf))
            elif hist[255] and np.any((values >= 1) & (values <= 254)):
                self.fg_with_255 = True
            if self.num_classes is not None:
                bad = non_ignore[non_ignore >= self.num_classes]
                if bad.size:
                    src = "" if self._nc_given else " (inferred from train)"
                    self.problems.add(
                        "label_out_of_range",
                        s.label,
                        ln,
                        f"{lf} line {ln}: the mask holds values {_fmt_values(bad)}, but num_classes is "
                        f"{self.num_classes}{src}, so valid values are 0..{self.num_classes - 1} and 255 "
                        "(ignore). Fix: correct these pixels, or raise num_classes.",
                        lf,
                    )
            if st.name == "val":
                for c in values:
                    c = int(c)
                    if c not in st.first_file:
                        st.first_file[c] = (s.label, ln)
        if sizes_ok and len(st.demo_paths) < self.sample_num:
            self._write_demo(s, img.image, lbl, st)

    def _write_demo(self, s: Sample, image: np.ndarray, label: np.ndarray, st: _SplitStats):
        name = f"{st.name}_{len(st.demo_paths):03d}_{_safe_stem(s.image)}.png"
        ok, buf = cv2.imencode(".png", overlay(image, label, alpha=0.5))
        if ok:
            write_bytes(self.out / DEMO_DIR / name, buf.tobytes())
            st.demo_paths.append(f"{DEMO_DIR}/{name}")

    # -- one split -----------------------------------------------------
    def scan(self, name: str) -> _SplitStats:
        st = _SplitStats(name=name.removesuffix(".txt"))
        path = self.root / name
        if not path.is_file():
            other = "val.txt" if name == "train.txt" else "train.txt"
            self.problems.add(
                "missing_list_file",
                path,
                None,
                f"{name} is missing. Fix: write it (one `images/a.jpg annotations/a.png` line per sample), "
                f"or, if all samples are listed in {other}, re-split with "
                "`segzoo check-dataset DATASET_DIR --split 80,20`.",
                name,
            )
            return st
        st.present = True
        total = _count_lines(path)
        st.pair_hash = np.zeros(total, np.uint64)
        st.image_hash = np.zeros(total, np.uint64)
        st.lines = np.zeros(total, np.uint32)
        from tqdm import tqdm

        done = 0
        with tqdm(
            total=total, desc=f"checking {name}", unit="line", file=sys.stderr, disable=not self.progress
        ) as bar:
            unreadable = False
            try:
                for number, item in iter_list(self.root, name):
                    bar.update(number - done)
                    done = number
                    if isinstance(item, LineError):
                        st.bad_lines += 1
                        self.problems.add(item.code, path, number, f"{name} line {number}: {item.message}", name)
                        continue
                    st.samples += 1
                    self._sample(item, st)
            except DatasetError as exc:  # cannot be opened
                self.problems.add("unreadable_list_file", path, None, str(exc), name)
                unreadable = True
            bar.update(total - done)
        if st.samples == 0 and st.bad_lines == 0 and not unreadable:
            self.problems.add(
                "empty_split",
                path,
                None,
                f"{name} lists no samples; training needs both a train and a val split. Fix: add lines, "
                "or re-split the pooled samples with `segzoo check-dataset DATASET_DIR --split 80,20`.",
                name,
            )
        return st

    # -- whole-dataset checks ------------------------------------------
    def duplicates(self, train: _SplitStats, val: _SplitStats):
        for st in (train, val):
            n = st.n_hashed
            if n < 2:
                continue
            h, lines = st.pair_hash[:n], st.lines[:n]
            order = np.lexsort((lines, h))
            hs = h[order]
            same = np.concatenate([[False], hs[1:] == hs[:-1]])
            if not same.any():
                continue
            # index of each run's first element (the earliest line, as lines break ties)
            start = np.maximum.accumulate(np.where(same, 0, np.arange(n)))
            lf = f"{st.name}.txt"
            for i in np.flatnonzero(same):
                first, line = int(lines[order[start[i]]]), int(lines[order[i]])
                self.problems.add(
                    "duplicate_entry",
                    self.root / lf,
                    line,
                    f"{lf} line {line}: the same image and mask as {lf} line {first}. "
                    "Fix: delete the repeated line (a repeated sample weighs twice in training).",
                    lf,
                )
        if train.n_hashed and val.n_hashed:
            th, vh = train.image_hash[: train.n_hashed], val.image_hash[: val.n_hashed]
            common = np.intersect1d(th, vh)
            if common.size:
                tmask = np.isin(th, common)
                first_train: dict[int, int] = {}
                for hv, ln in zip(th[tmask].tolist(), train.lines[: train.n_hashed][tmask].tolist()):
                    first_train.setdefault(hv, ln)
                vmask = np.isin(vh, common)
                for hv, ln in zip(vh[vmask].tolist(), val.lines[: val.n_hashed][vmask].tolist()):
                    self.problems.add(
                        "train_val_overlap",
                        self.root / "val.txt",
                        ln,
                        f"val.txt line {ln}: the same image as train.txt line {first_train[hv]}; "
                        "validating on training images overstates the score. Fix: keep it in one split only.",
                        "val.txt",
                    )

    def zero_255(self, nc: Optional[int]):
        if not self.zero255_count:
            return
        if not ((nc is not None and nc <= 2) or not self.fg_with_255):
            return
        for path, ln, lf in self.zero255:
            self.problems.add(
                "label_0_255",
                path,
                ln,
                f"{lf} line {ln}: the mask holds only 0 and 255. In SegDataset 255 means 'ignore', so "
                "this looks like a binary mask stored as 0/255 and the foreground would never be "
                "learned. Fix: divide the mask by 255 (foreground = 1), e.g. "
                "cv2.imwrite(p, (cv2.imread(p, 0) > 127).astype('uint8')), and use num_classes=2.",
                lf,
            )
        for _ in range(self.zero255_count - len(self.zero255)):
            self.problems.counts["label_0_255"] += 1

    def val_only_classes(self, train: _SplitStats, val: _SplitStats, names: Optional[list[str]]):
        if not train.labels_ok or not val.labels_ok:
            return
        for c in np.flatnonzero((val.image_count > 0) & (train.image_count == 0)):
            c = int(c)
            if c == 255:
                continue
            path, ln = val.first_file.get(c, (self.root / "val.txt", None))
            nm = f" ({names[c]})" if names and c < len(names) else ""
            self.problems.add(
                "class_missing_in_train",
                path,
                ln,
                f"val.txt line {ln}: class {c}{nm} appears in {int(val.image_count[c])} val mask(s) "
                "(this is the first) "
                "but in no train mask, so the model can never learn it. Fix: move some of these samples "
                "to train.txt (or re-split with `--split 80,20`), or check the labels.",
                "val.txt",
            )


def _validate_args(num_classes, sample_num):
    if num_classes is not None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or not 1 <= num_classes <= 255:
            raise ConfigError(f"num_classes: must be an integer in 1..255 (255 is the ignore value), got {num_classes!r}")
    if isinstance(sample_num, bool) or not isinstance(sample_num, int) or sample_num < 0:
        raise ConfigError(f"sample_num: must be an integer >= 0, got {sample_num!r}")


def _share(counts: np.ndarray, c: int) -> float:
    total = int(counts.sum() - counts[255])
    return round(float(counts[c]) / total, 6) if total else 0.0


def _histogram_png(stats: list[dict], path: Path, title: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ids = [s["class_id"] for s in stats]
    labels = [f"{s['class_id']} {s['name']}" if s.get("name") else str(s["class_id"]) for s in stats]
    x = np.arange(len(ids))
    width = 0.4
    n = max(len(ids), 1)
    fig = Figure(figsize=(min(4 + 0.45 * n, 40), 7.5), dpi=100)
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.subplots(2, 1)
    ax1.bar(x - width / 2, [s["train_images"] for s in stats], width, label="train", color="#1f77b4")
    ax1.bar(x + width / 2, [s["val_images"] for s in stats], width, label="val", color="#ff7f0e")
    ax1.set_ylabel("images containing the class")
    ax1.set_title(title)
    ax2.bar(x - width / 2, [100 * s["train_pixel_share"] for s in stats], width, label="train", color="#1f77b4")
    ax2.bar(x + width / 2, [100 * s["val_pixel_share"] for s in stats], width, label="val", color="#ff7f0e")
    ax2.set_ylabel("share of labelled pixels (%)")
    ax2.set_xlabel("class")
    from matplotlib.ticker import MaxNLocator

    ax1.yaxis.set_major_locator(MaxNLocator(integer=True))
    rotate = n > 8 or any(len(t) > 6 for t in labels)
    for ax in (ax1, ax2):
        ax.set_xticks(x)
        if rotate:
            ax.set_xticklabels(labels, rotation=45, ha="right", rotation_mode="anchor", fontsize=8)
        else:
            ax.set_xticklabels(labels, fontsize=8)
        ax.legend()
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    write_bytes(path, buf.getvalue())


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
    from .split import recover_interrupted_split

    _validate_args(num_classes, sample_num)
    root = Path(dataset_dir).absolute()
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset directory not found. Fix: pass the folder holding train.txt and val.txt.")
    out = make_output_dir(output_dir, "output_dir")
    demo = out / DEMO_DIR
    if demo.is_dir():  # drop our own stale overlays from an earlier run
        for old in demo.glob("*.png"):
            if re.match(r"^(train|val)_\d{3}_", old.name):
                old.unlink()
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
    from .labelme import convert_labelme
    from .split import split_dataset

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
        from .split import validate_percents

        validate_percents(spl.get("train_percent"), spl.get("val_percent"), prefix="CheckDataset.split")
        seed = spl.get("seed", 0)
        split_summary = split_dataset(
            dataset_dir, spl.get("train_percent"), spl.get("val_percent"), seed=0 if seed is None else seed
        )
    result = check_dataset(dataset_dir, output_dir, num_classes=num_classes, sample_num=sample_num, progress=progress)
    return {**result, "convert": convert_summary, "split": split_summary}
