"""The house rules that `lint-imports` cannot see: short files, each naming its one job.

The layers and the absence of import circles are checked by `lint-imports` (the contracts are in
pyproject.toml, the README's test command runs it); docs/architecture.md explains both.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 450
CORE_FILES = sorted((ROOT / "core").rglob("*.py"))


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_core_file_is_short_and_names_its_job(path):
    text = path.read_text(encoding="utf-8")
    lines = text.count("\n") + (0 if text.endswith("\n") or not text else 1)
    assert lines <= MAX_LINES, f"{path.relative_to(ROOT)} has {lines} lines; split it by job (at most {MAX_LINES})"
    doc = ast.get_docstring(ast.parse(text))
    assert doc and doc.strip().splitlines()[0].strip(), (
        f"{path.relative_to(ROOT)} has no docstring; its first line should say the file's one job"
    )


def test_architecture_doc_names_every_core_package():
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    packages = sorted(p.name for p in (ROOT / "core").iterdir() if (p / "__init__.py").exists())
    missing = [name for name in packages if f"segzoo.{name}" not in doc]
    assert not missing, f"docs/architecture.md does not describe: {', '.join(missing)}"


def _code_strings(tree: ast.AST):
    """The string literals of a module that are not docstrings (docstrings and comments may cite measurements)."""
    docs = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            yield node


def test_core_code_names_no_model_and_no_family():
    """DESIGN.md: the core knows no model. A name or family in core code is a branch a card should carry."""
    import segzoo

    names = segzoo.list_models()
    families = {segzoo.get_model_card(n).family.lower() for n in names}
    found = []
    for path in CORE_FILES:
        for node in _code_strings(ast.parse(path.read_text(encoding="utf-8"))):
            words = set(node.value.lower().replace(",", " ").replace("(", " ").replace(")", " ").split())
            hits = [n for n in names if n in node.value] + sorted(families & words)
            if hits:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} {hits}")
    assert not found, "core code names models or families (put it on the card, read it via the registry): " + "; ".join(found)
