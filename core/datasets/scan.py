"""The checker's scanner: stream one list file, decode every sample once, and record what is wrong.

:meth:`_Checker.scan` reads ``train.txt`` or ``val.txt`` line by line (memory
does not grow with the dataset: per-class counters, path hashes in numpy
arrays, at most ``sample_num`` overlays on disk) and returns its
:class:`_SplitStats`; the whole-dataset checks come from
:class:`~segzoo.datasets.problems._WholeDatasetChecks`.
"""

from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import DatasetError
from ._imageio import DecodeError, DecodedImage, decode_image, decode_label
from .listfile import LineError, Sample, iter_list
from .problems import MAX_DETAILS_PER_CODE, _fmt_values, _Problems, _WholeDatasetChecks
from .report import _write_demo

_ZERO_255_KEEP = MAX_DETAILS_PER_CODE

_ROTATION_WORDS = {
    2: "mirrored",
    3: "rotated 180°",
    4: "flipped vertically",
    5: "transposed",
    6: "rotated 90° clockwise",
    7: "transversed",
    8: "rotated 90° counter-clockwise",
}


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



class _Checker(_WholeDatasetChecks):
    """Scans the splits of one dataset into ``problems`` (one instance per check)."""


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
        rel = _write_demo(self.out, st.name, len(st.demo_paths), s.image, image, label)
        if rel is not None:
            st.demo_paths.append(rel)

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
