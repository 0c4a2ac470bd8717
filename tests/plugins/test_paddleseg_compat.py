"""The paddleseg compatibility layer's home on the plugin side, its public helper, and its old home's alias."""

import subprocess
import sys
import textwrap
import warnings

import pytest

import segzoo_plugins
from segzoo_plugins import paddleseg_compat


def _clean_interpreter(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip()


def test_the_public_helper_is_the_compat_function():
    assert segzoo_plugins.import_paddleseg is paddleseg_compat.import_paddleseg
    assert "import_paddleseg" in segzoo_plugins.__all__


def test_importing_the_plugins_package_imports_neither_paddle_nor_paddleseg():
    code = """
        import sys
        import segzoo_plugins, segzoo_plugins.paddleseg_compat
        print(sorted(m for m in ("paddle", "paddleseg") if m in sys.modules))
    """
    assert _clean_interpreter(code) == "[]"


def test_the_core_alias_does_not_import_the_plugins_until_a_name_is_used():
    code = """
        import sys
        import segzoo.compat as c
        before = "segzoo_plugins" in sys.modules
        c.PADDLESEG_VERSION
        print(before, "segzoo_plugins.paddleseg_compat" in sys.modules)
    """
    assert _clean_interpreter(code) == "False True"


@pytest.mark.parametrize(
    "name, home",
    [
        ("import_paddleseg", "segzoo_plugins"),
        ("ORIGINALS", "segzoo_plugins.paddleseg_compat"),
        ("PADDLESEG_VERSION", "segzoo_plugins.paddleseg_compat"),
        ("apply_fixes", "segzoo_plugins.paddleseg_compat"),
        ("_quiet_home_writes", "segzoo_plugins.paddleseg_compat"),
    ],
)
def test_old_names_forward_to_the_new_home_with_a_warning(name, home):
    from segzoo import compat

    with pytest.warns(DeprecationWarning, match=rf"segzoo\.compat\.{name} moved to {home}\.{name}"):
        value = getattr(compat, name)
    assert value is getattr(paddleseg_compat, name)


def test_cache_dir_stays_in_the_old_home_without_a_warning():
    from segzoo import compat, paths

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert compat.cache_dir is paths.cache_dir


def test_unknown_names_are_still_attribute_errors():
    from segzoo import compat

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        compat.nope  # noqa: B018
