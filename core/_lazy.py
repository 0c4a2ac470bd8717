"""Lazily loaded package attributes (PEP 562), so that importing a package stays cheap."""

from __future__ import annotations

import importlib
import warnings
from typing import Any, Callable, Mapping


def lazy_exports(package: str, namespace: dict, exports: Mapping[str, str]) -> tuple[Callable, Callable]:
    """``(__getattr__, __dir__)`` for ``package`` whose names in ``exports`` live in submodules.

    ``exports`` maps a public name to its module, relative to ``package`` (``".check"``).
    A name is imported on first access and cached in ``namespace`` (the package's globals).
    """

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__


def moved_names(module: str, moves: Mapping[str, str]) -> Callable:
    """A module ``__getattr__`` that keeps names which moved elsewhere working, with a warning.

    ``moves`` maps an old public name of ``module`` to the absolute module that now
    owns it (``{"run_config": "segzoo.modes"}``). The new home is imported on first
    use only, so an alias never creates an import-time circle, and the
    ``DeprecationWarning`` tells the caller where to import the name from.
    """

    def __getattr__(name: str) -> Any:
        target = moves.get(name)
        if target is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        warnings.warn(
            f"{module}.{name} moved to {target}.{name}; import it from there "
            f"(the old name keeps working for now)",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(target), name)

    return __getattr__
