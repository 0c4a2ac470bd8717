"""The SegDataset reader.

Layout (PaddleX's "SegDataset")::

    dataset_dir/
      images/          a.jpg ...
      annotations/     a.png ...   single-channel 8-bit, 0..num_classes-1, 255 = ignore
      train.txt        images/a.jpg annotations/a.png
      val.txt
      class_name.txt   optional: line i is the name of class i

**List-file lines.** Each non-blank line names an image and its mask, relative
to ``dataset_dir``. The rule, in order:

1. A UTF-8 byte-order mark at the start of the file is ignored; so are blank
   lines (and a trailing ``\\r`` from Windows line ends).
2. If the line contains a tab and splitting on tabs gives exactly two
   non-empty fields, those are the two paths (each may contain spaces).
3. Otherwise the line is split on whitespace. Exactly two fields: done.
4. More than two fields means a path contains spaces. The separator is the
   whitespace run after which *both* sides name existing files, if exactly one
   run does; else the only run whose left side ends with an image extension
   (``.jpg``, ``.png``, ...); else the **last** whitespace run (so a label path
   may not contain spaces unless one of the earlier rules applies). segzoo's
   own writers use a tab whenever a path contains whitespace.
5. Backslashes are path separators (lists written on Windows); a file name
   that really contains a backslash is not supported.
6. A path must stay inside ``dataset_dir``: ``../x.png`` or an absolute path
   elsewhere is a :class:`~segzoo.errors.DatasetError` naming the list file and
   line. Absolute paths *inside* the root are accepted. The test is lexical
   (``..`` is resolved, symbolic links are not), so ``images/`` may be a
   symlink to other storage.

Reading is kept separate from augmentation: ``SegDataset[i]`` returns the
decoded image and mask, and the training loop wraps it with its transforms.
Images are decoded EXIF-orientation-aware exactly as the checker decides (see
:mod:`segzoo.datasets._imageio`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Union

import numpy as np

from ..errors import DatasetError
from ._imageio import DecodeError, decode_image, decode_label

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

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".jp2", ".pgm", ".ppm")
_EXT_RE = re.compile(r"\.(" + "|".join(e[1:] for e in IMAGE_EXTENSIONS) + r")$", re.IGNORECASE)

CHECK_HINT = "Run `segzoo check-dataset DATASET_DIR` to list every problem at once."


@dataclass(frozen=True)
class Sample:
    """One line of a list file."""

    image: Path  # absolute path of the image
    label: Path  # absolute path of the mask
    list_file: Path  # the list file the line is in
    line: int  # 1-based line number in list_file
    image_rel: str = ""  # the path as written, normalised to "/" and relative to the root
    label_rel: str = ""

    def where(self) -> str:
        """``train.txt line 3`` -- for messages."""
        return f"{self.list_file.name} line {self.line}"


class LineError(Exception):
    """A list-file line that cannot be parsed; ``code`` is the checker's problem code."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def _inside(root: str, path: str) -> bool:
    try:
        return os.path.commonpath([root, path]) == root
    except ValueError:  # different drives on Windows
        return False


def _resolve(root: Path, rel: str, which: str) -> tuple[Path, str]:
    """Absolute path and normalised relative path of one list entry."""
    text = rel.strip().replace("\\", "/")
    if not text:
        raise LineError("bad_line", f"the {which} path is empty")
    if re.match(r"^[A-Za-z]:/", text) and os.name != "nt":
        raise LineError(
            "outside_root",
            f"the {which} path {rel!r} is a Windows absolute path; write it relative to the dataset root",
        )
    root_s = os.path.normpath(os.path.abspath(root))
    full = os.path.normpath(os.path.join(root_s, text))
    if not _inside(root_s, full):
        raise LineError(
            "outside_root",
            f"the {which} path {rel!r} points outside the dataset root {root_s}; "
            "copy the file into the dataset and write its path relative to the root "
            "(e.g. images/a.jpg)",
        )
    return Path(full), Path(os.path.relpath(full, root_s)).as_posix()


def parse_list_line(text: str, root: PathLike) -> Optional[tuple[Path, Path, str, str]]:
    """Parse one list-file line (see the module docstring for the rule).

    Returns ``None`` for a blank line, else ``(image, label, image_rel,
    label_rel)``; raises :class:`LineError` for a bad line.
    """
    root = Path(root)
    line = text.rstrip("\r\n")
    if not line.strip():
        return None
    fields: Optional[list[str]] = None
    if "\t" in line:
        parts = [p.strip() for p in line.split("\t") if p.strip()]
        if len(parts) == 2:
            fields = parts
    if fields is None:
        stripped = line.strip()
        tokens = stripped.split()
        if len(tokens) == 2:
            fields = tokens
        elif len(tokens) < 2:
            raise LineError(
                "bad_line",
                f"expected two paths (image and mask), found one: {stripped!r}",
            )
        else:
            runs = list(re.finditer(r"\s+", stripped))
            cands = [(stripped[: m.start()], stripped[m.end() :]) for m in runs]
            exist = [
                c
                for c in cands
                if (root / c[0].replace("\\", "/")).is_file() and (root / c[1].replace("\\", "/")).is_file()
            ]
            if len(exist) == 1:
                fields = list(exist[0])
            else:
                ext = [c for c in cands if _EXT_RE.search(c[0]) and _EXT_RE.search(c[1])]
                fields = list(ext[0]) if len(ext) == 1 else list(cands[-1])
    image, image_rel = _resolve(root, fields[0], "image")
    label, label_rel = _resolve(root, fields[1], "mask")
    return image, label, image_rel, label_rel


def format_list_line(image_rel: str, label_rel: str) -> str:
    """A list-file line (with ``\\n``) that :func:`parse_list_line` reads back exactly.

    Uses a space, or a tab when either path contains whitespace.
    """
    sep = "\t" if re.search(r"\s", image_rel + label_rel) else " "
    return f"{image_rel}{sep}{label_rel}\n"


def _list_path(dataset_dir: Path, list_file: PathLike) -> Path:
    p = Path(list_file)
    return p if p.is_absolute() else dataset_dir / p


def iter_list(dataset_dir: PathLike, list_file: PathLike) -> Iterator[tuple[int, Union[Sample, LineError]]]:
    """Stream ``(line_number, Sample or LineError)`` over a list file (blank lines skipped).

    Lines are decoded one by one, so a line that is not UTF-8 is a
    :class:`LineError` with its exact number. Raises
    :class:`~segzoo.errors.DatasetError` if the list file is missing or cannot
    be opened.
    """
    root = Path(dataset_dir)
    path = _list_path(root, list_file)
    if not path.is_file():
        raise DatasetError(
            f"{path}: list file not found. Fix: create it with one "
            "`images/a.jpg annotations/a.png` line per sample, or make both lists with "
            "`segzoo check-dataset DATASET_DIR --split 80,20`."
        )
    try:
        fh = open(path, "rb")
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read the list file ({exc.strerror}).") from None
    with fh:
        for number, raw in enumerate(fh, 1):
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield number, LineError(
                    "bad_line", f"not UTF-8 text ({exc.reason} at byte {exc.start}); save the list file as UTF-8"
                )
                continue
            try:
                parsed = parse_list_line(text, root)
            except LineError as exc:
                yield number, exc
                continue
            if parsed is None:
                continue
            image, label, irel, lrel = parsed
            yield number, Sample(image, label, path, number, irel, lrel)


def read_list(dataset_dir: PathLike, list_file: PathLike) -> list[Sample]:
    """All samples of a list file, e.g. ``read_list(root, "train.txt")``.

    ``list_file`` is relative to ``dataset_dir`` (or absolute). Every bad line
    is collected and raised together in one :class:`~segzoo.errors.DatasetError`
    that names the file and each line. Files are not opened here.
    """
    samples: list[Sample] = []
    bad: list[str] = []
    path = _list_path(Path(dataset_dir), list_file)
    for number, item in iter_list(dataset_dir, list_file):
        if isinstance(item, LineError):
            bad.append(f"{path} line {number}: {item.message}")
        else:
            samples.append(item)
    if bad:
        shown = "\n  ".join(bad[:20])
        more = f"\n  ... and {len(bad) - 20} more" if len(bad) > 20 else ""
        raise DatasetError(f"{len(bad)} bad line(s) in {path}:\n  {shown}{more}")
    return samples


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
        from .split import recover_interrupted_split

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
