"""The training log: ``train.log`` in the output folder, and its warnings on stderr beside the progress bar."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from .results import LOG_FILE

__all__ = ["log", "open_log", "close_log"]

log = logging.getLogger("segzoo.train")


class _TqdmHandler(logging.Handler):
    """Log records to stderr without breaking the progress bar."""

    def emit(self, record):
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # pragma: no cover
            self.handleError(record)


def open_log(out: Path) -> list[logging.Handler]:
    """Send the training log to ``out/train.log`` (everything) and stderr (warnings); returns the handlers."""
    out.mkdir(parents=True, exist_ok=True)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
    fh = logging.FileHandler(out / LOG_FILE, mode="a", encoding="utf-8")
    fh.setFormatter(fmt)
    console = _TqdmHandler()
    console.setFormatter(logging.Formatter("%(message)s"))
    console.setLevel(logging.WARNING)
    for h in (fh, console):
        log.addHandler(h)
    log.setLevel(logging.INFO)
    log.propagate = False
    return [fh, console]


def close_log(handlers: list[logging.Handler]) -> None:
    """Undo :func:`open_log`."""
    for h in handlers:
        log.removeHandler(h)
        h.close()
    handlers.clear()
    log.propagate = True
