"""The reading toolkit of the route table: `${VAR}` substitution, a YAML loader that
refuses duplicate keys, and a reader that records every mistake with its path
(`models.gpt-4o.targets[0].provider`) instead of stopping at the first one."""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


# --- environment substitution -------------------------------------------------

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class EnvStr(str):
    """A string that came from `${VAR}`: numeric fields may parse it."""


def substitute(node: Any, path: str, errors: list[str], file: str) -> Any:
    if isinstance(node, dict):
        return {k: substitute(v, join(path, str(k)), errors, file) for k, v in node.items()}
    if isinstance(node, list):
        return [substitute(v, f"{path}[{i}]", errors, file) for i, v in enumerate(node)]
    if isinstance(node, str) and "${" in node:

        def replace(m: re.Match[str]) -> str:
            value = os.environ.get(m.group(1))
            if value is None:
                if m.group(2) is None:
                    errors.append(f"{file}: {path}: environment variable {m.group(1)} is not set")
                    return ""
                return m.group(2)
            return value

        return EnvStr(_VAR.sub(replace, node))
    return node


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


# --- a small reader that records every mistake with its path ----------------------


class Reader:
    def __init__(self, file: str) -> None:
        self.file = file
        self.errors: list[str] = []

    def error(self, path: str, message: str) -> None:
        self.errors.append(f"{self.file}: {path}: {message}")

    def mapping(self, node: Any, path: str, allowed: set[str], required: tuple[str, ...] = ()) -> dict[str, Any]:
        if node is None:
            node = {}
        if not isinstance(node, dict):
            self.error(path or "(top level)", f"expected a mapping, got {type_name(node)}")
            return {}
        for key in node:
            if key not in allowed:
                hint = closest(str(key), allowed)
                self.error(join(path, str(key)), "unknown field" + (f" (did you mean '{hint}'?)" if hint else ""))
        for key in required:
            if node.get(key) in (None, ""):
                self.error(join(path, key), "required field is missing")
        return node

    def string(self, node: dict[str, Any], key: str, path: str, default: str | None = None) -> str | None:
        value = node.get(key)
        if value is None or value == "":
            return default
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            self.error(join(path, key), f"expected a string, got {type_name(value)}")
            return default
        return str(value)

    def number(self, node: dict[str, Any], key: str, path: str, default: T, kind: Callable[[Any], T],
               minimum: float = 0) -> T:
        value = node.get(key)
        if value is None or value == "":
            return default
        if isinstance(value, EnvStr):
            try:
                value = kind(value)
            except ValueError:
                self.error(join(path, key), f"expected a number, got '{value}'")
                return default
        wrong_kind = kind is int and not isinstance(value, int)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or wrong_kind:
            expected = "an integer" if kind is int else "a number"
            self.error(join(path, key), f"expected {expected}, got {type_name(value)}")
            return default
        if value < minimum:
            self.error(join(path, key), f"must be at least {minimum}")
            return default
        return kind(value)

    def boolean(self, node: dict[str, Any], key: str, path: str, default: bool) -> bool:
        value = node.get(key)
        if value is None or value == "":
            return default
        if isinstance(value, EnvStr) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        if not isinstance(value, bool):
            self.error(join(path, key), f"expected true or false, got {type_name(value)}")
            return default
        return value

    def string_list(self, node: dict[str, Any], key: str, path: str) -> tuple[str, ...] | None:
        value = node.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.error(join(path, key), "expected a list of strings")
            return None
        return tuple(value)


def type_name(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number", type(None): "nothing"}.get(type(value), type(value).__name__)


def closest(word: str, options: set[str]) -> str | None:
    matches = difflib.get_close_matches(word, sorted(options), n=1, cutoff=0.7)
    return matches[0] if matches else None


def dataclass_fields(cls: type) -> set[str]:
    return set(cls.__dataclass_fields__)  # type: ignore[attr-defined]


class UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that refuses duplicate keys (a second `gpt-4o:` would silently win)."""


def _construct_mapping(loader: UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key '{key}'", key_node.start_mark)
        seen[key] = loader.construct_object(value_node, deep=deep)
    return seen


UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
