"""What a request's ``image`` holds, turned into pixels safely, and label maps turned into PNGs.

* ``image`` is an http(s) URL or base64 image bytes (a ``data:image/...;base64,`` prefix,
  line breaks and the URL-safe alphabet are accepted). Any other ``scheme://`` is refused.
* URLs are downloaded with :func:`segzoo.inference.inputs.fetch_url` (time limit for the
  whole transfer, size cap). Unless private URLs are allowed, the host must resolve only to
  public addresses: loopback, RFC 1918, link-local, CGNAT, unique-local, multicast and the
  unspecified address are refused, IPv4-mapped IPv6 included (:func:`check_public_url`).
  The check runs on the URL and on every redirect (``fetch_url``'s ``check_url`` hook).
  Known gap: the host is resolved for the check and again for the connection, so a DNS answer
  that changes in between (DNS rebinding) is not caught; put the server behind an egress
  proxy where that matters.
* Before any pixel is decoded the image header's width × height is checked against the pixel
  limit (Pillow's ``Image.open`` reads the header only), so a small file that inflates to
  gigapixels (a decompression bomb) costs nothing. Then
  :func:`segzoo.inference.inputs.decode_image_bytes` decodes it, as ``predict()`` does.

Every refusal is a :class:`ServeError` carrying the HTTP status and a message for people.
"""

from __future__ import annotations

import base64
import binascii
import io
import ipaddress
import re
import socket
import warnings
from typing import Any, Optional
from urllib.parse import urlsplit

import numpy as np

from ..datasets.palette import voc_palette
from ..errors import ConfigError, SegzooError
from ..inference.inputs import decode_image_bytes, fetch_url
from ..inference.sizes import parse_size

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
_DATA_URL = re.compile(r"^data:([^,]*),", re.IGNORECASE)


class ServeError(SegzooError):
    """A request the service refuses; ``status`` is the HTTP status (and the envelope's ``errorCode``)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = int(status)


# -- the request's image ------------------------------------------------------------------------------
def image_kind(text: str) -> str:
    """``"url"`` for an http(s) URL, ``"base64"`` otherwise; other URL schemes are a 400."""
    match = _SCHEME.match(text.lstrip()[:64])
    if not match:
        return "base64"
    scheme = match.group(1).lower()
    if scheme in ("http", "https"):
        return "url"
    raise ServeError(
        400,
        f"image: URLs with the scheme {scheme!r} are not fetched; give an http(s) URL or the image "
        "bytes in base64",
    )


def decode_base64(text: str, field: str = "image") -> bytes:
    """The bytes of base64 ``text`` (standard or URL-safe alphabet, optional ``data:`` prefix)."""
    s = text.strip()
    data_url = _DATA_URL.match(s[:256])
    if data_url:
        if ";base64" not in data_url.group(1).lower():
            raise ServeError(400, f"{field}: a data URL must be base64-encoded (data:image/png;base64,...)")
        s = s[data_url.end():]
    s = "".join(s.split())  # line breaks of wrapped base64
    if "-" in s or "_" in s:
        s = s.replace("-", "+").replace("_", "/")
    if len(s) % 4:  # clients that strip the padding
        s += "=" * (-len(s) % 4)
    try:
        data = base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError):
        raise ServeError(
            400,
            f"{field}: not an http(s) URL and not valid base64; send the image file's bytes base64-encoded "
            "(e.g. base64.b64encode(open('a.png', 'rb').read()).decode())",
        ) from None
    if not data:
        raise ServeError(400, f"{field}: is empty; send an image URL or the image bytes in base64")
    return data


def _is_public(address: ipaddress._BaseAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return bool(address.is_global) and not address.is_multicast


def _split(url: str):
    try:
        parts = urlsplit(url.strip())
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise ServeError(400, f"image: {url!r} is not a valid URL ({exc})") from None
    if not host:
        raise ServeError(400, f"image: the URL {url!r} has no host")
    return parts, host, port


def check_public_url(url: str) -> None:
    """Refuse (400) a URL whose host is, or resolves to, a non-public address.

    Blocking (DNS); call it from a thread. A host that does not resolve is a 400 too.
    """
    parts, host, port = _split(url)
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        default = 443 if parts.scheme.lower() == "https" else 80
        try:
            infos = socket.getaddrinfo(host, port or default, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError, OSError) as exc:
            raise ServeError(400, f"image: cannot resolve the host of {url} ({exc})") from None
        addresses = [ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos]
    for address in addresses:
        if not _is_public(address):
            raise ServeError(
                400,
                f"image: {url} points to {address}, a loopback, private or link-local address; this server "
                "fetches public URLs only (start it with --allow-private-urls to allow such URLs)",
            )


def fetch_image_url(url: str, settings) -> bytes:
    """Download ``url`` within the settings' time and size limits (blocking; 400 on failure)."""
    if settings.allow_private_urls:
        _split(url)
        check = None
    else:
        check = check_public_url  # on the URL and on every redirect
    try:
        return fetch_url(url, timeout=settings.url_timeout, max_bytes=settings.url_max_bytes, check_url=check)
    except ServeError:  # the URL check's refusal (raised through httpx's hook): already says "image: ..."
        raise
    except SegzooError as exc:
        raise ServeError(400, f"image: {exc}") from None


# -- pixels -------------------------------------------------------------------------------------------
def header_size(data: bytes, where: str = "image") -> Optional[tuple[int, int]]:
    """``(width, height)`` from the image header without decoding pixels; ``None`` if unreadable.

    Headers above Pillow's own limit (``PIL.Image.MAX_IMAGE_PIXELS`` × 2) are a 413 at once.
    """
    from PIL import Image

    from ..datasets._imageio import _PIL_FORMATS  # lazy: OpenCV

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data), formats=_PIL_FORMATS) as im:
                return tuple(im.size)  # type: ignore[return-value]
        except Image.DecompressionBombError as exc:
            sizes = re.findall(r"\d+", str(exc))
            what = f"{int(sizes[0]):,} pixels" if sizes else "more pixels than Pillow's safety limit"
            raise ServeError(
                413, f"{where}: the image header declares {what}, far above this server's limit; send a smaller image"
            ) from None
        except Exception:  # not an image Pillow knows: the decoder below says why
            return None


def load_image(data: bytes, max_pixels: int, where: str = "image") -> np.ndarray:
    """Header-checked, then decoded: ``H×W×3`` BGR ``uint8`` (413 over ``max_pixels``, 400 unreadable)."""
    size = header_size(data, where)
    if size is not None and size[0] * size[1] > max_pixels:
        raise ServeError(
            413,
            f"{where}: the image is {size[0]}×{size[1]} = {size[0] * size[1]:,} pixels, above this server's "
            f"limit of {max_pixels:,}; send a smaller image (or start the server with a larger --max-pixels)",
        )
    if data[:5] == b"%PDF-":
        raise ServeError(400, f"{where}: is a PDF; this endpoint predicts images (JPEG, PNG, BMP, TIFF, WebP)")
    try:
        image = decode_image_bytes(data, f"in field '{where}'")
    except SegzooError as exc:
        raise ServeError(400, str(exc)) from None
    if image.shape[0] * image.shape[1] > max_pixels:  # formats whose header Pillow could not read
        raise ServeError(413, f"{where}: the image has {image.shape[0] * image.shape[1]:,} pixels, above {max_pixels:,}")
    return image


def parse_target_size(value: Any, max_pixels: int, field: str = "targetSize"):
    """``targetSize`` as the predictor takes it: ``None``, ``(-1, -1)`` or ``(w, h)`` (422 if invalid)."""
    if isinstance(value, str):
        value = value.strip().strip("[]()").strip() or None
    try:
        size = parse_size(value, what=field)
    except ConfigError as exc:
        raise ServeError(422, str(exc)) from None
    if size is not None and size[0] > 0 and size[0] * size[1] > max_pixels:
        raise ServeError(
            422, f"{field}: {size[0]}×{size[1]} is above this server's limit of {max_pixels:,} pixels"
        )
    return size


# -- answers ------------------------------------------------------------------------------------------
def label_png(labels: np.ndarray, compress_level: int = 3) -> bytes:
    """A label map as PNG: 8-bit palette (values = class ids, colours = VOC) or 16-bit grayscale."""
    from PIL import Image

    labels = np.ascontiguousarray(labels)
    buf = io.BytesIO()
    if labels.dtype == np.uint8:
        im = Image.fromarray(labels)
        im.putpalette(voc_palette(256).tobytes())
    else:
        if labels.size and (int(labels.min()) < 0 or int(labels.max()) > 65535):
            raise ValueError("label values must lie in 0..65535")
        im = Image.fromarray(labels.astype(np.uint16))
    im.save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def colour_png(labels: np.ndarray) -> bytes:
    """The colour mask shown to people (``result.image``): VOC colours as a PNG."""
    if labels.dtype == np.uint8:
        return label_png(labels)
    from PIL import Image

    rgb = voc_palette(256)[np.asarray(labels, np.int64) % 256]
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buf, format="PNG", compress_level=3)
    return buf.getvalue()
