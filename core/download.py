"""Fetch a URL into a file, or into a safely extracted folder, and trust it only after checking.

The one door to the network for models, weights and datasets
(:mod:`segzoo.official` decides *what* to fetch; this module *how*):

* **streamed** with httpx, with connect and read time-outs; a tqdm bar (size,
  speed) on a terminal, a line at the start and at the end otherwise;
* **retried** up to :data:`ATTEMPTS` times with a growing pause after a
  dropped connection, a time-out or an HTTP 5xx / 429, **resuming** the
  partial file with a ``Range`` header (a server that answers ``200`` instead
  of ``206`` gets a fresh start); a 4xx is not retried;
* **bounded**: a download waits for data at most ``SEGZOO_DOWNLOAD_TIMEOUT``
  seconds (default :data:`DEFAULT_TIMEOUT_S`) in all its tries together, in
  two waits of half that each, so a server that stalls mid-file ends it in
  about a minute (raise it for a slow link);
* **verified**: the size against ``Content-Length`` / ``Content-Range``, and
  the sha256 when one is known;
* **atomic**: bytes go to a hidden ``.<name>.part`` beside the destination; a
  file is renamed into place once verified; an archive is extracted into a
  hidden temporary folder beside its destination (tarfile's ``data`` filter,
  no absolute or ``..`` member names, a size limit), checked, then renamed
  into place. A failed download removes what it wrote; a *killed* one leaves
  only the hidden ``.part``, which the next attempt resumes;
* **locked**: one file lock per destination, so of two processes that want the
  same thing one downloads and the other waits and finds it done;
* **offline**: with ``SEGZOO_OFFLINE=1`` nothing touches the network, and a
  missing file is a :class:`~segzoo.errors.DownloadError`.

Nothing here runs when the destination is already there: no request, no probe.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import sys
import tarfile
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator, Optional

from .errors import DownloadError
from .fileio import fsync_dir, replace_dir

log = logging.getLogger("segzoo")

OFFLINE_ENV = "SEGZOO_OFFLINE"
TIMEOUT_ENV = "SEGZOO_DOWNLOAD_TIMEOUT"
#: tries per download (the first one included)
ATTEMPTS = 4
#: seconds before the second try; doubled for each further one
BACKOFF_S = 0.5
#: seconds to connect (at most)
CONNECT_TIMEOUT_S = 15.0
#: seconds a download may wait for data, in all its tries together (``$SEGZOO_DOWNLOAD_TIMEOUT``)
DEFAULT_TIMEOUT_S = 60.0
#: largest total size of the files an archive may extract to
MAX_EXTRACT_BYTES = 16 * 1024**3
MAX_MEMBERS = 1_000_000
_CHUNK = 1 << 20


def offline() -> bool:
    """True when ``SEGZOO_OFFLINE`` is set to anything but ``0``/``false``/``no``/``off``/empty."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() not in ("", "0", "false", "no", "off")


def download_timeout() -> float:
    """``$SEGZOO_DOWNLOAD_TIMEOUT`` (seconds > 0) or :data:`DEFAULT_TIMEOUT_S`: how long a download waits for data."""
    text = os.environ.get(TIMEOUT_ENV, "").strip()
    if not text:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (0 < value < float("inf")):
        raise DownloadError(f"{TIMEOUT_ENV}={text!r} is not a number of seconds > 0; e.g. {TIMEOUT_ENV}=600 for a slow link")
    return value


class _Retry(Exception):
    """A failure worth another try (the partial file is kept for resuming)."""


# -- the public calls -------------------------------------------------------------------------------
def fetch_file(url: str, dest, *, sha256: Optional[str] = None, what: str = "") -> Path:
    """``dest`` if it exists (no network), else ``url`` downloaded, verified and renamed onto it."""
    dest = Path(dest)
    if dest.is_file():
        return dest
    with entry_lock(dest, what or dest.name):
        if dest.is_file():  # another process finished it while we waited
            return dest
        part = download(url, _part_path(dest), sha256=sha256, what=what or dest.name)
        os.replace(part, dest)
        fsync_dir(dest.parent)
    return dest


def fetch_tree(
    url: str,
    dest,
    *,
    sha256: Optional[str] = None,
    what: str = "",
    check: Optional[Callable[[Path], Optional[str]]] = None,
    max_bytes: int = MAX_EXTRACT_BYTES,
) -> Path:
    """``dest`` (a folder) from the tar archive at ``url``: downloaded, verified, extracted safely, renamed.

    The archive may hold its files at the top or under one top-level folder
    (any name); ``dest`` gets that folder's content. ``check(folder)``
    returns ``None`` when the extracted folder is complete, else what is
    missing, which becomes the error. An existing ``dest`` that passes
    ``check`` is returned without any network call; one that fails it is
    replaced.
    """
    dest = Path(dest)
    if dest.is_dir() and (check is None or check(dest) is None):
        return dest
    what = what or dest.name
    with entry_lock(dest, what):
        if dest.is_dir() and (check is None or check(dest) is None):
            return dest
        archive = download(url, _part_path(dest, ".tar"), sha256=sha256, what=what)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.extract-", dir=dest.parent))
        try:
            safe_extract(archive, tmp, url=url, max_bytes=max_bytes)
            root = _single_root(tmp)
            problem = check(root) if check is not None else None
            if problem:
                raise DownloadError(f"{url}: the archive is not what was expected ({problem}); nothing was kept")
            replace_dir(root, dest)
        finally:
            archive.unlink(missing_ok=True)
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def download(url: str, part: Path, *, sha256: Optional[str] = None, what: str = "") -> Path:
    """Download ``url`` into ``part`` (resuming what is there), verify it, return ``part``.

    On failure ``part`` is removed and a :class:`DownloadError` names the URL.
    The caller holds the entry's lock and renames ``part`` into place.
    """
    what = what or url
    if offline():
        raise DownloadError(f"{what} is not cached and {OFFLINE_ENV}=1 forbids downloading it from {url}")
    import httpx

    budget = download_timeout()
    part = Path(part)
    part.parent.mkdir(parents=True, exist_ok=True)
    headers = {"Accept-Encoding": "identity", "User-Agent": "segzoo"}
    last: Optional[BaseException] = None
    waited = 0.0  # seconds spent waiting for data that did not come, in all tries
    try:
        with httpx.Client(follow_redirects=True, headers=headers) as client:
            for attempt in range(ATTEMPTS):
                if attempt:
                    pause = BACKOFF_S * 2 ** (attempt - 1)
                    _note(f"{what}: {last}; trying again in {pause:g} s ({attempt + 1}/{ATTEMPTS})", warn=True)
                    time.sleep(pause)
                # two waits of half the budget: a stalled connection gets one fresh one, then the download ends
                wait = min(budget / 2, budget - waited)
                timeout = httpx.Timeout(wait, connect=min(CONNECT_TIMEOUT_S, wait))
                try:
                    _stream_once(client, url, part, what, timeout)
                    break
                except _Retry as exc:
                    last = exc
                except httpx.UnsupportedProtocol as exc:
                    raise DownloadError(f"{url}: not an http(s) URL ({exc})") from None
                except httpx.TimeoutException as exc:  # no connection, or no data, for that long
                    spent = timeout.connect if isinstance(exc, httpx.ConnectTimeout) else wait
                    waited += spent
                    last = _Retry(f"no data for {spent:g} s ({_describe(exc)})")
                    if budget - waited <= 1e-6:
                        raise DownloadError(
                            f"could not download {what} from {url}: no data came for {budget:g} s in all "
                            f"(the {TIMEOUT_ENV} limit); nothing was kept. On a slow link, set {TIMEOUT_ENV} "
                            f"to more seconds (e.g. {TIMEOUT_ENV}={max(600, int(budget * 4))})"
                        ) from None
                except httpx.TransportError as exc:  # refused, reset, dropped
                    last = _Retry(_describe(exc))
            else:
                raise DownloadError(
                    f"could not download {what} from {url} after {ATTEMPTS} tries: {last}; nothing was kept"
                )
    except (DownloadError, httpx.InvalidURL) as exc:
        part.unlink(missing_ok=True)
        if isinstance(exc, DownloadError):
            raise
        raise DownloadError(f"{url!r} is not a valid URL: {exc}") from None
    if sha256:
        got = file_sha256(part)
        if got != sha256.lower():
            part.unlink(missing_ok=True)
            raise DownloadError(
                f"{url}: the download's sha256 is {got}, expected {sha256.lower()}; the file was removed"
            )
    return part


def safe_extract(archive, dest, *, url: str = "", max_bytes: int = MAX_EXTRACT_BYTES) -> Path:
    """Extract the tar ``archive`` into the (empty) folder ``dest``, refusing anything unsafe.

    Refused: absolute names and ``..`` parts, links that leave ``dest``,
    devices and FIFOs (tarfile's ``data`` filter, set explicitly), more than
    :data:`MAX_MEMBERS` members or more than ``max_bytes`` in all. A corrupt
    or truncated archive is a :class:`DownloadError` naming ``url`` and the file.
    """
    archive, dest = Path(archive), Path(dest)
    where = f"{url} ({archive.name})" if url else str(archive)
    if not hasattr(tarfile, "data_filter"):  # pragma: no cover - Python < 3.10.12 / 3.11.4
        raise DownloadError("extracting archives safely needs Python >= 3.11.4 (tarfile's data filter)")
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            if len(members) > MAX_MEMBERS:
                raise DownloadError(f"{where}: {len(members)} members, more than {MAX_MEMBERS}; refused")
            total = sum(m.size for m in members if m.isreg())
            if total > max_bytes:
                raise DownloadError(f"{where}: extracts to {total} bytes, more than the limit {max_bytes}; refused")
            for m in members:
                name = PurePosixPath(m.name)
                if name.is_absolute() or m.name.startswith(("/", "\\")) or ".." in name.parts:
                    raise DownloadError(f"{where}: member {m.name!r} would leave the folder; the archive was refused")
            tar.extractall(dest, members=members, filter="data")
    except tarfile.FilterError as exc:
        raise DownloadError(f"{where}: member {exc.tarinfo.name!r} refused ({exc}); the archive was refused") from None
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise DownloadError(f"{where} is corrupt or truncated ({exc}); nothing was kept") from None
    return dest


@contextmanager
def entry_lock(dest: Path, what: str = "") -> Iterator[None]:
    """Hold the lock of cache entry ``dest`` (a hidden ``.<name>.lock`` beside it); clear stale leftovers."""
    from filelock import FileLock, Timeout

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(dest.parent / f".{dest.name}.lock"))
    try:
        lock.acquire(timeout=0.2)
    except Timeout:
        _note(f"waiting for another process that is fetching {what or dest.name} ({lock.lock_file})")
        lock.acquire()
    try:
        for stale in dest.parent.glob(f".{dest.name}.extract-*"):  # a killed extraction's folder
            shutil.rmtree(stale, ignore_errors=True)
        yield
    finally:
        lock.release()


def file_sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def human_size(n: Optional[float]) -> str:
    if n is None:
        return "unknown size"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024.0
    return f"{n:.1f} GB"  # pragma: no cover


# -- one try ----------------------------------------------------------------------------------------
def _stream_once(client, url: str, part: Path, what: str, timeout) -> None:
    """One GET of ``url`` into ``part``: resumes with ``Range`` when ``part`` has bytes."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    with client.stream("GET", url, headers=headers, timeout=timeout) as resp:
        status = resp.status_code
        if status == 416 and have:  # the partial file does not fit the remote one
            part.unlink(missing_ok=True)
            raise _Retry("the partial file does not match the server's; starting over")
        if status == 429 or status >= 500:
            raise _Retry(f"HTTP {status} {resp.reason_phrase}")
        if status >= 400:
            raise DownloadError(f"{what}: HTTP {status} {resp.reason_phrase} from {url}")
        total: Optional[int]
        if status == 206 and have:
            start, total = _content_range(resp.headers.get("content-range"))
            if start != have:
                part.unlink(missing_ok=True)
                raise _Retry(f"the server resumed at byte {start}, not {have}; starting over")
            mode = "ab"
        else:  # 200: the whole file, whatever we had
            have, mode = 0, "wb"
            length = resp.headers.get("content-length")
            total = int(length) if length and length.isdigit() else None
        started = time.monotonic()
        with open(part, mode) as fh, _progress(what, total, have) as bar:
            if not have:
                _note_start(what, url, total)
            for chunk in resp.iter_raw():  # as received: a dropped connection keeps every byte it delivered
                fh.write(chunk)
                bar.update(len(chunk))
            fh.flush()
            os.fsync(fh.fileno())
    size = part.stat().st_size
    if total is not None and size < total:
        raise _Retry(f"the connection closed after {size} of {total} bytes")
    if total is not None and size > total:
        part.unlink(missing_ok=True)
        raise DownloadError(f"{url}: received {size} bytes, more than the announced {total}; nothing was kept")
    elapsed = max(time.monotonic() - started, 1e-6)
    if not _is_terminal():
        _note(f"downloaded {what}: {human_size(size)} in {elapsed:.1f} s ({human_size((size - have) / elapsed)}/s)")


def _content_range(value: Optional[str]) -> tuple[int, Optional[int]]:
    """``bytes 100-199/200`` → ``(100, 200)``; an unreadable header raises :class:`_Retry`."""
    try:
        unit, _, rest = (value or "").partition(" ")
        span, _, size = rest.partition("/")
        start = int(span.split("-")[0])
        if unit != "bytes":
            raise ValueError(unit)
        return start, (int(size) if size.strip().isdigit() else None)
    except ValueError:
        raise _Retry(f"unreadable Content-Range {value!r}") from None


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if type(exc).__name__ not in text else text


def _part_path(dest: Path, suffix: str = "") -> Path:
    return dest.parent / f".{dest.name}{suffix}.part"


def _single_root(folder: Path) -> Path:
    """The archive's one top-level folder, or ``folder`` itself when its files are at the top."""
    entries = [p for p in folder.iterdir()]
    if len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink():
        return entries[0]
    return folder


# -- what the user sees ----------------------------------------------------------------------------
def _is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


@contextmanager
def _progress(what: str, total: Optional[int], have: int):
    """A tqdm bar (bytes, speed) on a terminal; a no-op elsewhere."""
    from tqdm import tqdm

    bar = tqdm(
        total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024, desc=what,
        file=sys.stderr, disable=not _is_terminal(), leave=True, dynamic_ncols=True,
    )
    try:
        yield bar
    finally:
        bar.close()


def _note_start(what: str, url: str, total: Optional[int]) -> None:
    if not _is_terminal():
        _note(f"downloading {what} ({human_size(total)}) from {url}")


def _note(message: str, warn: bool = False) -> None:
    """A line for the user: through logging when the application set it up, else on stderr."""
    if log.hasHandlers():
        (log.warning if warn else log.info)("%s", message)
    else:
        print(f"segzoo: {message}", file=sys.stderr)
