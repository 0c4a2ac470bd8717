"""``SegResult``: one predicted label map, PaddleX-style.

>>> for res in model.predict("images/"):
...     res.print()                    # {"res": {"input_path": ..., "page_index": null, "pred": "..."}}
...     res.save_to_json("output/")    # output/<input stem>_res.json
...     res.save_to_img("output/")     # output/<input stem>_res.png and _overlay.png

Differences from PaddleX, on purpose:

* ``pred`` is ``H×W`` (PaddleX keeps a leading 1), ``uint8`` when the model
  has at most 256 classes, else ``int32``.
* ``img`` holds numpy arrays, not PIL images, both **BGR** ``uint8`` (ready
  for ``cv2.imwrite``): ``img["res"]`` the label map in the PASCAL VOC
  palette, ``img["overlay"]`` that map blended on the input.

**File names.** Saving into a directory names the files after the input:
``<stem>_res.json``, ``<stem>_res.png`` and ``<stem>_overlay.png``, where the
stem is the input file's (plus ``_<page>`` for PDF pages, ``array_<n>`` for
the n-th array of a ``predict()`` call). Within one ``predict()`` call, two
*different* inputs never write the same file: when ``a/x.jpg`` has taken
``x`` in a directory, ``b/x.jpg`` gets ``x_1`` (then ``x_2``, ...) and a
warning says so; the same result always keeps the same stem for its JSON and
its images. Saving to a file path (``save_to_json("out.json")``) writes that
file, whatever it holds. A path without a fitting suffix is a directory: an
existing file there (or a file among its parents) is a
:class:`~segzoo.errors.ConfigError` saying so, and nothing is written. Files
from earlier runs are overwritten, as PaddleX does. Every file is written
atomically.
"""

from __future__ import annotations

import copy
import json
import logging
import threading
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..datasets.palette import blend, colorize, voc_palette
from ..errors import ConfigError
from ..fileio import atomic_write, check_output_dir, write_bytes

log = logging.getLogger("segzoo")

#: weight of the colour map in ``img["overlay"]``
OVERLAY_ALPHA = 0.5

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


class SaveLedger:
    """Which input owns which file stem in which directory, for one ``predict()`` call."""

    def __init__(self):
        self._owner: dict[tuple[str, str], tuple] = {}
        self._stem: dict[tuple[str, tuple], str] = {}
        self._lock = threading.Lock()

    def claim(self, directory: Path, stem: str, key: tuple) -> str:
        """The stem ``key`` writes under in ``directory``: ``stem``, or ``stem_<n>`` if another input has it."""
        d = str(Path(directory).resolve())
        with self._lock:
            if (d, key) in self._stem:
                return self._stem[(d, key)]
            chosen, n = stem, 0
            while self._owner.get((d, chosen), key) != key:
                n += 1
                chosen = f"{stem}_{n}"
            self._owner[(d, chosen)] = key
            self._stem[(d, key)] = chosen
        if chosen != stem:
            log.warning("%s: another input of this run already saved as %r in %s; saving as %r", stem, stem, d, chosen)
        return chosen


class SegResult:
    """The prediction for one image (one PDF page).

    Attributes:
        pred: ``H×W`` label map at the input's original size.
        input_path: the file path or URL, ``None`` for arrays.
        page_index: the PDF page (0-based), ``None`` otherwise.
        input_img: the input as read, ``H×W×3`` BGR ``uint8``.
        name: the stem result files are named after.
    """

    def __init__(
        self,
        pred: np.ndarray,
        input_img: np.ndarray,
        input_path: Optional[str] = None,
        page_index: Optional[int] = None,
        name: str = "result",
        key: Optional[tuple] = None,
        ledger: Optional[SaveLedger] = None,
    ):
        self.pred = pred
        self.input_img = input_img
        self.input_path = input_path
        self.page_index = page_index
        self.name = name
        self._key = key if key is not None else ("result", id(self))
        self._ledger = ledger if ledger is not None else SaveLedger()

    # -- views ------------------------------------------------------------------------------------
    def _data(self, pred: Any) -> dict:
        return {"res": {"input_path": self.input_path, "page_index": self.page_index, "pred": pred}}

    @property
    def json(self) -> dict:
        """``{"res": {"input_path", "page_index", "pred": [[...]]}}`` (PaddleX's keys)."""
        return self._data(self.pred.tolist())

    @property
    def img(self) -> dict:
        """``{"res": VOC-coloured label map, "overlay": blended on the input}``, both BGR ``uint8``."""
        colour = colorize_labels(self.pred)
        return {"res": colour, "overlay": blend(self.input_img, colour, alpha=OVERLAY_ALPHA)}

    def to_str(self, format_json: bool = True, indent: int = 4, ensure_ascii: bool = False) -> str:
        """The result as text, ``pred`` shown as ``'...'``."""
        data = self._data("...")
        if format_json:
            return json.dumps(data, indent=indent, ensure_ascii=ensure_ascii)
        return str(data)

    def print(self, format_json: bool = True, indent: int = 4, ensure_ascii: bool = False) -> None:
        """Print the result (PaddleX style: ``pred`` is shown as ``'...'``)."""
        print(self.to_str(format_json, indent, ensure_ascii))

    def __str__(self) -> str:
        return self.to_str()

    def __repr__(self) -> str:
        h, w = self.pred.shape[:2]
        page = f", page {self.page_index}" if self.page_index is not None else ""
        return f"<SegResult {self.input_path or self.name}{page}: {w}×{h} {self.pred.dtype}>"

    def __getitem__(self, key: str) -> Any:
        """Dict-style access like PaddleX's results: ``res["pred"]``, ``res["input_path"]``..."""
        if key in ("pred", "input_path", "page_index", "input_img"):
            return getattr(self, key)
        raise KeyError(key)

    def keys(self):
        return ["input_path", "page_index", "input_img", "pred"]

    # -- saving -----------------------------------------------------------------------------------
    def _target(self, path, suffix: str, kind: str) -> tuple[Path, bool]:
        """(path, is_directory) for ``path``: a directory unless it ends in a fitting suffix."""
        p = Path(path).expanduser()
        if p.is_dir():
            return p, True
        ok = (suffix,) if kind == "json" else IMAGE_SUFFIXES
        if p.suffix.lower() in ok:
            if p.exists() and not p.is_file():
                raise ConfigError(f"save path {p}: it exists and is not a regular file; give another file name")
            check_output_dir(p.parent, "save path folder")
            return p, False
        if p.exists() or p.is_symlink():
            raise ConfigError(
                f"save path {p}: it is an existing file, not a directory; give a directory (created if missing) "
                f"or a file name ending in {', '.join(ok)} for the {kind}"
            )
        if p.suffix:
            raise ConfigError(
                f"save path {p}: expected a directory or a file ending in {', '.join(ok)} for the {kind}"
            )
        check_output_dir(p, "save path")
        return p, True

    def _stem(self, directory: Path) -> str:
        return self._ledger.claim(directory, self.name, self._key)

    def save_to_json(self, save_path, indent: int = 4, ensure_ascii: bool = False) -> Path:
        """Write :attr:`json` to ``save_path`` (a directory → ``<stem>_res.json``); return the file."""
        target, is_dir = self._target(save_path, ".json", "json")
        if is_dir:
            target = target / f"{self._stem(target)}_res.json"
        with atomic_write(target) as fh:
            fh.write(self._json_text(indent, ensure_ascii))
            fh.write("\n")
        return target

    def _json_text(self, indent: Optional[int], ensure_ascii: bool) -> str:
        """:attr:`json` as text; with ``indent``, one row of ``pred`` per line.

        ``json.dump(..., indent=4)`` puts every pixel on a line of its own and
        runs Python's slow encoder: 1.6 s and 30 MB for one 1920×1080 mask.
        The envelope is indented here, and each row of ``pred`` is written by
        the C encoder on one line: the same JSON once parsed, 20× faster.
        """
        if indent is None:
            return json.dumps(self.json, ensure_ascii=ensure_ascii)
        marker = "@@segzoo-pred@@"
        text = json.dumps(self._data(marker), indent=indent, ensure_ascii=ensure_ascii)
        rows = label_rows_text(self.pred, " " * (indent * 3))
        head, _, tail = text.rpartition(json.dumps(marker))  # "pred" is the last key
        return head + "[\n" + rows + "\n" + " " * (indent * 2) + "]" + tail

    def save_to_img(self, save_path) -> dict[str, Path]:
        """Write the coloured map and the overlay; return ``{"res": path, "overlay": path}``.

        A directory gets ``<stem>_res.png`` and ``<stem>_overlay.png``; a file
        path ``out.png`` gets the coloured map, and the overlay goes beside
        it as ``out_overlay.png``.
        """
        import cv2

        target, is_dir = self._target(save_path, ".png", "image")
        if is_dir:
            stem = self._stem(target)
            paths = {"res": target / f"{stem}_res.png", "overlay": target / f"{stem}_overlay.png"}
        else:
            paths = {"res": target, "overlay": target.with_name(f"{target.stem}_overlay{target.suffix}")}
        images = self.img
        for key, path in paths.items():
            ok, buf = cv2.imencode(path.suffix.lower() or ".png", images[key])
            if not ok:  # pragma: no cover - OpenCV encodes every suffix in IMAGE_SUFFIXES
                raise OSError(f"OpenCV cannot encode {path}")
            write_bytes(path, buf.tobytes())
        return paths

    def copy(self) -> "SegResult":
        return copy.copy(self)


def colorize_labels(pred: np.ndarray) -> np.ndarray:
    """``H×W`` labels → ``H×W×3`` BGR ``uint8`` in the VOC palette (labels above 255 continue its pattern)."""
    if pred.dtype == np.uint8 or (pred.size and int(pred.max()) <= 255 and int(pred.min()) >= 0):
        return colorize(pred, bgr=True)
    palette = voc_palette(int(pred.max()) + 1)[:, ::-1]
    return np.ascontiguousarray(palette[pred])


def label_rows_text(pred: np.ndarray, pad: str) -> str:
    """``pad + json.dumps(row)`` for every row of an integer label map, joined by ``",\n"``: the same text, built
    with numpy (each label's text looked up in a table of 4- or 8-byte words) instead of one encoder call per row."""
    pred = np.asarray(pred)
    top = int(pred.max()) if pred.ndim == 2 and pred.dtype.kind in "ui" and pred.size else -1
    if top < 0 or top > 4095 or int(pred.min()) < 0:  # not a label map of up to 4096 classes: row by row
        return ",\n".join(pad + json.dumps(row) for row in pred.tolist())
    width = 4 if top < 100 else 8  # bytes of ", <label>" (up to 6)
    word = np.uint32 if width == 4 else np.uint64
    tables = np.zeros((2, top + 1, width), np.uint8)  # "<label>" (a row's first) and ", <label>", NUL-padded
    for value in range(top + 1):
        for k, token in enumerate((f"{value}".encode(), f", {value}".encode())):
            tables[k, value, : len(token)] = np.frombuffer(token, np.uint8)
    first, rest = (t.view(word).ravel() for t in tables)
    words = rest[pred]
    words[:, 0] = first[pred[:, 0]]
    head, foot = np.frombuffer(f"{pad}[".encode(), np.uint8), np.frombuffer(b"],\n", np.uint8)
    h, w = pred.shape
    lines = np.empty((h, head.size + w * width + foot.size), np.uint8)
    lines[:, : head.size] = head
    lines[:, head.size : head.size + w * width] = words.view(np.uint8).reshape(h, w * width)
    lines[:, head.size + w * width :] = foot
    flat = lines.ravel()
    return flat[flat != 0].tobytes()[: -len(",\n")].decode("ascii")
