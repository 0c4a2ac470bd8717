"""Inference inputs: arrays, image files, URLs, directories, PDFs and lists of these.

:func:`iter_inputs` turns whatever the user passed to ``predict()`` into a
stream of :class:`InputItem` (one decoded BGR image each, with where it came
from). It is a generator all the way down: a directory of 10,000 images is
walked lazily and each image is decoded only when the predictor asks for it.

* **arrays**: ``H×W×3`` BGR ``uint8`` (as OpenCV reads), ``H×W`` grayscale,
  ``H×W×1``, or ``H×W×4`` BGRA (alpha dropped); ``uint16`` is scaled to 8 bits.
* **image files**: :data:`IMAGE_EXTENSIONS`, any case of the extension;
  decoded EXIF-orientation-aware, exactly as the dataset reader does.
* **http(s) URLs**: downloaded with a time limit (the whole download, not
  per read) and a size cap; an image or a PDF (told apart by their bytes).
* **directories**: walked recursively in sorted order (by path components),
  taking image files and PDFs, ignoring other files; symbolic links to
  directories are not followed. An entry with an image or PDF extension that
  is not a regular file (a named pipe, a device, a socket, a broken link) is
  an error naming it, not skipped: reading it could block forever, and
  skipping it would hide an input.
* **PDFs**: one item per page, rendered with pypdfium2, with ``page_index``.
* **lists / tuples**: of any of the above, in order.

Only regular files are read: a named pipe (FIFO), a device or a socket is
refused before it is opened (and a file is opened without blocking and
checked again). URLs other than http(s) (``ftp://``, ``file://``, ...) are
refused with the schemes segzoo reads.

Anything that cannot be read raises :class:`~segzoo.errors.InputError` naming
the input; nothing is skipped silently. :func:`check_inputs` runs every check
that needs no reading (paths, file types, extensions, URL schemes, directory
walks) up front: the CLI calls it before it builds a model or writes a file.
"""

from __future__ import annotations

import os
import re
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional
from urllib.parse import unquote, urlparse

import numpy as np

from ..errors import InputError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
PDF_EXTENSIONS = (".pdf",)

#: default limits of a URL download
DEFAULT_URL_TIMEOUT = 30.0  # seconds, for the whole download
DEFAULT_URL_MAX_BYTES = 64 * 1024 * 1024

#: pages are rendered at ``PDF_SCALE`` × 72 dpi
PDF_SCALE = 2.0


@dataclass
class InputItem:
    """One image to predict, with its origin.

    ``input_path`` is the file path or URL (``None`` for arrays);
    ``page_index`` the 0-based page of a PDF (``None`` otherwise); ``name``
    the stem result files are named after; ``key`` identifies the input (two
    items with the same key are the same input).
    """

    image: np.ndarray
    input_path: Optional[str]
    page_index: Optional[int]
    name: str
    key: tuple


@dataclass(frozen=True)
class InputLimits:
    """Limits of URL downloads, the PDF rendering scale, and ``on_error(where, error)``: set, it skips unreadable inputs."""

    url_timeout: float = DEFAULT_URL_TIMEOUT
    url_max_bytes: int = DEFAULT_URL_MAX_BYTES
    pdf_scale: float = PDF_SCALE
    on_error: Optional[Callable[[str, InputError], None]] = None


URL_SCHEMES = ("http", "https")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+)://")


def is_url(value: Any) -> bool:
    return isinstance(value, str) and value.lower().startswith(("http://", "https://"))


def _check_scheme(value: str) -> None:
    """Refuse ``scheme://...`` strings other than http(s) URLs (as a path, ``//`` would collapse)."""
    m = _SCHEME.match(value)
    if m is None or m.group(1).lower() in URL_SCHEMES:
        return
    scheme = m.group(1).lower()
    local = ""
    if scheme == "file":
        local = f" (for a local file, give its path: {unquote(urlparse(value).path) or '/'})"
    raise InputError(
        f"input {value}: the URL scheme {scheme!r} is not supported; segzoo reads http:// and https:// "
        f"URLs and local paths{local}"
    )


def iter_inputs(inputs: Any, limits: InputLimits = InputLimits()) -> Iterator[InputItem]:
    """Yield one :class:`InputItem` per image (per page for PDFs), lazily, in order."""
    counter = {"arrays": 0}
    yield from _iter_one(inputs, limits, counter, top=True)


def _iter_one(value: Any, limits: InputLimits, counter: dict, top: bool = False) -> Iterator[InputItem]:
    if isinstance(value, np.ndarray):
        index = counter["arrays"]
        counter["arrays"] += 1
        yield InputItem(array_to_bgr(value, f"array input #{index}"), None, None, f"array_{index}", ("array", index))
    elif isinstance(value, (list, tuple)):
        if not value and top:
            raise InputError("the input list is empty; give at least one image, directory, PDF or URL")
        for element in value:
            yield from _iter_one(element, limits, counter)
    elif is_url(value):
        try:
            yield from _iter_url(value, limits)
        except InputError as exc:
            _refuse(exc, value, limits.on_error)
    elif isinstance(value, str) and _SCHEME.match(value):
        _check_scheme(value)
    elif isinstance(value, (str, os.PathLike)):
        yield from _iter_path(Path(value).expanduser(), limits)
    elif isinstance(value, (bytes, bytearray)):
        raise InputError(
            "raw bytes are not an input; decode them first (cv2.imdecode) or give a file path or URL"
        )
    else:
        raise InputError(
            f"unsupported input of type {type(value).__name__}: give a numpy array (BGR), an image "
            "path, a directory, a PDF, an http(s) URL, or a list of these"
        )


# -- arrays -----------------------------------------------------------------------------------
def array_to_bgr(array: np.ndarray, what: str = "array input") -> np.ndarray:
    """An input array as ``H×W×3`` BGR ``uint8`` (grayscale replicated, alpha dropped)."""
    img = np.asarray(array)
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    if img.dtype != np.uint8:
        raise InputError(
            f"{what} has dtype {img.dtype}; give uint8 pixels 0..255 (e.g. "
            "np.clip(x, 0, 255).astype(np.uint8)), as cv2.imread returns"
        )
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    elif img.ndim == 3 and img.shape[2] == 4:
        img = img[:, :, :3]
    if img.ndim != 3 or img.shape[2] != 3:
        raise InputError(
            f"{what} has shape {tuple(np.shape(array))}; give H×W (grayscale), H×W×3 (BGR) or H×W×4 (BGRA)"
        )
    if img.shape[0] == 0 or img.shape[1] == 0:
        raise InputError(f"{what} is empty (shape {tuple(np.shape(array))})")
    return np.ascontiguousarray(img)


# -- files and directories --------------------------------------------------------------------
def _kind(path: Path) -> Optional[str]:
    suffix = path.suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        return "image"
    if suffix in PDF_EXTENSIONS:
        return "pdf"
    return None


def single_image(value: Any) -> bool:
    """Whether ``value`` is one image (an array, an image file, a URL): nothing to read ahead of it."""
    if isinstance(value, np.ndarray):
        return value.ndim in (2, 3)
    if isinstance(value, str) and is_url(value):
        return True
    if isinstance(value, (str, os.PathLike)):
        path = Path(value).expanduser()
        return _kind(path) == "image" and path.is_file()
    return False


def _file_type(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _not_regular(path: Path, where: str = "") -> InputError:
    try:
        what = _file_type(path.stat().st_mode)
    except OSError:
        what = "a broken symbolic link" if path.is_symlink() else "not a regular file"
    return InputError(
        f"input {path}{where} is {what}, not a regular file; give image files, PDFs, directories or "
        "http(s) URLs (segzoo never reads from pipes or devices)"
    )


def _check_path(path: Path) -> str:
    """``"dir"`` or ``"file"`` for a local input; :class:`InputError` naming it when it cannot be read."""
    if path.is_dir():
        return "dir"
    if not path.exists() and not path.is_symlink():
        raise InputError(f"input {path} does not exist; give an existing image, directory, PDF or URL")
    if not path.is_file():
        raise _not_regular(path)
    if _kind(path) is None:
        raise InputError(
            f"input {path} has the unsupported extension {path.suffix or '(none)'!r}; supported: "
            f"{', '.join(IMAGE_EXTENSIONS + PDF_EXTENSIONS)} (any case)"
        )
    return "file"


def _empty_directory(path: Path) -> InputError:
    return InputError(
        f"directory {path} holds no image or PDF files (looked for "
        f"{', '.join(IMAGE_EXTENSIONS + PDF_EXTENSIONS)}, any case, in every subdirectory)"
    )


def _iter_path(path: Path, limits: InputLimits) -> Iterator[InputItem]:
    try:
        files = walk_directory(path) if _check_path(path) == "dir" else [path]
    except InputError as exc:
        return _refuse(exc, str(path), limits.on_error)
    file = None
    for file in files:
        try:
            yield from _iter_file(file, limits)
        except InputError as exc:  # with on_error: the rest of this file (a PDF's pages) is skipped
            _refuse(exc, str(file), limits.on_error)
    if file is None:
        raise _empty_directory(path)


def _refuse(error: InputError, where: str, on_error) -> None:
    if on_error is None:  # the default: the error ends the run
        raise error
    on_error(where, error)  # InputLimits.on_error: told, and the input is skipped


def check_inputs(inputs: Any) -> int:
    """Check ``inputs`` as :func:`iter_inputs` would, without reading an image or a URL; return the count.

    Every path must exist and be a directory or a regular image / PDF file,
    every directory must hold at least one (and no image or PDF entry that is
    a pipe or a device), every URL must be http(s). The count is of files,
    URLs and arrays (a PDF counts once, whatever its pages).
    """
    if isinstance(inputs, (list, tuple)):
        if not inputs:
            raise InputError("the input list is empty; give at least one image, directory, PDF or URL")
        return sum(check_inputs(item) if not isinstance(item, (list, tuple)) or item else 0 for item in inputs)
    if isinstance(inputs, np.ndarray) or is_url(inputs):
        return 1
    if isinstance(inputs, str) and _SCHEME.match(inputs):
        _check_scheme(inputs)
    if not isinstance(inputs, (str, os.PathLike)):
        list(_iter_one(inputs, InputLimits(), {"arrays": 0}))  # raises the unsupported-type error
        return 0
    path = Path(inputs).expanduser()
    if _check_path(path) == "file":
        return 1
    found = sum(1 for _ in walk_directory(path))
    if not found:
        raise _empty_directory(path)
    return found


def walk_directory(root: Path) -> Iterator[Path]:
    """Image and PDF files under ``root``, recursively, sorted by path components, lazily.

    An entry with an image or PDF extension that is not a regular file (a
    named pipe, a device, a broken link) raises :class:`InputError` naming it.
    """
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError as exc:
        raise InputError(f"cannot list directory {root}: {exc.strerror or exc}") from exc
    for entry in entries:
        try:
            is_dir = entry.is_dir(follow_symlinks=False)
        except OSError:
            is_dir = False
        if is_dir:
            yield from walk_directory(Path(entry.path))
        elif _kind(Path(entry.name)) is not None:
            try:
                regular = entry.is_file()
            except OSError:
                regular = False
            if not regular:
                raise _not_regular(Path(entry.path), f" (in directory {root})")
            yield Path(entry.path)


def _read_bytes(path: Path) -> bytes:
    """The bytes of a regular file; opened without blocking, so a pipe swapped in is refused, not waited on."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise InputError(f"cannot read input {path}: {exc.strerror or exc}") from exc
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise InputError(
                f"input {path} is {_file_type(mode)}, not a regular file; give image files, PDFs, directories "
                "or http(s) URLs (segzoo never reads from pipes or devices)"
            )
        with open(fd, "rb", closefd=False) as fh:
            return fh.read()
    except OSError as exc:
        raise InputError(f"cannot read input {path}: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)


def _iter_file(path: Path, limits: InputLimits) -> Iterator[InputItem]:
    if _kind(path) == "pdf":
        yield from iter_pdf_pages(path, str(path), path.stem, limits.pdf_scale)
        return
    image = decode_image_bytes(_read_bytes(path), str(path))
    yield InputItem(image, str(path), None, path.stem, ("file", str(path.resolve()), None))


def decode_image_bytes(data: bytes, where: str) -> np.ndarray:
    """Decode image bytes to BGR ``uint8``, EXIF-orientation-aware; ``InputError`` naming ``where``."""
    from ..datasets._imageio import DecodeError, decode_image

    try:
        return decode_image(data).image
    except DecodeError as exc:
        raise InputError(f"cannot read image {where}: {exc}") from None


# -- PDFs ---------------------------------------------------------------------------------------
def iter_pdf_pages(source, where: str, name: str, scale: float = PDF_SCALE) -> Iterator[InputItem]:
    """One :class:`InputItem` per page of the PDF at ``source`` (a path or the file's bytes)."""
    import pypdfium2 as pdfium

    if isinstance(source, Path):
        source = _read_bytes(source)
    try:
        pdf = pdfium.PdfDocument(source)
    except pdfium.PdfiumError as exc:
        raise InputError(f"cannot read PDF {where}: {exc}") from None
    try:
        if len(pdf) == 0:
            raise InputError(f"PDF {where} has no pages")
        for index in range(len(pdf)):
            page = pdf[index]
            try:
                bitmap = page.render(scale=scale)
                array = bitmap.to_numpy()
                mode = bitmap.mode
            except pdfium.PdfiumError as exc:
                raise InputError(f"cannot render page {index} of PDF {where}: {exc}") from None
            finally:
                page.close()
            if mode in ("RGB", "RGBA", "RGBX"):
                array = array[:, :, 2::-1] if array.shape[2] >= 3 else array
            image = array_to_bgr(np.ascontiguousarray(array[:, :, :3] if array.ndim == 3 else array), f"page {index} of {where}")
            yield InputItem(image, where, index, f"{name}_{index}", ("pdf", where, index))
    finally:
        pdf.close()


# -- URLs -----------------------------------------------------------------------------------------
def fetch_url(
    url: str,
    timeout: float = DEFAULT_URL_TIMEOUT,
    max_bytes: int = DEFAULT_URL_MAX_BYTES,
    check_url: Optional[Callable[[str], None]] = None,
) -> bytes:
    """Download ``url`` within ``timeout`` seconds (the whole transfer) and ``max_bytes``.

    ``check_url`` is called with the URL of every request, redirects
    included, and may raise to refuse one (the HTTP service refuses private
    addresses this way).

    Raises :class:`InputError` naming the URL on HTTP errors, time-outs,
    oversized bodies and network failures.
    """
    import httpx

    deadline = time.monotonic() + timeout
    chunks, size = [], 0
    hooks = {"request": [lambda request: check_url(str(request.url))]} if check_url else {}
    try:
        with httpx.Client(timeout=httpx.Timeout(timeout), follow_redirects=True, event_hooks=hooks) as client, \
                client.stream("GET", url) as response:
            if response.status_code >= 400:
                raise InputError(f"cannot download {url}: HTTP {response.status_code} {response.reason_phrase}")
            declared = response.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise InputError(
                    f"cannot download {url}: it is {int(declared):,} bytes, above the limit of "
                    f"{max_bytes:,} (raise url_max_bytes, or download it yourself)"
                )
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise InputError(
                        f"cannot download {url}: more than the limit of {max_bytes:,} bytes "
                        "(raise url_max_bytes, or download it yourself)"
                    )
                chunks.append(chunk)
                if time.monotonic() > deadline:
                    raise InputError(
                        f"cannot download {url}: not finished within {timeout:g} s (raise url_timeout)"
                    )
    except httpx.TimeoutException:
        raise InputError(f"cannot download {url}: no answer within {timeout:g} s (raise url_timeout)") from None
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise InputError(f"cannot download {url}: {type(exc).__name__}: {exc}") from None
    return b"".join(chunks)


def _url_name(url: str) -> str:
    stem = Path(unquote(urlparse(url).path)).stem
    return stem or "url"


def _iter_url(url: str, limits: InputLimits) -> Iterator[InputItem]:
    data = fetch_url(url, limits.url_timeout, limits.url_max_bytes)
    name = _url_name(url)
    if data[:5] == b"%PDF-":
        yield from iter_pdf_pages(data, url, name, limits.pdf_scale)
        return
    yield InputItem(decode_image_bytes(data, url), url, None, name, ("url", url, None))
