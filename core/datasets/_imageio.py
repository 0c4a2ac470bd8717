"""Decoding images and label masks the one way segzoo reads them everywhere.

The reader (:class:`~segzoo.datasets.SegDataset`), the checker and the LabelMe
converter all decode through this module, so what the checker accepts is what
training reads.

Decisions, written down:

* **Bytes first.** Files are read into memory and decoded with
  ``cv2.imdecode``: it works for non-ASCII paths on every platform, and the
  same bytes give the EXIF orientation.
* **EXIF orientation** is read by this module from the JPEG ``APP1``/``Exif``
  segment (and from the PNG ``eXIf`` chunk), not left to OpenCV's flags: the
  pixels are decoded with ``IMREAD_UNCHANGED`` (which never rotates) and the
  orientation is applied here with numpy/cv2 flips and rotations. So the
  checker knows both the stored size and the displayed size, and the result
  does not depend on which OpenCV build applies which tag. For JPEGs this is
  the same picture ``cv2.imread(path, cv2.IMREAD_COLOR)`` (PaddleSeg's reader)
  and LabelMe show. Other formats (WebP, TIFF, HEIF) are read unrotated.
* **Label masks are never rotated**: PaddleSeg reads them with PIL, which
  ignores EXIF, and masks are PNGs without orientation anyway.
* **Palette ("P"-mode) PNG masks** must be read as their *indices* (that is
  what PIL and PaddleSeg give). OpenCV always expands a palette to colours, so
  this module reads the ``PLTE`` chunk and maps each decoded colour back to
  its index; when the palette has repeated colours (ambiguous), it decodes the
  PNG's index data itself (zlib + PNG row filters, numpy). PIL is not needed.
* **Images** come out as 3-channel BGR ``uint8``: grayscale is replicated,
  alpha dropped, 16-bit scaled to 8 bits (as ``IMREAD_COLOR`` does).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

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

# ---------------------------------------------------------------------------
# EXIF orientation


def _tiff_orientation(tiff: bytes) -> int:
    """Orientation tag (0x0112) of IFD0 in a TIFF-structured EXIF block; 1 if absent."""
    if len(tiff) < 8:
        return 1
    order = tiff[:2]
    if order == b"II":
        e = "<"
    elif order == b"MM":
        e = ">"
    else:
        return 1
    if struct.unpack(e + "H", tiff[2:4])[0] != 42:
        return 1
    ifd = struct.unpack(e + "I", tiff[4:8])[0]
    if ifd + 2 > len(tiff):
        return 1
    count = struct.unpack(e + "H", tiff[ifd : ifd + 2])[0]
    for k in range(count):
        off = ifd + 2 + 12 * k
        if off + 12 > len(tiff):
            break
        tag, typ, n = struct.unpack(e + "HHI", tiff[off : off + 8])
        if tag == 0x0112:
            if typ == 3:  # SHORT, stored left-justified in the 4-byte value field
                value = struct.unpack(e + "H", tiff[off + 8 : off + 10])[0]
            elif typ == 4:  # LONG (non-standard but seen)
                value = struct.unpack(e + "I", tiff[off + 8 : off + 12])[0]
            else:
                return 1
            return value if 1 <= value <= 8 else 1
    return 1


def exif_orientation(data: bytes) -> int:
    """The EXIF orientation (1..8) of a JPEG (APP1) or PNG (eXIf); 1 when absent or unreadable."""
    fmt = sniff_format(data)
    try:
        if fmt == "jpeg":
            pos = 2
            n = len(data)
            while pos + 4 <= n:
                if data[pos] != 0xFF:
                    return 1
                marker = data[pos + 1]
                if marker == 0xFF:  # fill byte
                    pos += 1
                    continue
                if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                    pos += 2
                    continue
                if marker in (0xDA, 0xD9):  # start of scan / end: no APP1 after this point
                    return 1
                length = struct.unpack(">H", data[pos + 2 : pos + 4])[0]
                if marker == 0xE1 and data[pos + 4 : pos + 10] == b"Exif\x00\x00":
                    return _tiff_orientation(data[pos + 10 : pos + 2 + length])
                pos += 2 + length
            return 1
        if fmt == "png":
            for ctype, chunk in _png_chunks(data):
                if ctype == b"eXIf":
                    return _tiff_orientation(chunk)
                if ctype == b"IDAT":  # eXIf must come before the image data
                    return 1
            return 1
    except (struct.error, IndexError, ValueError):
        return 1
    return 1


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
# PNG chunks and palette indices


def _png_chunks(data: bytes):
    pos = 8
    n = len(data)
    while pos + 8 <= n:
        length, ctype = struct.unpack(">I4s", data[pos : pos + 8])
        start = pos + 8
        end = start + length
        if end + 4 > n:
            raise ValueError("truncated PNG chunk")
        yield ctype, data[start:end]
        if ctype == b"IEND":
            return
        pos = end + 4  # skip CRC


@dataclass
class _PngInfo:
    width: int
    height: int
    bit_depth: int
    color_type: int
    interlace: int
    palette: Optional[np.ndarray]  # (n, 3) RGB
    has_iend: bool
    idat: list


def _png_info(data: bytes) -> _PngInfo:
    width = height = bit_depth = color_type = interlace = 0
    palette = None
    has_iend = False
    idat: list = []
    for ctype, chunk in _png_chunks(data):
        if ctype == b"IHDR":
            width, height, bit_depth, color_type, _c, _f, interlace = struct.unpack(">IIBBBBB", chunk[:13])
        elif ctype == b"PLTE":
            palette = np.frombuffer(chunk, dtype=np.uint8)[: len(chunk) // 3 * 3].reshape(-1, 3)
        elif ctype == b"IDAT":
            idat.append(chunk)
        elif ctype == b"IEND":
            has_iend = True
    return _PngInfo(width, height, bit_depth, color_type, interlace, palette, has_iend, idat)


def _unfilter_rows(raw: bytes, height: int, stride: int, bpp: int) -> np.ndarray:
    """Undo the PNG per-row filters; returns a (height, stride) uint8 array."""
    buf = np.frombuffer(raw, dtype=np.uint8)
    if buf.size < height * (stride + 1):
        raise ValueError("PNG image data is truncated")
    rows = buf[: height * (stride + 1)].reshape(height, stride + 1)
    out = np.zeros((height, stride), dtype=np.uint8)
    prev = np.zeros(stride, dtype=np.uint8)
    for y in range(height):
        ftype = int(rows[y, 0])
        line = rows[y, 1:].copy()
        if ftype == 0:
            pass
        elif ftype == 1:  # Sub
            if bpp == 1:
                line = np.cumsum(line, dtype=np.uint8)
            else:
                for x in range(bpp, stride):
                    line[x] = (int(line[x]) + int(line[x - bpp])) & 0xFF
        elif ftype == 2:  # Up
            line = (line.astype(np.uint16) + prev).astype(np.uint8)
        elif ftype in (3, 4):  # Average, Paeth: sequential along the row
            cur = line.tolist()
            up = prev.tolist()
            for x in range(stride):
                a = cur[x - bpp] if x >= bpp else 0
                b = up[x]
                if ftype == 3:
                    cur[x] = (cur[x] + ((a + b) >> 1)) & 0xFF
                else:
                    c = up[x - bpp] if x >= bpp else 0
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    pred = a if (pa <= pb and pa <= pc) else (b if pb <= pc else c)
                    cur[x] = (cur[x] + pred) & 0xFF
            line = np.array(cur, dtype=np.uint8)
        else:
            raise ValueError(f"bad PNG filter type {ftype}")
        out[y] = line
        prev = line
    return out


def _decode_palette_indices_raw(info: _PngInfo) -> np.ndarray:
    """Decode a non-interlaced palette PNG's index data with zlib + numpy."""
    if info.interlace:
        raise ValueError("interlaced palette PNG with repeated palette colours")
    depth = info.bit_depth
    stride = (info.width * depth + 7) // 8
    raw = zlib.decompress(b"".join(info.idat))
    rows = _unfilter_rows(raw, info.height, stride, 1)
    if depth == 8:
        return rows[:, : info.width].copy()
    bits = np.unpackbits(rows, axis=1)  # MSB first, as PNG packs them
    per = bits.shape[1] // depth
    bits = bits[:, : per * depth].reshape(info.height, per, depth)
    weights = (1 << np.arange(depth - 1, -1, -1)).astype(np.uint8)
    vals = (bits * weights).sum(axis=2).astype(np.uint8)
    return vals[:, : info.width].copy()


def _palette_indices(data: bytes, info: _PngInfo) -> Optional[np.ndarray]:
    """Indices of a palette PNG; None when OpenCV cannot decode it at all."""
    buf = np.frombuffer(data, dtype=np.uint8)
    pal = info.palette
    if pal is not None and len(pal):
        keys = (pal[:, 0].astype(np.int64) << 16) | (pal[:, 1].astype(np.int64) << 8) | pal[:, 2]
        if len(np.unique(keys)) == len(keys):  # unique colours: map decoded colours back
            bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
            if bgr is None:
                return None
            pix = (bgr[:, :, 2].astype(np.int64) << 16) | (bgr[:, :, 1].astype(np.int64) << 8) | bgr[:, :, 0]
            order = np.argsort(keys)
            sk = keys[order]
            pos = np.clip(np.searchsorted(sk, pix), 0, len(sk) - 1)
            if np.array_equal(sk[pos], pix):
                return order[pos].astype(np.uint8)
    # repeated colours (or colours OpenCV produced that are not in PLTE): decode the indices
    return _decode_palette_indices_raw(info)


# ---------------------------------------------------------------------------
# public decoders


class DecodeError(ValueError):
    """The bytes are not a readable image; the message says why."""


def _jpeg_truncated(data: bytes) -> bool:
    """True when a JPEG has no end-of-image marker after its first scan."""
    pos = 2
    n = len(data)
    try:
        while pos + 4 <= n:
            if data[pos] != 0xFF:
                return False  # not a marker where one should be: let the decoder judge
            marker = data[pos + 1]
            if marker == 0xFF:
                pos += 1
                continue
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                pos += 2
                continue
            if marker == 0xDA:
                return data.find(b"\xff\xd9", pos) == -1
            length = struct.unpack(">H", data[pos + 2 : pos + 4])[0]
            pos += 2 + length
    except struct.error:
        return True
    return True


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


def decode_image(data: bytes) -> DecodedImage:
    """Decode image bytes to an upright 3-channel BGR ``uint8`` array.

    Raises :class:`DecodeError` for empty, truncated or undecodable data.
    """
    if not data:
        raise DecodeError("the file is empty (0 bytes)")
    fmt = sniff_format(data)
    if fmt == "jpeg" and _jpeg_truncated(data):
        raise DecodeError("the JPEG is truncated (no end-of-image marker)")
    if fmt == "png":
        try:
            if not _png_info(data).has_iend:
                raise DecodeError("the PNG is truncated (no IEND chunk)")
        except (ValueError, struct.error) as exc:
            raise DecodeError(f"the PNG is corrupt ({exc})") from None
    img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        kind = f"a {fmt.upper()} OpenCV cannot decode" if fmt else "not an image format OpenCV can read"
        raise DecodeError(f"the file is corrupt or {kind}")
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise DecodeError(f"unsupported pixel type {img.dtype} (segzoo reads 8- and 16-bit images)")
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    elif img.shape[2] == 1:
        img = cv2.cvtColor(img[:, :, 0], cv2.COLOR_GRAY2BGR)
    elif img.shape[2] != 3:
        raise DecodeError(f"unsupported number of channels {img.shape[2]}")
    stored = (img.shape[1], img.shape[0])
    orientation = exif_orientation(data)
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
    """Decode mask bytes without any conversion (palette PNGs give their indices).

    Raises :class:`DecodeError` for empty, truncated or undecodable data.
    """
    if not data:
        raise DecodeError("the file is empty (0 bytes)")
    fmt = sniff_format(data)
    if fmt == "jpeg" and _jpeg_truncated(data):
        raise DecodeError("the JPEG is truncated (no end-of-image marker)")
    if fmt == "png":
        try:
            info = _png_info(data)
            if not info.has_iend:
                raise DecodeError("the PNG is truncated (no IEND chunk)")
            if info.color_type == 3:
                idx = _palette_indices(data, info)
                if idx is None:
                    raise DecodeError("the file is corrupt or a PNG OpenCV cannot decode")
                return DecodedLabel(idx, "palette", fmt)
        except DecodeError:
            raise
        except (ValueError, struct.error, zlib.error) as exc:
            raise DecodeError(f"the PNG is corrupt ({exc})") from None
    arr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None or arr.size == 0:
        kind = f"a {fmt.upper()} OpenCV cannot decode" if fmt else "not an image format OpenCV can read"
        raise DecodeError(f"the file is corrupt or {kind}")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    return DecodedLabel(arr, "gray" if arr.ndim == 2 else "color", fmt)
