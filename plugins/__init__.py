"""segzoo's built-in model plugins, one folder per family.

Each family module defines, without importing paddle, one config class, one
card and one :class:`segzoo.ModelPlugin` object per model; ``pyproject.toml``
registers every object under the ``segzoo.models`` entry-point group. They
use only segzoo's public API, exactly as a third-party plugin would.
"""
