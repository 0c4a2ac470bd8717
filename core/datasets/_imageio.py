"""Decoding images and label masks the one way segzoo reads them everywhere.

The reader (:class:`~segzoo.datasets.SegDataset`), the checker and the LabelMe
converter all decode through this module, so what the checker accepts is what
training reads. Pillow does the decoding; OpenCV only converts colours.

Decisions, written down:

* **Bytes first.** Files are read into memory and decoded from the bytes with
  ``PIL.Image.open(BytesIO(data))``: it works for non-ASCII paths on every
  platform, and the same open image gives the EXIF orientation. Only the
  formats segzoo lists are tried (JPEG, PNG, BMP, GIF, TIFF, WebP, JPEG 2000,
  PNM), never Pillow's other plugins (EPS would start Ghostscript).
* **Broken files are errors.** Pillow raises on a truncated or corrupt JPEG;
  a PNG is also checked end to end with ``Image.verify()`` (chunk CRCs and the
  ``IEND`` chunk), because Pillow's PNG decoder stops once it has the pixels.
  Images Pillow thinks too large (:data:`PIL.Image.MAX_IMAGE_PIXELS`, the
  decompression-bomb guard) are refused too. Every failure is a
  :class:`DecodeError` saying why. (If some code sets
  ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES``, Pillow pads truncated JPEGs instead.)
* **EXIF orientation** of JPEGs and PNGs is the ``Orientation`` tag of the EXIF
  block Pillow reads (JPEG ``APP1``, PNG ``eXIf``); the pixels are decoded as
  stored and turned upright here with numpy (:func:`apply_orientation`). So
  the checker knows both the stored size and the displayed size. This is the
  picture ``cv2.imread(path, cv2.IMREAD_COLOR)`` (PaddleSeg's reader) and
  LabelMe show. Orientation given only in XMP, as Pillow's ``getexif()`` also
  reads it, is ignored, as OpenCV ignores it. Other formats (WebP, TIFF) are
  read unrotated (recent OpenCV turns WebPs too; ``_EXIF_FORMATS`` decides).
* **Label masks are never rotated**: PaddleSeg reads them with PIL, which
  ignores EXIF, and masks are PNGs without orientation anyway.
* **Palette ("P"-mode) masks** are read as their *indices*, which is what PIL
  and PaddleSeg give: Pillow's ``np.asarray`` of a "P" image (PNG at any bit
  depth, GIF, BMP, TIFF), even when the palette repeats colours.
* **Images** come out as 3-channel BGR ``uint8``: grayscale is replicated,
  alpha dropped, 16-bit scaled to 8 bits (the high byte, as ``IMREAD_COLOR``
  does), palettes expanded to their colours. Pillow's and OpenCV's wheels
  both decode JPEGs with libjpeg-turbo, so the pixels equal ``cv2.imread``'s
  (the tests check this for JPEG, PNG, BMP, TIFF, WebP, GIF and PNM; CMYK
  JPEGs may differ by one level).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

# ---------------------------------------------------------------------------
# format sniffing


def sniff_format(data: bytes) -> Optional[str]:
    """The image format from the magic bytes: jpeg, png, bmp, gif, tiff, webp or None."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:2] == b"BM":
        return "bmp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


EXTENSION = {"jpeg": ".jpg", "png": ".png", "bmp": ".bmp", "gif": ".gif", "tiff": ".tif", "webp": ".webp"}

# The Pillow plugins segzoo decodes with ("JPEG" includes multi-picture MPO files).
_PIL_FORMATS = ("JPEG", "PNG", "BMP", "GIF", "TIFF", "WEBP", "JPEG2000", "PPM")
_READABLE = "JPEG, PNG, BMP, GIF, TIFF, WebP, JPEG 2000 or PNM"
# Formats (as sniffed) whose EXIF orientation is applied.
_EXIF_FORMATS = ("jpeg", "png")
_ORIENTATION_TAG = 0x0112


class DecodeError(ValueError):
    """The bytes are not a readable image; the message says why."""


def _open(data: bytes, fmt: Optional[str]) -> Image.Image:
    """Open and fully decode ``data`` with Pillow; :class:`DecodeError` if it cannot."""
    if not data:
        raise DecodeError("the file is empty (0 bytes)")
    what = f"the {fmt.upper()}" if fmt else "the file"
    try:
        if fmt == "png":
            with Image.open(io.BytesIO(data), formats=_PIL_FORMATS) as probe:
                probe.verify()  # every chunk's CRC, up to IEND
        im = Image.open(io.BytesIO(data), formats=_PIL_FORMATS)
        im.load()
    except UnidentifiedImageError:
        if fmt:
            raise DecodeError(f"{what} is corrupt (Pillow cannot identify it)") from None
        raise DecodeError(f"the file is corrupt or not an image format segzoo reads ({_READABLE})") from None
    except Image.DecompressionBombError as exc:
        raise DecodeError(
            f"{what} is too large to decode safely ({exc} Raise PIL.Image.MAX_IMAGE_PIXELS if you trust it)"
        ) from None
    except Exception as exc:  # any failure inside Pillow's decoders means the bytes are broken
        state = "truncated" if "truncat" in str(exc).lower() else "corrupt"
        raise DecodeError(f"{what} is {state} (Pillow: {str(exc) or type(exc).__name__})") from None
    return im


def _is_16bit(im: Image.Image) -> bool:
    # 16-bit grayscale: "I;16*" modes, or "I" for 16-bit PGMs (and PNGs in older Pillow versions)
    return im.mode.startswith("I;16") or (im.mode == "I" and im.format in ("PNG", "PPM"))


# ---------------------------------------------------------------------------
# EXIF orientation


def _orientation(im: Image.Image, fmt: Optional[str]) -> int:
    if fmt not in _EXIF_FORMATS or not im.info.get("exif"):
        return 1
    # Image.Exif on the EXIF block itself: im.getexif() would also take an
    # orientation from XMP, which OpenCV (PaddleSeg's reader) ignores.
    exif = Image.Exif()
    try:
        exif.load(im.info["exif"])
        value = exif.get(_ORIENTATION_TAG, 1)
    except Exception:  # malformed EXIF block: no usable orientation
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def exif_orientation(data: bytes) -> int:
    """The EXIF orientation (1..8) of a JPEG or PNG; 1 when absent or unreadable."""
    fmt = sniff_format(data)
    if fmt not in _EXIF_FORMATS:
        return 1
    try:
        im = Image.open(io.BytesIO(data), formats=_PIL_FORMATS)
        if fmt == "png":
            im.load()  # a PNG's eXIf chunk may follow the image data
    except Exception:
        return 1
    return _orientation(im, fmt)


def apply_orientation(img: np.ndarray, orientation: int) -> np.ndarray:
    """Turn a stored image into the upright picture EXIF ``orientation`` describes."""
    if orientation == 2:
        return img[:, ::-1]
    if orientation == 3:
        return img[::-1, ::-1]
    if orientation == 4:
        return img[::-1, :]
    if orientation == 5:
        return np.swapaxes(img, 0, 1)
    if orientation == 6:
        return np.ascontiguousarray(np.rot90(img, -1))  # 90° clockwise
    if orientation == 7:
        return np.swapaxes(img[::-1, ::-1], 0, 1)
    if orientation == 8:
        return np.ascontiguousarray(np.rot90(img, 1))  # 90° counter-clockwise
    return img


def oriented_size(width: int, height: int, orientation: int) -> tuple[int, int]:
    """(width, height) after applying the EXIF orientation."""
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


# ---------------------------------------------------------------------------
# public decoders


@dataclass
class DecodedImage:
    """An image as segzoo sees it."""

    image: np.ndarray  # upright, H×W×3 BGR uint8
    stored_size: tuple[int, int]  # (width, height) of the pixels as stored
    orientation: int  # EXIF orientation, 1 = none
    format: Optional[str]

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) after EXIF orientation."""
        return (self.image.shape[1], self.image.shape[0])


def _bgr(im: Image.Image) -> np.ndarray:
    """A decoded Pillow image as H×W×3 BGR uint8."""
    if _is_16bit(im):
        gray = (np.asarray(im) >> 8).astype(np.uint8)
        return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    if im.mode in ("I", "F"):
        raise DecodeError(
            f"unsupported pixel type (Pillow mode {im.mode!r}, 32-bit); segzoo reads 8- and 16-bit images"
        )
    if im.mode == "L":
        return cv2.cvtColor(np.asarray(im), cv2.COLOR_GRAY2BGR)
    if im.mode == "RGB":
        return cv2.cvtColor(np.asarray(im), cv2.COLOR_RGB2BGR)
    if im.mode == "RGBA":
        return cv2.cvtColor(np.asarray(im), cv2.COLOR_RGBA2BGR)
    if im.mode == "P" and "transparency" in im.info:
        return cv2.cvtColor(np.asarray(im.convert("RGBA")), cv2.COLOR_RGBA2BGR)
    return cv2.cvtColor(np.asarray(im.convert("RGB")), cv2.COLOR_RGB2BGR)  # 1, LA, P, CMYK, YCbCr, ...


def decode_image(data: bytes) -> DecodedImage:
    """Decode image bytes to an upright 3-channel BGR ``uint8`` array.

    Raises :class:`DecodeError` for empty, truncated or undecodable data.
    """
    fmt = sniff_format(data)
    im = _open(data, fmt)
    img = _bgr(im)
    stored = (img.shape[1], img.shape[0])
    orientation = _orientation(im, fmt)
    if orientation != 1:
        img = np.ascontiguousarray(apply_orientation(img, orientation))
    return DecodedImage(img, stored, orientation, fmt)


@dataclass
class DecodedLabel:
    """A label file's raw content: ``array`` may be 2-D or 3-D, 8- or 16-bit."""

    array: np.ndarray
    kind: str  # "gray", "palette" or "color"
    format: Optional[str]


def decode_label(data: bytes) -> DecodedLabel:
    """Decode mask bytes without any conversion (palette masks give their indices).

    Colour masks come out in BGR(A) order, 16-bit masks as ``uint16``.
    Raises :class:`DecodeError` for empty, truncated or undecodable data.
    """
    fmt = sniff_format(data)
    im = _open(data, fmt)
    if im.mode == "P":
        return DecodedLabel(np.array(im), "palette", fmt)
    if _is_16bit(im):
        arr = np.asarray(im).astype(np.uint16)  # native byte order
    elif im.mode in ("L", "I", "F"):
        arr = np.array(im)
    elif im.mode == "1":
        arr = np.array(im.convert("L"))  # 0/255, as OpenCV reads 1-bit images
    elif im.mode == "RGB":
        arr = cv2.cvtColor(np.asarray(im), cv2.COLOR_RGB2BGR)
    elif im.mode == "RGBA":
        arr = cv2.cvtColor(np.asarray(im), cv2.COLOR_RGBA2BGRA)
    elif "A" in im.mode:  # LA, PA: colours plus alpha, as OpenCV reads them
        arr = cv2.cvtColor(np.asarray(im.convert("RGBA")), cv2.COLOR_RGBA2BGRA)
    else:  # CMYK, YCbCr, ...
        arr = cv2.cvtColor(np.asarray(im.convert("RGB")), cv2.COLOR_RGB2BGR)
    return DecodedLabel(arr, "gray" if arr.ndim == 2 else "color", fmt)
