"""Atomic file writes: a file is either the old one or the complete new one, never half-written."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Union

from .errors import ConfigError

PathLike = Union[str, os.PathLike]


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is fsynced and renamed onto ``path``.

    On an exception (or a kill) the temporary file is removed (or left as a
    ``.tmp`` sibling that no reader looks at) and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp makes the file private (0600); give it the permissions open() would
    os.chmod(tmp_path, 0o666 & ~_umask())
    try:
        yield tmp_path
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
        fsync_dir(path.parent)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_write(path: PathLike, mode: str = "w", encoding: str | None = "utf-8"):
    """``open()``-like context manager that writes ``path`` atomically."""
    if "b" in mode:
        encoding = None
    with atomic_path(path) as tmp:
        with open(tmp, mode, encoding=encoding) as fh:
            yield fh


def write_json(path: PathLike, data: Any, indent: int = 4) -> Path:
    """Write ``data`` as UTF-8 JSON, atomically."""
    with atomic_write(path) as fh:
        json.dump(data, fh, indent=indent, ensure_ascii=False)
        fh.write("\n")
    return Path(path)


def write_bytes(path: PathLike, data: bytes) -> Path:
    with atomic_write(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def _umask() -> int:
    """The process umask, read without changing it (os.umask would race with other threads)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:  # pragma: no cover - not Linux
        pass
    return 0o022


def replace_dir(new: PathLike, target: PathLike, on_swap: Optional[Callable[[], None]] = None) -> Path:
    """Move the finished directory ``new`` onto ``target``, replacing an existing one.

    The old ``target`` is first renamed to a hidden sibling, then ``new`` takes
    its place, then the old one is deleted; if the second rename fails the old
    one is put back. A kill leaves either the old directory, or the new one
    (plus a hidden ``.<name>.old-*`` sibling that no reader looks at).
    ``on_swap`` runs between the two renames (tests use it to kill there).
    """
    new, target = Path(new), Path(target)
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        old.rmdir()
        os.replace(target, old)
        if on_swap is not None:
            on_swap()
    try:
        os.replace(new, target)
    except OSError:
        if old is not None:
            os.replace(old, target)
        raise
    fsync_dir(target.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return target


def fsync_dir(directory: PathLike) -> None:
    """Make renames in ``directory`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def check_output_dir(path: PathLike, what: str) -> Path:
    """Refuse an output directory that cannot be one: ``path`` or a parent is an existing non-directory.

    Raises :class:`~segzoo.errors.ConfigError` naming ``what`` (the option or
    argument, e.g. ``--output``) before anything is written. Creates nothing.
    """
    p = Path(path).expanduser()
    for q in (p, *p.parents):
        if q.is_dir():
            break
        if q.exists() or q.is_symlink():
            kind = "an existing file" if q.is_file() else "not a directory"
            hint = "" if q == p else f" (its parent {q} is {kind})"
            raise ConfigError(
                f"{what} {p}: {'it is ' + kind if q == p else 'cannot be a directory'}{hint}; give a directory path "
                "(created if missing)"
            )
    return p


def make_output_dir(path: PathLike, what: str) -> Path:
    """:func:`check_output_dir`, then create it (with its parents); errors name ``what``."""
    p = check_output_dir(path, what)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{what} {p}: cannot create the directory ({exc.strerror or exc})") from None
    return p
