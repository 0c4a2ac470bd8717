"""segzoo's built-in model plugins, one folder per family.

Each family module defines, without importing paddle, one config class, one
card and one :class:`segzoo.ModelPlugin` object per model; ``pyproject.toml``
registers every object under the ``segzoo.models`` entry-point group. They
use only segzoo's public API, exactly as a third-party plugin would.

For plugin authors whose networks come from paddleseg 2.8.0, this package
offers one helper: :func:`import_paddleseg` (``from segzoo_plugins import
import_paddleseg``) imports paddleseg with the fixes it needs on Paddle 3
(:mod:`segzoo_plugins.paddleseg_compat`). Importing this package does not
import paddle.
"""

from .paddleseg_compat import import_paddleseg

__all__ = ["import_paddleseg"]
