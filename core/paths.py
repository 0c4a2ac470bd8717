"""Where segzoo keeps files on disk: the cache root that every cache lives under."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """segzoo's cache directory: ``$SEGZOO_HOME`` or ``~/.cache/segzoo``."""
    root = os.environ.get("SEGZOO_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "segzoo"
    )
    return Path(root)
