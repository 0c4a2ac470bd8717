"""Silences Paddle's messages that say nothing to a segzoo user, each where it is raised and by its own text.

Every other warning still shows. The four messages, and where Paddle raises them:

* ``No ccache found. ...``: a ``UserWarning`` of
  ``paddle/utils/cpp_extension/extension_utils.py``, raised while ``import
  paddle`` loads its C++-extension builder (segzoo builds no extension);
* ``WARNING: OMP_NUM_THREADS set to N, not 1 ...`` and ``PLEASE USE
  OMP_NUM_THREADS WISELY.``: printed on stderr by ``import paddle``
  (``paddle/base/__init__.py``) whenever the user sets the thread count;
  it is about data-parallel training on OpenBLAS builds;
* ``When training, we now always track global mean and variance.``: a
  ``UserWarning`` of ``paddle/nn/layer/norm.py``, raised by every batch norm
  in training mode (:func:`quiet_training`, called by the trainer);
* ``Paddle static graph(PIR) not support input out tensor for now!!!!!``: a
  glog line that Paddle's C++ writes on file descriptor 2 while
  ``paddle.jit.to_static`` traces a network (:func:`quiet_export`, around
  the export's trace and save).

``import paddle`` is quieted by :func:`install`, which ``import segzoo`` runs:
a finder on ``sys.meta_path`` that, the first time ``paddle`` is imported
(by segzoo or by anyone after ``import segzoo``), runs the package's own
loader inside :func:`_quiet_paddle_import` and then steps aside.

Messages written on descriptor 2 are held in a temporary file while the call
runs and copied back afterwards without the silenced lines (so they appear
when the call ends). One thread at a time filters; a second thread that
arrives meanwhile runs its call unfiltered rather than wait.
"""

from __future__ import annotations

import importlib.abc
import os
import sys
import tempfile
import threading
import warnings
from contextlib import contextmanager
from typing import Iterator

__all__ = ["install", "quiet_export", "quiet_training", "stderr_without"]

CCACHE = r"No ccache found\."
OMP_LINES = (b"WARNING: OMP_NUM_THREADS set to ", b"PLEASE USE OMP_NUM_THREADS WISELY.")
BATCH_NORM = r"When training, we now always track global mean and variance\."
PIR_OUT_TENSOR = b"Paddle static graph(PIR) not support input out tensor for now"

_filtering = threading.RLock()


@contextmanager
def stderr_without(*needles: bytes) -> Iterator[None]:
    """Run the body with file descriptor 2 held aside; copy its lines back, except those containing a needle."""
    if not _filtering.acquire(blocking=False):
        yield  # another thread is filtering descriptor 2: run unfiltered rather than wait
        return
    try:
        try:
            _flush()
            saved = os.dup(2)
        except OSError:  # no descriptor 2 (a detached process): nothing to filter
            saved = None
        if saved is None:
            yield
            return
        with tempfile.TemporaryFile() as held:
            os.dup2(held.fileno(), 2)
            try:
                yield
            finally:
                _flush()
                os.dup2(saved, 2)
                os.close(saved)
                held.seek(0)
                kept = b"".join(line for line in held.read().splitlines(keepends=True)
                                if not any(n in line for n in needles))
                _write_fd2(kept)
    finally:
        _filtering.release()


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, ValueError, OSError):
            pass


def _write_fd2(data: bytes) -> None:
    while data:
        try:
            data = data[os.write(2, data):]
        except OSError:
            return


@contextmanager
def quiet_export() -> Iterator[None]:
    """Around ``paddle.jit.to_static`` + ``paddle.jit.save``: without Paddle's PIR "input out tensor" line."""
    with stderr_without(PIR_OUT_TENSOR):
        yield


def quiet_training() -> None:
    """Ignore batch norm's "we now always track global mean and variance" warning (Paddle's text, its module only)."""
    warnings.filterwarnings("ignore", message=BATCH_NORM, category=UserWarning, module=r"paddle\.(sparse\.)?nn\.layer\.norm")


@contextmanager
def _quiet_paddle_import() -> Iterator[None]:
    """While ``paddle`` executes its ``__init__``: without the ccache warning and the OMP_NUM_THREADS lines."""
    warnings.filterwarnings("ignore", message=CCACHE, category=UserWarning, module=r"paddle\.utils\.cpp_extension")
    with stderr_without(*OMP_LINES):
        yield


class _QuietLoader(importlib.abc.Loader):
    """Paddle's own loader, run inside :func:`_quiet_paddle_import`; the module keeps its own loader."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        _uninstall()  # paddle is being imported: the finder's work is done
        module.__loader__ = self.loader
        if getattr(module, "__spec__", None) is not None:
            module.__spec__.loader = self.loader
        with _quiet_paddle_import():
            self.loader.exec_module(module)


class _PaddleFinder(importlib.abc.MetaPathFinder):
    """Finds ``paddle`` through the other finders and hands it a :class:`_QuietLoader` (until it is imported)."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "paddle":
            return None
        for finder in list(sys.meta_path):
            find = getattr(finder, "find_spec", None) if finder is not self else None
            spec = find(fullname, path, target) if find is not None else None
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _QuietLoader(spec.loader)
                return spec
        return None


_FINDER = _PaddleFinder()


def install() -> None:
    """Quiet the first ``import paddle`` of this process (nothing to do when paddle is imported already)."""
    if "paddle" not in sys.modules and _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)


def _uninstall() -> None:
    while _FINDER in sys.meta_path:
        sys.meta_path.remove(_FINDER)
