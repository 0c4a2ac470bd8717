"""Runs the code blocks of README.md and docs/plugins.md as tests (see tests/markdown_blocks.py)."""

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location("segzoo_markdown_blocks", Path(__file__).parent / "tests" / "markdown_blocks.py")
_blocks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_blocks)

pytest_collect_file = (_blocks.README + _blocks.GUIDE).pytest()
