"""The import layers hold: providers/ (translation, simulators) imports nothing from router/."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imported_modules(path: Path) -> Iterator[tuple[int, str]]:
    """Every module a file imports, at any depth (lazy imports inside functions too)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module


def test_providers_import_nothing_from_the_router() -> None:
    offenders = [f"{path.relative_to(ROOT)}:{line} imports {module}"
                 for path in sorted((ROOT / "providers").rglob("*.py"))
                 for line, module in imported_modules(path)
                 if module == "router" or module.startswith("router.")]
    assert offenders == []
