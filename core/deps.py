"""Turning a failed import of a third-party package into an error that names the fix.

``import paddleseg`` can fail for two different reasons: paddleseg itself is
not installed, or paddleseg is installed (with ``--no-deps``, as the README
says) and one of the modules *it* imports is missing. The second case needs
``pip install <that package>``, not paddleseg again; :func:`missing_module_error`
tells the two apart from the ``ModuleNotFoundError`` and names the exact
command.
"""

from __future__ import annotations

from typing import Optional

from .errors import DependencyError

#: import name -> the PyPI distribution that provides it, where the two differ
DISTRIBUTIONS = {
    "cv2": "opencv-python-headless",
    "PIL": "pillow",
    "yaml": "pyyaml",
    "sklearn": "scikit-learn",
    "paddle": "paddlepaddle",
    "multipart": "python-multipart",
}


def distribution_of(module: str) -> str:
    """The ``pip install`` name of the top-level ``module`` (``cv2`` → ``opencv-python-headless``)."""
    top = module.split(".")[0]
    return DISTRIBUTIONS.get(top, top.replace("_", "-"))


def missing_module_error(
    exc: ImportError, package: str, install: str, needed_for: Optional[str] = None
) -> DependencyError:
    """A :class:`DependencyError` for a failed ``import package``.

    Args:
        exc: the error raised by the import.
        package: the import name that was asked for (``"paddleseg"``).
        install: the command that installs ``package`` itself.
        needed_for: what the user was doing, for the message (``"the DeepLab models"``).
    """
    missing = getattr(exc, "name", None) or ""
    top = missing.split(".")[0]
    purpose = f" (needed for {needed_for})" if needed_for else ""
    if top and top != package.split(".")[0]:
        dist = distribution_of(top)
        return DependencyError(
            f"{package} is installed but cannot be imported{purpose}: it needs the module {top!r}, "
            f"which is missing; install it with `pip install {dist}` "
            f"(segzoo's own install, `pip install -e .` or `pip install segzoo`, brings it too)"
        )
    return DependencyError(f"{package} is not installed{purpose} ({exc}); install it with `{install}`")
