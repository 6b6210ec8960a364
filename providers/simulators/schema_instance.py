"""A small valid instance of a JSON schema: what the simulators answer for tool
arguments and for `response_format` json_schema (OpenAI's JSON Schema, or Gemini's
OpenAPI-subset form with upper-case types and `nullable`).

Handled: `type` (one or a list; "null" only when nothing else is allowed), `const`,
`enum` (the first value), objects (the required properties, more when minProperties
asks), arrays (`items` / `prefixItems`, minItems but at least one item, within
maxItems), strings (`minLength`/`maxLength`, common `format`s), numbers (`minimum`,
`maximum`, exclusive bounds, `multipleOf`), `anyOf`/`oneOf` (the first branch that is
not null), `allOf` (merged), `$ref` to anything in the document (`#/$defs/..`,
`#/definitions/..`, `#`). A few levels down it answers the least the schema allows (null
where allowed, minItems items), so recursive schemas end; one that cannot end stops at
a bounded depth. Not handled: `pattern`, `not`, `if/then/else`, uniqueness of more than
one array item.
"""

from __future__ import annotations

from typing import Any

_GENEROUS_DEPTH = 4  # deeper than this, the least a schema allows (ends recursive schemas)
_MAX_DEPTH = 24
_FORMATS = {
    "date-time": "2024-01-01T00:00:00Z", "date": "2024-01-01", "time": "12:00:00", "duration": "P1D",
    "email": "user@example.com", "idn-email": "user@example.com", "hostname": "example.com",
    "uri": "https://example.com/", "url": "https://example.com/", "iri": "https://example.com/",
    "uuid": "00000000-0000-4000-8000-000000000000", "ipv4": "192.0.2.1", "ipv6": "2001:db8::1",
}  # fmt: skip


def schema_instance(schema: Any, name: str = "") -> Any:
    """A value valid for `schema`; `name` (the property it fills) picks friendlier strings."""
    root = schema if isinstance(schema, dict) else {}
    return _Instance(root).value(schema, name, 0)


class _Instance:
    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root

    def value(self, schema: Any, name: str, depth: int) -> Any:
        if not isinstance(schema, dict):
            return "value"  # `true` or a broken schema: anything goes
        schema = self._resolved(schema, depth)
        if "const" in schema:
            return schema["const"]
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            return schema["enum"][0]
        branches = schema.get("anyOf") or schema.get("oneOf")
        if isinstance(branches, list) and branches:
            nulls = [b for b in branches if _type_of(self._resolved(b, depth)) == "null"]
            others = [b for b in branches if b not in nulls]
            chosen = (nulls if depth >= _GENEROUS_DEPTH else others or nulls)[0] if nulls else branches[0]
            merged = {k: v for k, v in schema.items() if k not in ("anyOf", "oneOf")}
            return self.value({**merged, **self._resolved(chosen, depth)}, name, depth + 1)
        kind = _type_of(schema)
        if depth >= _MAX_DEPTH:
            return _smallest(kind, schema)
        if kind == "object":
            return self._object(schema, depth)
        if kind == "array":
            return self._array(schema, name, depth)
        if kind in ("integer", "number"):
            return _number(schema, kind == "integer")
        if kind == "boolean":
            return True
        if kind == "null":
            return None
        return _string(schema, name)

    def _resolved(self, schema: Any, depth: int) -> dict[str, Any]:
        """The schema with `$ref` followed and `allOf` merged in."""
        if not isinstance(schema, dict):
            return {}
        current: dict[str, Any] = schema
        seen = 0
        while isinstance(current.get("$ref"), str) and seen < _MAX_DEPTH:
            target = self._pointer(current["$ref"])
            current = {**{k: v for k, v in current.items() if k != "$ref"}, **target}
            seen += 1
        parts = current.get("allOf")
        if isinstance(parts, list) and parts:
            merged = {k: v for k, v in current.items() if k != "allOf"}
            for part in parts:
                part = self._resolved(part, depth + 1)
                properties = {**(merged.get("properties") or {}), **(part.get("properties") or {})}
                required = [*(merged.get("required") or []), *(part.get("required") or [])]
                merged = {**merged, **part, "properties": properties, "required": required}
            current = merged
        return current

    def _pointer(self, ref: str) -> dict[str, Any]:
        if not ref.startswith("#"):
            return {}  # a document elsewhere: nothing to go on
        node: Any = self.root
        for token in filter(None, ref[1:].split("/")):
            token = token.replace("~1", "/").replace("~0", "~")
            node = node.get(token) if isinstance(node, dict) else None
        return dict(node) if isinstance(node, dict) else {}

    def _object(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        properties = schema.get("properties")
        if not isinstance(properties, dict):
            properties = {}
        required = schema.get("required")
        names = [n for n in required if isinstance(n, str)] if isinstance(required, list) else []
        wanted = _integer(schema, "minProperties") or 0
        names += [n for n in properties if n not in names][: max(0, wanted - len(names))]
        return {n: self.value(properties.get(n, {}), n, depth + 1) for n in names}

    def _array(self, schema: dict[str, Any], name: str, depth: int) -> list[Any]:
        prefix = schema.get("prefixItems")
        if not isinstance(prefix, list):
            prefix = []
        items = schema.get("items")
        low, high = _integer(schema, "minItems") or 0, _integer(schema, "maxItems")
        count = max(low, len(prefix), 1 if depth < _GENEROUS_DEPTH else 0)
        if high is not None:
            count = min(count, high)
        if items is False:
            count = min(count, len(prefix))
        singular = name[:-3] + "y" if name.endswith("ies") else name.removesuffix("s")
        return [self.value(prefix[i] if i < len(prefix) else items, singular, depth + 1) for i in range(count)]


def _type_of(schema: dict[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        named = [str(k) for k in kind if str(k).lower() != "null"]
        kind = named[0] if named else "null"
    if isinstance(kind, str):
        return kind.lower()
    if "properties" in schema or "required" in schema:
        return "object"
    if "items" in schema or "prefixItems" in schema:
        return "array"
    return "string"


def _integer(schema: dict[str, Any], key: str) -> int | None:
    value = schema.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _smallest(kind: str, schema: dict[str, Any]) -> Any:
    """At the depth bound: no more nesting, the least the schema accepts."""
    if kind == "object":
        return {}
    if kind == "array":
        return []
    if kind in ("integer", "number"):
        return _number(schema, kind == "integer")
    if kind == "boolean":
        return True
    return None if kind == "null" else _string(schema, "")


def _string(schema: dict[str, Any], name: str) -> str:
    text = _FORMATS.get(str(schema.get("format", "")))
    if text is None:
        text = "Hamburg" if "location" in name or "city" in name else "value"
    low, high = _integer(schema, "minLength") or 0, _integer(schema, "maxLength")
    text = text.ljust(low, "x")
    return text[:high] if high is not None else text


def _number(schema: dict[str, Any], integer: bool) -> int | float:
    def bound(key: str) -> float | None:
        value = schema.get(key)
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    low, high = bound("minimum"), bound("maximum")
    low_open, high_open = bound("exclusiveMinimum"), bound("exclusiveMaximum")
    step = bound("multipleOf") or (1.0 if integer else 0.0)
    value = 1.0
    if low is not None and value < low:
        value = low
    if low_open is not None and value <= low_open:
        value = low_open + (step or 1.0)
    if step:
        value = -(-value // step) * step  # the first multiple at or above
    if high is not None and value > high:
        value = (high // step) * step if step else high
    if high_open is not None and value >= high_open:
        value = ((high_open - (step or 1.0)) // step) * step if step else (high_open + (low_open or low or 0.0)) / 2
    return int(value) if integer or value.is_integer() else value
