"""The list-file format (``train.txt``/``val.txt`` lines) and the journal that replaces both lists at once.

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

**Replacing both lists** (:func:`replace_lists`, used by a re-split,
:func:`segzoo.datasets.split_dataset`). Two files cannot be replaced in one
atomic step, so a small journal (``.segzoo-split.journal``) makes the pair
behave as one:

1. write the new lists to ``train.txt.segzoo-new`` / ``val.txt.segzoo-new``
   (fsynced);
2. write the journal atomically -- this is the commit point;
3. copy each current list to ``train.txt.bak`` / ``val.txt.bak`` (each copy
   atomic: temp file + ``os.replace``);
4. ``os.replace`` each ``*.segzoo-new`` onto its list;
5. delete the journal.

A split killed before step 2 leaves the old lists untouched (stray
``*.segzoo-new`` files are deleted by the next call); killed after step 2, the
next call of :func:`recover_interrupted_split` -- run first by
:func:`~segzoo.datasets.split_dataset`, :class:`~segzoo.datasets.SegDataset` and
:func:`~segzoo.datasets.check_dataset` -- finishes steps 3-5. Recovery relies
on one invariant: a list whose ``*.segzoo-new`` file still exists has not been
replaced yet, so it is still the old list and may be (re)copied to ``.bak``.
Hence, as seen through segzoo, the lists are always all-old or all-new.
Concurrent splits of one dataset are not supported.

For tests only, ``SEGZOO_TEST_SPLIT_PAUSE=<step>`` makes the process print
``SEGZOO_SPLIT_PAUSED <step>`` on stderr and sleep at that step, so a test can
kill it there. Steps: ``new_written``, ``journal_written``, ``bak_written``,
``between_replace``, ``replaced``.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Union

from ..errors import DatasetError
from ..fileio import atomic_path, fsync_dir, write_json

PathLike = Union[str, os.PathLike]

__all__ = [
    "Sample",
    "LineError",
    "read_list",
    "iter_list",
    "parse_list_line",
    "format_list_line",
    "recover_interrupted_split",
    "replace_lists",
    "IMAGE_EXTENSIONS",
    "LISTS",
    "JOURNAL",
    "NEW_SUFFIX",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".jp2", ".pgm", ".ppm")
_EXT_RE = re.compile(r"\.(" + "|".join(e[1:] for e in IMAGE_EXTENSIONS) + r")$", re.IGNORECASE)


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


# ---------------------------------------------------------------------------
# the journal: both lists replaced as one

LISTS = ("train.txt", "val.txt")
JOURNAL = ".segzoo-split.journal"
NEW_SUFFIX = ".segzoo-new"


def _pause(step: str) -> None:
    """Test hook: stop at ``step`` when ``SEGZOO_TEST_SPLIT_PAUSE`` names it."""
    if os.environ.get("SEGZOO_TEST_SPLIT_PAUSE") == step:
        print(f"SEGZOO_SPLIT_PAUSED {step}", file=sys.stderr, flush=True)
        time.sleep(3600)


def _write_synced(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


def _copy_atomic(src: Path, dst: Path) -> None:
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)


def _commit(root: Path) -> None:
    """Steps 3-5; idempotent, so recovery simply runs it again."""
    pending = [name for name in LISTS if (root / (name + NEW_SUFFIX)).exists()]
    for name in pending:  # step 3: the list is still the old one (its new file is pending)
        cur, bak = root / name, root / (name + ".bak")
        if cur.exists():
            _copy_atomic(cur, bak)
        elif bak.exists():
            bak.unlink()  # no old list: a stale .bak from an older split would mislead
    _pause("bak_written")
    for k, name in enumerate(pending):  # step 4
        os.replace(root / (name + NEW_SUFFIX), root / name)
        if k == 0 and len(pending) > 1:
            _pause("between_replace")
    fsync_dir(root)
    _pause("replaced")
    journal = root / JOURNAL
    if journal.exists():  # step 5
        journal.unlink()
        fsync_dir(root)


def recover_interrupted_split(dataset_dir: PathLike) -> bool:
    """Finish (journal present) or roll back (journal absent) a split that was killed.

    Returns True when something was recovered. Cheap when nothing is pending:
    a few ``stat`` calls.
    """
    root = Path(dataset_dir)
    journal = root / JOURNAL
    stray = [root / (name + NEW_SUFFIX) for name in LISTS if (root / (name + NEW_SUFFIX)).exists()]
    if not journal.exists() and not stray:
        return False
    try:
        if journal.exists():
            _commit(root)
        else:
            for path in stray:
                path.unlink()
    except OSError as exc:
        raise DatasetError(
            f"{root}: an interrupted split could not be completed ({exc}). Fix: make the "
            f"dataset directory writable, or restore train.txt/val.txt from the .bak files "
            f"and delete {JOURNAL} and the *{NEW_SUFFIX} files."
        ) from None
    return True


def replace_lists(root: Path, texts: dict[str, str], seed: int) -> None:
    """Replace every list in :data:`LISTS` with ``texts[name]`` as one step (steps 1-5 above).

    Raises :class:`~segzoo.errors.DatasetError` if the new lists cannot be
    written (the old ones are unchanged) or if the replacement is interrupted
    (the next :func:`recover_interrupted_split` completes it).
    """
    try:
        for name in LISTS:  # step 1
            _write_synced(root / (name + NEW_SUFFIX), texts[name])
        fsync_dir(root)
        _pause("new_written")
        write_json(root / JOURNAL, {"version": 1, "lists": list(LISTS), "seed": seed})  # step 2
        _pause("journal_written")
    except OSError as exc:
        for name in LISTS:
            p = root / (name + NEW_SUFFIX)
            if p.exists() and not (root / JOURNAL).exists():
                p.unlink()
        raise DatasetError(f"{root}: cannot write the new lists ({exc}). The old lists are unchanged.") from None
    try:
        _commit(root)  # steps 3-5
    except OSError as exc:
        raise DatasetError(
            f"{root}: the split was interrupted ({exc}); the next segzoo call on this dataset "
            "completes it."
        ) from None
