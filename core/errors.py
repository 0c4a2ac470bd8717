"""One error hierarchy for segzoo.

Every error a *user* can cause (a bad name, a bad config value, a broken
dataset, an unreadable input) is a :class:`SegzooError`. The CLI prints such
errors as one clean line and exits with status 2; anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

import difflib
from typing import Iterable


class SegzooError(Exception):
    """Base class of every error caused by user input."""

    exit_code = 2


class UnknownModelError(SegzooError, KeyError):
    """A model name that no registered plugin provides."""

    def __init__(self, name: str, known: Iterable[str]):
        self.name = name
        self.known = sorted(known)
        close = suggest(name, self.known)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        super().__init__(
            f"Unknown model {name!r}.{hint} Run `segzoo list-models` to see all models."
        )

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class ConfigError(SegzooError, ValueError):
    """A configuration value, key or file that fails validation."""


class PluginError(SegzooError):
    """A plugin that cannot be loaded or that breaks the hook contract."""


class DependencyError(SegzooError, ImportError):
    """A required third-party package is missing or has the wrong version."""


class WeightsError(SegzooError):
    """A weights file that is missing or does not fit the model."""


class InputError(SegzooError, ValueError):
    """An inference input that cannot be read or is not supported."""


class DatasetError(SegzooError, ValueError):
    """A dataset that cannot be read or fails its check."""


class ExportError(SegzooError):
    """A model that cannot be exported the way it was asked to be."""


class DownloadError(SegzooError):
    """A download that failed, was refused (offline, unsafe archive) or did not verify."""


def suggest(name: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """Return up to ``n`` entries of ``choices`` closest to ``name`` (case-insensitive)."""
    choices = list(choices)
    lowered = {c.lower(): c for c in choices}
    hits = difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.5)
    result = [lowered[h] for h in hits]
    # substring matches help for abbreviations such as "liteseg"
    for c in choices:
        if len(result) >= n:
            break
        if name.lower() in c.lower() and c not in result:
            result.append(c)
    return result
