"""The simulators' schema instances are valid for their schema, checked by the reference
validator (jsonschema, draft 2020-12) and, for Gemini's form, by what the schema says."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from providers.simulators.common import tool_arguments
from providers.simulators.schema_instance import schema_instance

SCHEMAS: dict[str, dict[str, Any]] = {
    "scalars": {"type": "object", "required": ["s", "i", "n", "b", "z"], "properties": {
        "s": {"type": "string"}, "i": {"type": "integer"}, "n": {"type": "number"}, "b": {"type": "boolean"},
        "z": {"type": "null"}}},
    "bounds": {"type": "object", "required": ["i", "n", "e", "m", "short", "long"], "properties": {
        "i": {"type": "integer", "minimum": 5, "maximum": 9, "multipleOf": 3},
        "n": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
        "e": {"type": "integer", "exclusiveMaximum": -3},
        "m": {"type": "number", "minimum": 2.5},
        "short": {"type": "string", "maxLength": 2}, "long": {"type": "string", "minLength": 20}}},
    "formats": {"type": "object", "required": ["when", "day", "mail", "link", "id"], "properties": {
        "when": {"type": "string", "format": "date-time"}, "day": {"type": "string", "format": "date"},
        "mail": {"type": "string", "format": "email"}, "link": {"type": "string", "format": "uri"},
        "id": {"type": "string", "format": "uuid"}}},
    "enums and consts": {"type": "object", "required": ["colour", "kind", "level"], "properties": {
        "colour": {"enum": ["red", "green"]}, "kind": {"const": "event"}, "level": {"enum": [3, 4]}}},
    "arrays": {"type": "object", "required": ["tags", "pair", "many", "none"], "properties": {
        "tags": {"type": "array", "items": {"type": "string"}},
        "pair": {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}], "items": False},
        "many": {"type": "array", "items": {"type": "integer"}, "minItems": 3},
        "none": {"type": "array", "items": {"type": "string"}, "maxItems": 0}}},
    "nullable union": {"type": "object", "required": ["maybe", "either", "list"], "properties": {
        "maybe": {"anyOf": [{"type": "null"}, {"type": "string", "minLength": 3}]},
        "either": {"oneOf": [{"type": "integer", "minimum": 10}, {"type": "boolean"}]},
        "list": {"type": ["array", "null"], "items": {"type": "number"}}}},
    "refs and defs (as Pydantic writes them)": {
        "$defs": {"Step": {"type": "object", "properties": {"explanation": {"type": "string"}},
                           "required": ["explanation"], "additionalProperties": False},
                  "Colour": {"enum": ["red", "green"], "type": "string"}},
        "type": "object", "additionalProperties": False, "required": ["steps", "colour", "answer"],
        "properties": {"steps": {"type": "array", "items": {"$ref": "#/$defs/Step"}},
                       "colour": {"$ref": "#/$defs/Colour"}, "answer": {"type": "string"}}},
    "recursive tree": {
        "$ref": "#/$defs/Node",
        "$defs": {"Node": {"type": "object", "required": ["name", "children", "parent"], "properties": {
            "name": {"type": "string"}, "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}},
            "parent": {"anyOf": [{"$ref": "#/$defs/Node"}, {"type": "null"}]}}}}},
    "allOf": {"allOf": [{"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
                        {"properties": {"b": {"type": "integer", "minimum": 7}}, "required": ["b"]}]},
    "minProperties": {"type": "object", "minProperties": 2, "properties": {"x": {"type": "string"},
                                                                          "y": {"type": "string"}}},
    "definitions (draft 7)": {"type": "object", "required": ["p"], "properties": {"p": {"$ref": "#/definitions/P"}},
                              "definitions": {"P": {"type": "integer", "maximum": -1}}},
}


@pytest.mark.parametrize("name", SCHEMAS)
def test_the_instance_is_valid(name: str) -> None:
    schema = SCHEMAS[name]
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    instance = schema_instance(schema)
    assert not list(validator.iter_errors(instance)), instance


def test_nested_objects_and_arrays_are_filled() -> None:
    instance = schema_instance(SCHEMAS["refs and defs (as Pydantic writes them)"])
    assert instance == {"steps": [{"explanation": "value"}], "colour": "red", "answer": "value"}


def test_recursion_ends_with_the_least_the_schema_allows() -> None:
    node = schema_instance(SCHEMAS["recursive tree"])
    depth = 0
    while node["children"]:
        node, depth = node["children"][0], depth + 1
    assert 0 < depth < 10  # a few generous levels, then empty lists and nulls


def test_gemini_schemas_with_upper_case_types() -> None:
    schema = {"type": "OBJECT", "required": ["cities", "count", "unit"], "properties": {
        "cities": {"type": "ARRAY", "items": {"type": "STRING"}}, "count": {"type": "INTEGER", "minimum": 2},
        "unit": {"type": "STRING", "enum": ["celsius", "fahrenheit"]}, "note": {"type": "STRING", "nullable": True}}}
    assert schema_instance(schema) == {"cities": ["Hamburg"], "count": 2, "unit": "celsius"}


def test_tool_arguments_fill_the_first_property_when_none_is_required() -> None:
    assert tool_arguments({"type": "object", "properties": {"location": {"type": "string"},
                                                            "unit": {"type": "string"}}}) == {"location": "Hamburg"}
    assert tool_arguments({"type": "object", "properties": {}}) == {}
    assert tool_arguments(None) == {}
