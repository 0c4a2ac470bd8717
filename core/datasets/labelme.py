"""LabelMe JSON annotations to a SegDataset.

:func:`convert_labelme` reads either layout:

* **flat** (labelme's own examples): ``src/*.json`` beside their images;
* **PaddleX** ("LabelMe" seg format): ``src/annotations/*.json`` and
  ``src/images/``; when ``src/train_anno_list.txt`` *and*
  ``src/val_anno_list.txt`` exist they define the split (lines such as
  ``annotations/a.json``); JSON files listed in neither are not converted.

and writes ``dst/images/``, ``dst/annotations/`` (single-channel 8-bit PNG),
``dst/class_name.txt``, ``dst/train.txt`` and ``dst/val.txt``.

Rules:

* Class ids: ``_background_`` is 0 (also where no shape is drawn),
  ``__ignore__`` is 255, every other label takes 1..n in order of first
  appearance, scanning JSON files in sorted order and shapes in file order.
  ``class_name.txt`` line ``i`` names class ``i`` (line 0 ``_background_``).
* Shapes are filled in file order, later shapes over earlier ones:
  ``polygon`` (>= 3 points), ``rectangle`` and ``oriented_rectangle``,
  ``circle`` (centre and a point on the circle), ``mask`` (labelme's base64
  bitmap of a box). ``line``, ``linestrip``, ``point`` and ``points`` carry no
  area and are skipped with a warning in the report; any other shape type is an
  error.
* The image is ``imagePath`` relative to the JSON file; else (PaddleX layout)
  ``src/images/<basename>``; else the embedded ``imageData``; else an error
  naming the JSON. Images are copied byte for byte as
  ``images/<json stem><ext>`` (EXIF included), and masks are drawn at the
  EXIF-upright size, which is what labelme shows while annotating and what the
  reader returns.
* Split: unless the PaddleX lists give it, ``val_percent`` of the samples
  (rounded, at least one) go to val, chosen by shuffling the sorted JSON stems
  with ``random.Random(seed)``.
* Errors (malformed JSON with its line/column, a missing image, a polygon
  with fewer than 3 points, ...) are collected over *all* files and raised
  together as one :class:`~segzoo.errors.DatasetError` whose ``problems``
  attribute lists ``{file, shape, message}``.
* Atomic: the dataset is built in a hidden sibling of ``dst`` and renamed
  into place at the end, so a failed or killed conversion leaves no partial
  ``dst`` (at worst a hidden ``.<dst>.segzoo-tmp-*`` sibling). A non-empty
  ``dst`` is refused unless ``overwrite=True`` or it was made by an earlier
  conversion of the same source (marker file ``.segzoo-labelme.json``).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import random
import shutil
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional, Union

import cv2
import numpy as np

from ..errors import ConfigError, DatasetError
from ._imageio import EXTENSION, DecodeError, decode_image, sniff_format
from .labelme_shapes import AREA_TYPES, SKIPPED_TYPES, _draw, _Errors, _validate_shapes  # noqa: F401  (AREA_TYPES moved)
from .listfile import IMAGE_EXTENSIONS, format_list_line
from .split import split_counts

PathLike = Union[str, os.PathLike]

__all__ = ["convert_labelme", "ConversionReport", "BACKGROUND", "IGNORE"]

BACKGROUND = "_background_"
IGNORE = "__ignore__"
MARKER = ".segzoo-labelme.json"


@dataclass
class ConversionReport:
    """What :func:`convert_labelme` did."""

    src_dir: str
    dst_dir: str
    layout: str  # "flat" or "paddlex"
    num_images: int
    class_names: list  # class_names[i] is class i; 255 (__ignore__) is not listed
    uses_ignore: bool
    train_samples: int
    val_samples: int
    split: str
    skipped_shapes: int = 0
    warnings: list = field(default_factory=list)  # {file, shape, message}

    def to_dict(self) -> dict:
        return asdict(self)


def _find_jsons(src: Path, errors: _Errors, warnings: list) -> tuple[str, list[Path], Optional[dict]]:
    """(layout, sorted JSON paths, {stem: "train"/"val"} from PaddleX lists or None)."""
    ann = src / "annotations"
    if ann.is_dir() and any(ann.glob("*.json")):
        layout = "paddlex"
        jsons = sorted(ann.glob("*.json"))
    else:
        layout = "flat"
        jsons = sorted(src.glob("*.json"))
    if not jsons:
        raise DatasetError(
            f"{src}: no LabelMe JSON files found (looked for {src}/*.json and {src}/annotations/*.json)."
        )
    assignment = None
    lists = [src / "train_anno_list.txt", src / "val_anno_list.txt"]
    if layout == "paddlex" and all(p.is_file() for p in lists):
        assignment = {}
        listed: list[Path] = []
        for split_name, lst in zip(("train", "val"), lists):
            with open(lst, encoding="utf-8-sig") as fh:
                for number, raw in enumerate(fh, 1):
                    text = raw.strip().replace("\\", "/")
                    if not text:
                        continue
                    p = (src / text).resolve()
                    if not p.is_file():
                        errors.add(lst, f"line {number}: the listed annotation {text!r} does not exist")
                        continue
                    if p.stem in assignment:
                        errors.add(lst, f"line {number}: {text!r} is listed twice (train and val lists)")
                        continue
                    assignment[p.stem] = split_name
                    listed.append(p)
        unlisted = [j for j in jsons if j.stem not in assignment]
        if unlisted:
            warnings.append(
                {
                    "file": "train_anno_list.txt",
                    "shape": None,
                    "message": f"{len(unlisted)} JSON file(s) are in neither train_anno_list.txt nor "
                    f"val_anno_list.txt and were not converted (first: {unlisted[0].name})",
                }
            )
        jsons = sorted(listed)
    elif layout == "paddlex" and any(p.is_file() for p in lists):
        warnings.append(
            {
                "file": None,
                "shape": None,
                "message": "only one of train_anno_list.txt / val_anno_list.txt exists; "
                "the split was made by seed instead",
            }
        )
    return layout, jsons, assignment


def _load_json(path: Path, errors: _Errors) -> Optional[dict]:
    try:
        with open(path, "r", encoding="utf-8-sig") as fh:
            data = json.load(fh)
    except json.JSONDecodeError as exc:
        errors.add(path, f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
        return None
    except UnicodeDecodeError as exc:
        errors.add(path, f"not UTF-8 text ({exc.reason} at byte {exc.start})")
        return None
    except OSError as exc:
        errors.add(path, f"cannot read it ({exc.strerror})")
        return None
    if not isinstance(data, dict) or not isinstance(data.get("shapes"), list):
        errors.add(path, "not a LabelMe annotation: the top level must be an object with a 'shapes' list")
        return None
    return data


def _find_image(json_path: Path, ip, src: Path, layout: str) -> tuple[Optional[Path], list[Path]]:
    """The image file of a JSON and the candidates tried (see the module docstring for the order)."""
    tried: list[Path] = []
    if isinstance(ip, str) and ip.strip():
        rel = ip.strip().replace("\\", "/")
        cands = [json_path.parent / rel]
        base = rel.rsplit("/", 1)[-1]
        if layout == "paddlex":
            cands.append(src / "images" / base)
        cands.append(json_path.parent / base)
        for c in cands:
            if c not in tried:
                tried.append(c)
                if c.is_file():
                    return c, tried
    return None, tried


def _same_tree(a: Path, b: Path) -> bool:
    a, b = a.resolve(), b.resolve()
    return a == b or a in b.parents or b in a.parents


def convert_labelme(
    src_dir: PathLike,
    dst_dir: PathLike,
    *,
    overwrite: bool = False,
    val_percent: int = 20,
    seed: int = 0,
) -> ConversionReport:
    """Convert a LabelMe folder into a SegDataset at ``dst_dir`` (see the module docstring).

    Raises :class:`~segzoo.errors.DatasetError` (all problems at once, with a
    ``problems`` list) and leaves ``dst_dir`` untouched on failure.
    """
    src = Path(src_dir).absolute()
    dst = Path(dst_dir).absolute()
    if isinstance(val_percent, bool) or not isinstance(val_percent, int) or not 1 <= val_percent <= 99:
        raise ConfigError(f"val_percent: must be an integer in 1..99, got {val_percent!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"seed: must be an integer, got {seed!r}")
    if not src.is_dir():
        raise DatasetError(f"{src}: LabelMe source folder not found.")
    if _same_tree(src, dst):
        raise DatasetError(
            f"{dst}: the destination overlaps the LabelMe source {src}; convert into a separate folder."
        )
    if dst.exists():
        if not dst.is_dir():
            raise DatasetError(f"{dst}: exists and is not a directory.")
        if any(dst.iterdir()) and not overwrite:
            marker = dst / MARKER
            same_src = False
            if marker.is_file():
                try:
                    same_src = json.loads(marker.read_text(encoding="utf-8")).get("src_dir") == str(src)
                except (OSError, ValueError):
                    same_src = False
            if not same_src:
                raise DatasetError(
                    f"{dst}: the destination is not empty. Fix: choose an empty folder, or pass "
                    "overwrite=True (`--overwrite`) to replace it."
                )

    warnings: list[dict] = []
    errors = _Errors(src)
    layout, jsons, assignment = _find_jsons(src, errors, warnings)

    # pass 1: parse, validate, number the classes
    records = []
    names: list[str] = []
    uses_ignore = False
    for jp in jsons:
        data = _load_json(jp, errors)
        if data is None:
            continue
        shapes = _validate_shapes(jp, data, errors)
        for _, shape, label in shapes:
            if shape.get("shape_type") in SKIPPED_TYPES:
                continue
            if label == IGNORE:
                uses_ignore = True
            elif label != BACKGROUND and label not in names:
                names.append(label)
        records.append((jp, data.get("imagePath"), data.get("imageHeight"), data.get("imageWidth"), shapes))
    if len(names) > 254:
        raise DatasetError(f"{src}: {len(names)} classes; a SegDataset holds at most 254 besides the background.")
    ids = {BACKGROUND: 0, IGNORE: 255, **{n: i + 1 for i, n in enumerate(names)}}

    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.parent / f".{dst.name}.segzoo-tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    skipped = 0
    try:
        (tmp / "images").mkdir(parents=True)
        (tmp / "annotations").mkdir()
        done: list[tuple[str, str, str]] = []  # (stem, image_rel, label_rel)
        for jp, image_path, jh, jw, shapes in records:
            img_file, tried = _find_image(jp, image_path, src, layout)
            if img_file is not None:
                try:
                    raw = img_file.read_bytes()
                except OSError as exc:
                    errors.add(jp, f"cannot read the image {errors.rel(img_file)} ({exc.strerror})")
                    continue
                ext = img_file.suffix.lower() if img_file.suffix.lower() in IMAGE_EXTENSIONS else None
            else:
                full = _load_json(jp, errors)  # read again for imageData (kept out of memory until now)
                b64 = full.get("imageData") if full else None
                if not b64:
                    where = ", ".join(str(errors.rel(t)) for t in tried) or "(no imagePath)"
                    errors.add(jp, f"image not found (looked for {where}) and the JSON has no imageData")
                    continue
                try:
                    raw = base64.b64decode(b64, validate=False)
                except (binascii.Error, ValueError) as exc:
                    errors.add(jp, f"imageData is not valid base64 ({exc})")
                    continue
                ext = None
            fmt = sniff_format(raw)
            ext = ext or EXTENSION.get(fmt or "", ".png")
            try:
                decoded = decode_image(raw)
            except DecodeError as exc:
                errors.add(jp, f"the image {img_file.name if img_file else '(imageData)'} cannot be read: {exc}")
                continue
            w, h = decoded.size
            if isinstance(jh, int) and isinstance(jw, int) and (jw, jh) != (w, h):
                extra = (
                    f" (the stored pixels are {decoded.stored_size[0]}×{decoded.stored_size[1]}, "
                    f"EXIF orientation {decoded.orientation})"
                    if decoded.orientation != 1
                    else ""
                )
                errors.add(
                    jp,
                    f"imageWidth×imageHeight in the JSON is {jw}×{jh} but the image is {w}×{h}{extra}; "
                    "the annotation does not belong to this image",
                )
                continue
            lbl = np.zeros((h, w), dtype=np.uint8)
            ok = True
            for i, shape, label in shapes:
                if shape.get("shape_type") in SKIPPED_TYPES:
                    skipped += 1
                    warnings.append(
                        {
                            "file": errors.rel(jp),
                            "shape": i,
                            "message": f"shape #{i} (label {label!r}) is a {shape.get('shape_type')} with no "
                            "area; skipped",
                        }
                    )
                    continue
                try:
                    _draw(lbl, shape, ids[label])
                except (ValueError, binascii.Error, cv2.error) as exc:
                    errors.add(jp, f"shape #{i} (label {label!r}): cannot be drawn ({exc})", i)
                    ok = False
            if not ok:
                continue
            stem = jp.stem
            image_rel, label_rel = f"images/{stem}{ext}", f"annotations/{stem}.png"
            (tmp / image_rel).write_bytes(raw)
            encoded, buf = cv2.imencode(".png", lbl)
            if not encoded:  # pragma: no cover - cv2 always encodes uint8 H×W
                raise DatasetError(f"{jp}: OpenCV could not encode the mask")
            (tmp / label_rel).write_bytes(buf.tobytes())
            done.append((stem, image_rel, label_rel))

        if errors.items:
            shown = "\n  ".join(
                f"{e['file']}: {e['message']}" for e in errors.items[:30]
            )
            more = f"\n  ... and {len(errors.items) - 30} more" if len(errors.items) > 30 else ""
            err = DatasetError(
                f"LabelMe conversion of {src} failed, nothing was written to {dst}; "
                f"{len(errors.items)} problem(s):\n  {shown}{more}"
            )
            err.problems = errors.items  # type: ignore[attr-defined]
            raise err

        # split
        if assignment is not None:
            train = [d for d in done if assignment.get(d[0]) == "train"]
            val = [d for d in done if assignment.get(d[0]) == "val"]
            split_desc = "train_anno_list.txt / val_anno_list.txt"
            if not train or not val:
                raise DatasetError(
                    f"{src}: train_anno_list.txt and val_anno_list.txt must each list at least one annotation."
                )
        else:
            order = sorted(done)
            n_train, _n_val = split_counts(len(order), val_percent)
            random.Random(seed).shuffle(order)
            train, val = sorted(order[:n_train]), sorted(order[n_train:])
            split_desc = f"seed {seed}, {val_percent}% val"
        (tmp / "train.txt").write_text("".join(format_list_line(i, l) for _, i, l in train), encoding="utf-8")
        (tmp / "val.txt").write_text("".join(format_list_line(i, l) for _, i, l in val), encoding="utf-8")
        (tmp / "class_name.txt").write_text("\n".join([BACKGROUND, *names]) + "\n", encoding="utf-8")
        (tmp / MARKER).write_text(json.dumps({"src_dir": str(src), "class_ids": ids}, ensure_ascii=False), encoding="utf-8")

        # move into place
        if dst.exists():
            old = dst.parent / f".{dst.name}.segzoo-old-{uuid.uuid4().hex[:8]}"
            try:
                os.rmdir(dst)  # empty: remove it, then rename below
            except OSError:
                os.replace(dst, old)
            os.replace(tmp, dst)
            if old.exists():
                shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dst)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)

    return ConversionReport(
        src_dir=str(src),
        dst_dir=str(dst),
        layout=layout,
        num_images=len(done),
        class_names=[BACKGROUND, *names],
        uses_ignore=uses_ignore,
        train_samples=len(train),
        val_samples=len(val),
        split=split_desc,
        skipped_shapes=skipped,
        warnings=warnings,
    )
