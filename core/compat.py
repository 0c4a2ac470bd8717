"""The old home of the paddleseg compatibility layer: forwards its names to ``segzoo_plugins.paddleseg_compat``.

Only plugins need paddleseg's fixes for Paddle 3, so they live on the plugin
side now: plugin authors call ``from segzoo_plugins import import_paddleseg``.
``import segzoo.compat as c; c.import_paddleseg(); c.ORIGINALS`` keeps working:
each name is looked up in :mod:`segzoo_plugins.paddleseg_compat` on first
access (importlib, so the core still imports no plugin), with a
``DeprecationWarning`` that names the new home. ``cache_dir`` is re-exported
from :mod:`segzoo.paths`, where it lives.
"""

from __future__ import annotations

from ._lazy import moved_names
from .paths import cache_dir  # noqa: F401  (moved; old home keeps it)

#: where the names of the paddleseg compatibility layer live now
NEW_HOME = "segzoo_plugins.paddleseg_compat"
_MOVED = (
    "PADDLESEG_VERSION",
    "ORIGINALS",
    "apply_fixes",
    "_applied",
    "_INSTALL",
    "_INSTALL_HINT",
    "_quiet_home_writes",
    "_ce_post_process_loss",
    "_ohem_forward",
    "_avg_max_reduce_channel_helper",
)

# import_paddleseg points at its public home, segzoo_plugins (which re-exports it)
__getattr__ = moved_names(__name__, {"import_paddleseg": "segzoo_plugins", **dict.fromkeys(_MOVED, NEW_HOME)})
