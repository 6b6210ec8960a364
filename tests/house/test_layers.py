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


# Lowest first: a module may import from its own layer and the ones below, never above.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("providers",),
    ("router.errors", "router.metrics", "router.logs", "router.tokens", "router.exchange", "router.config"),
    ("router.state",),
    ("router.upstream",),
    ("router.gateway",),
    ("router.http",),
    ("router.app", "router.server", "router.cli", "router.demo"),
)


def layer_of(module: str) -> int | None:
    for index, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return index
    return None


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_no_layer_imports_a_higher_one() -> None:
    offenders = []
    for path in sorted([*(ROOT / "router").rglob("*.py"), *(ROOT / "providers").rglob("*.py")]):
        own = layer_of(module_name(path))
        assert own is not None or module_name(path) == "router", f"{path} is in no layer: add it to LAYERS"
        for line, module in imported_modules(path):
            imported = layer_of(module)
            if own is not None and imported is not None and imported > own:
                offenders.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert offenders == []


def test_imports_are_at_module_level() -> None:
    """No import inside a function: a lazy import hides a cycle or a cost on the hot path."""
    offenders = []
    for path in sorted([*(ROOT / "router").rglob("*.py"), *(ROOT / "providers").rglob("*.py")]):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for function in ast.walk(tree):
            if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                offenders += [f"{path.relative_to(ROOT)}:{node.lineno}" for node in ast.walk(function)
                              if isinstance(node, ast.Import | ast.ImportFrom)]
    # uvloop is imported where it is used: it is optional (not built on every platform).
    assert offenders == [f"router/server.py:{_line_of(ROOT / 'router' / 'server.py', 'import uvloop')}"]


def _line_of(path: Path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if line.strip() == text)
