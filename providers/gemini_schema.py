"""OpenAI tools and JSON schemas -> Gemini function declarations and its OpenAPI-subset Schema.

Gemini's `parameters` / `responseSchema` is a protobuf `Schema`: it rejects any key it
does not know (`additionalProperties`, `$ref`, `$schema`, ...), knows only upper-case
scalar types, expresses "or null" as `nullable`, enums only of strings, and refuses an
OBJECT without properties. What this module does, keyword by keyword:

- kept: type (upper-cased), description, nullable, enum (strings), items, properties,
  required (only names that are properties), anyOf, minItems, maxItems, minimum,
  maximum, minLength, maxLength, pattern, minProperties, maxProperties, propertyOrdering,
  format (only the ones Gemini accepts for the type);
- rewritten: `type: [x, "null"]` -> `type: x, nullable: true`; `anyOf`/`oneOf` with a
  `{"type": "null"}` branch -> nullable; `oneOf` -> `anyOf`; `const` -> one-value enum;
  `$ref` to `#/$defs/..` or `#/definitions/..` -> inlined; `allOf` of objects -> merged;
  non-string enums -> their values listed in the description (Gemini cannot enforce them);
- dropped (annotations or constraints the model does not need to be told): `$schema`,
  `$id`, `$comment`, `title`, `default`, `examples`, `additionalProperties`, `strict`,
  `readOnly`, `writeOnly`, `deprecated`, `exclusiveMinimum/Maximum`, `multipleOf`,
  `uniqueItems`, `patternProperties`, unknown formats, ...;
- refused with a 400 naming the parameter: recursive `$ref`s, refs outside the document,
  a nested OBJECT without properties (a free-form map), an ARRAY without one `items`
  schema, `not`, `if/then/else`.
"""

from __future__ import annotations

from typing import Any

from providers.base import JSON, UpstreamError, invalid_param

_SCALAR_TYPES = {"string", "number", "integer", "boolean", "array", "object"}
_COPIED = (
    "description", "minItems", "maxItems", "minimum", "maximum", "minLength", "maxLength",
    "pattern", "minProperties", "maxProperties", "propertyOrdering",
)  # fmt: skip
_FORMATS = {"STRING": {"enum", "date-time"}, "NUMBER": {"float", "double"}, "INTEGER": {"int32", "int64"}}
_UNEXPRESSIBLE = ("not", "if", "then", "else", "dependentSchemas", "dependentRequired")
_MAX_DEPTH = 48


class SchemaError(ValueError):
    """A JSON schema that Gemini's schema subset cannot express."""


def clean_schema(schema: Any, param: str) -> JSON:
    """The Gemini form of `schema`; a 400 UpstreamError naming `param` if impossible."""
    if not isinstance(schema, dict):
        raise _bad(param, "a JSON schema must be an object")
    defs = {**(schema.get("definitions") or {}), **(schema.get("$defs") or {})}
    try:
        return _Cleaner(defs).clean(schema, (), 0)
    except SchemaError as exc:
        raise _bad(param, str(exc)) from None


def _bad(param: str, reason: str) -> UpstreamError:
    return UpstreamError(
        400,
        f"'{param}': this JSON schema cannot be expressed for Gemini: {reason}",
        type="invalid_request_error",
        code="invalid_schema",
        param=param,
        retryable=False,
    )


class _Cleaner:
    def __init__(self, defs: dict[str, Any]) -> None:
        self.defs = defs

    def clean(self, node: Any, refs: tuple[str, ...], depth: int, *, top: bool = True) -> JSON:
        if not isinstance(node, dict):
            raise SchemaError("a (sub)schema is not an object")
        if depth > _MAX_DEPTH:
            raise SchemaError("the schema nests too deep")
        for key in _UNEXPRESSIBLE:
            if key in node:
                raise SchemaError(f"'{key}' has no equivalent")
        if "$ref" in node:
            return self._ref(node, refs, depth)
        if "allOf" in node:
            return self.clean(_merge_all_of(node), refs, depth + 1, top=top)
        alternatives = node.get("anyOf", node.get("oneOf"))
        if alternatives is not None:
            return self._any_of(node, alternatives, refs, depth)
        types = node.get("type")
        if isinstance(types, list):
            non_null = [t for t in types if t != "null"]
            nullable = len(non_null) < len(types)
            if len(non_null) != 1:
                rest = {k: v for k, v in node.items() if k != "type"}
                branches: list[Any] = [{**rest, "type": t} for t in non_null] + [{"type": "null"}] * nullable
                return self._any_of(node, branches, refs, depth)
            node = {**node, "type": non_null[0], "nullable": nullable or node.get("nullable") is True}
            types = non_null[0]
        out: JSON = {}
        if types is None and "const" not in node and "enum" not in node:
            types = "object" if "properties" in node else None
        if types is not None:
            if types not in _SCALAR_TYPES:
                raise SchemaError(f"unknown type {types!r}")
            out["type"] = types.upper()
        if node.get("nullable") is True:
            out["nullable"] = True
        for key in _COPIED:
            if key in node:
                out[key] = node[key]
        self._enum(node, out)
        fmt = node.get("format")
        if isinstance(fmt, str) and fmt in _FORMATS.get(out.get("type", ""), ()):
            out["format"] = fmt
        if out.get("type") == "ARRAY":
            if not isinstance(node.get("items"), dict):  # Gemini requires the items' schema
                raise SchemaError("an array needs one 'items' schema (untyped arrays and tuples have no equivalent)")
            out["items"] = self.clean(node["items"], refs, depth + 1, top=False)
        if out.get("type") == "OBJECT":
            self._object(node, out, refs, depth, top)
        return out

    def _ref(self, node: JSON, refs: tuple[str, ...], depth: int) -> JSON:
        ref = node["$ref"]
        prefix = next((p for p in ("#/$defs/", "#/definitions/") if isinstance(ref, str) and ref.startswith(p)), None)
        if prefix is None or ref[len(prefix) :] not in self.defs:
            raise SchemaError(f"$ref {ref!r} does not point into this schema's $defs")
        if ref in refs:
            raise SchemaError(f"$ref {ref!r} is recursive")
        target = self.clean(self.defs[ref[len(prefix) :]], (*refs, ref), depth + 1, top=False)
        if "description" in node and isinstance(node["description"], str):
            target = {**target, "description": node["description"]}
        return target

    def _any_of(self, node: JSON, alternatives: Any, refs: tuple[str, ...], depth: int) -> JSON:
        if not isinstance(alternatives, list) or not alternatives:
            raise SchemaError("anyOf/oneOf must be a non-empty list")
        nullable = any(isinstance(a, dict) and a.get("type") == "null" for a in alternatives)
        branches = [
            self.clean(a, refs, depth + 1, top=False)
            for a in alternatives
            if not (isinstance(a, dict) and a.get("type") == "null")
        ]
        if not branches:
            raise SchemaError("a schema that only allows null")
        out = branches[0] if len(branches) == 1 else {"anyOf": branches}
        if isinstance(node.get("description"), str):
            out = {**out, "description": node["description"]}
        return {**out, "nullable": True} if nullable else out

    def _enum(self, node: JSON, out: JSON) -> None:
        values = [node["const"]] if "const" in node else node.get("enum")
        if not isinstance(values, list):
            return
        if all(isinstance(v, str) for v in values):
            out["enum"] = values
            out.setdefault("type", "STRING")
            if out["type"] == "STRING":
                out["format"] = "enum"
            return
        # Gemini enums are strings only: tell the model the allowed values instead.
        listed = ", ".join(repr(v) for v in values)
        out["description"] = f"{out.get('description', '')} (one of: {listed})".strip()
        if "type" not in out:
            kinds = {type(v) for v in values if v is not None}
            out["type"] = "INTEGER" if kinds == {int} else "NUMBER" if kinds <= {int, float} else "STRING"

    def _object(self, node: JSON, out: JSON, refs: tuple[str, ...], depth: int, top: bool) -> None:
        props = node.get("properties")
        if not isinstance(props, dict) or not props:
            if top:
                return  # the caller drops an empty top-level object (a function without arguments)
            raise SchemaError("an object without declared properties (a free-form map) has no equivalent")
        out["properties"] = {name: self.clean(sub, refs, depth + 1, top=False) for name, sub in props.items()}
        required = node.get("required")
        if isinstance(required, list):
            kept = [r for r in required if r in props]
            if kept:
                out["required"] = kept


def _merge_all_of(node: JSON) -> JSON:
    """`allOf` of object schemas (the usual pydantic output) as one object schema."""
    parts = node["allOf"]
    if not isinstance(parts, list) or not all(isinstance(p, dict) for p in parts):
        raise SchemaError("allOf must be a list of schemas")
    merged: JSON = {k: v for k, v in node.items() if k != "allOf"}
    for part in parts:
        if "$ref" in part or "anyOf" in part or "oneOf" in part:
            if len(parts) == 1:
                return {**merged, **part}
            raise SchemaError("allOf over references or alternatives has no equivalent")
        for key, value in part.items():
            if key == "properties":
                merged["properties"] = {**merged.get("properties", {}), **value}
            elif key == "required":
                merged["required"] = [*merged.get("required", []), *value]
            elif key in merged and merged[key] != value and key != "description":
                raise SchemaError(f"allOf parts disagree on '{key}'")
            else:
                merged.setdefault(key, value)
    return merged


def is_empty_object(schema: JSON) -> bool:
    """A cleaned top-level schema that declares no arguments (Gemini wants none sent)."""
    return not schema or (schema.get("type") == "OBJECT" and not schema.get("properties"))


# --- tools -----------------------------------------------------------------------------


def tools_to_declarations(tools: Any, json_schema: bool = False) -> list[JSON]:
    """Function declarations; `json_schema`: the parameters as JSON Schema, unchanged
    (`parametersJsonSchema`, Gemini 2.5 and later), else cleaned to Gemini's subset."""
    if not isinstance(tools, list):
        raise invalid_param("tools", "'tools' must be a list")
    declarations = []
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) and tool.get("type") == "function" else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise invalid_param(f"tools[{i}]",
                                f"'tools[{i}]' must be a function tool with a name (Gemini has no other kind)")
        declaration: JSON = {"name": function["name"]}
        if isinstance(function.get("description"), str):
            declaration["description"] = function["description"]
        if json_schema and isinstance(function.get("parameters"), dict) and function["parameters"]:
            declaration["parametersJsonSchema"] = function["parameters"]
        elif function.get("parameters") is not None:
            parameters = clean_schema(function["parameters"], f"tools[{i}].function.parameters")
            if not is_empty_object(parameters):
                declaration["parameters"] = parameters
        declarations.append(declaration)
    return declarations


def tool_choice_to_config(choice: Any, has_tools: bool) -> JSON | None:
    if choice is None or (choice == "none" and not has_tools):
        return None
    if not has_tools:
        raise invalid_param("tool_choice", "'tool_choice' needs 'tools'")
    modes = {"auto": "AUTO", "none": "NONE", "required": "ANY"}
    if isinstance(choice, str) and choice in modes:
        return {"mode": modes[choice]}
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        if isinstance(name, str):
            return {"mode": "ANY", "allowedFunctionNames": [name]}
    raise invalid_param("tool_choice", "'tool_choice' must be auto, none, required or a named function for Gemini")


