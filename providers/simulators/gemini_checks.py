"""What the Gemini simulator refuses, the way the real service does: missing or
invalid credentials, unknown fields (the API is a protobuf: an unknown name is a 400),
roles other than `user` and `model`, bad parts and inline data, function declarations
and response schemas outside Gemini's OpenAPI subset, function-call and
function-response turns out of order or unmatched, generation settings out of range.
Errors are raised as `GeminiError`, which renders Gemini's `{error: {code, message,
status}}` body."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

import orjson
from aiohttp import web

from providers.base import JSON

KNOWN_MODEL_PREFIXES = (
    "gemini-",
    "gemma-",
    "learnlm-",
    "text-embedding-",
    "embedding-",
    "text-multilingual-embedding-",
)
MIME_TYPES = frozenset({
    "image/png", "image/jpeg", "image/webp", "image/heic", "image/heif",
    "audio/wav", "audio/mp3", "audio/mpeg", "audio/aiff", "audio/aac", "audio/ogg", "audio/flac",
    "video/mp4", "video/mpeg", "video/webm", "application/pdf", "text/plain",
})  # fmt: skip
REQUEST_FIELDS = frozenset({
    "contents", "systemInstruction", "tools", "toolConfig", "generationConfig", "safetySettings", "cachedContent",
})  # fmt: skip
PART_DATA = frozenset({"text", "inlineData", "fileData", "functionCall", "functionResponse", "executableCode",
                       "codeExecutionResult"})  # fmt: skip
SCHEMA_FIELDS = frozenset({
    "type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems", "properties", "required",
    "minProperties", "maxProperties", "minLength", "maxLength", "pattern", "example", "anyOf", "propertyOrdering",
    "default", "items", "minimum", "maximum",
})  # fmt: skip
SCHEMA_TYPES = frozenset({"STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL"})
GENERATION_FIELDS = frozenset({
    "temperature", "topP", "topK", "candidateCount", "maxOutputTokens", "stopSequences", "presencePenalty",
    "frequencyPenalty", "seed", "responseMimeType", "responseSchema", "responseJsonSchema", "responseLogprobs",
    "logprobs", "responseModalities", "thinkingConfig", "mediaResolution",
})  # fmt: skip
# MediaResolution (ai.google.dev API reference), in generationConfig and, on Gemini 3, a part's `{level}`.
MEDIA_RESOLUTIONS = frozenset({"MEDIA_RESOLUTION_UNSPECIFIED", "MEDIA_RESOLUTION_LOW", "MEDIA_RESOLUTION_MEDIUM",
                               "MEDIA_RESOLUTION_HIGH"})
FUNCTION_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$")
RPC_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
              429: "RESOURCE_EXHAUSTED", 499: "CANCELLED", 500: "INTERNAL", 503: "UNAVAILABLE",
              504: "DEADLINE_EXCEEDED"}  # fmt: skip


class GeminiError(Exception):
    """An answer in Gemini's error shape."""

    def __init__(self, status: int, message: str, details: list[JSON] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.details = status, message, details or []

    def response(self, retry_after: float | None = None) -> web.Response:
        error: JSON = {"code": self.status, "message": self.message, "status": RPC_STATUS.get(self.status, "UNKNOWN")}
        if self.details:
            error["details"] = self.details
        headers = {"retry-after": f"{retry_after:g}"} if retry_after is not None else None
        return web.json_response({"error": error}, status=self.status, headers=headers)


def invalid(message: str) -> GeminiError:
    return GeminiError(400, message)


def authenticate(request: web.Request, vertex: bool) -> None:
    if vertex:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Bearer" or not token.strip():
            raise GeminiError(
                401, "Request is missing required authentication credential. Expected OAuth 2 access token."
            )
        return
    key = request.headers.get("x-goog-api-key") or request.query.get("key")
    if not key:
        raise GeminiError(
            403,
            "Method doesn't allow unregistered callers (callers without established identity). "
            "Please use API Key or other form of API consumer identity to call this API.",
        )
    if key.startswith("invalid"):
        details = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com"}]  # fmt: skip
        raise GeminiError(400, "API key not valid. Please pass a valid API key.", details)


def check_model(model: str, *, embedding: bool) -> None:
    is_embedding = "embedding" in model
    if not model.startswith(KNOWN_MODEL_PREFIXES) or is_embedding != embedding:
        method = "embedding" if embedding else "generateContent"
        raise GeminiError(404, f"models/{model} is not found for API version v1beta, or is not supported for {method}.")


def json_object(body: bytes) -> JSON:
    try:
        payload = orjson.loads(body or b"{}")
    except orjson.JSONDecodeError:
        raise invalid("Invalid JSON payload received. Unexpected token.") from None
    if not isinstance(payload, dict):
        raise invalid("Invalid JSON payload received. Expected an object.")
    return payload


def _unknown(name: str, where: str) -> GeminiError:
    return invalid(f"Invalid JSON payload received. Unknown name \"{name}\" at '{where}': Cannot find field.")


def validate_generate(payload: JSON, vertex: bool) -> None:
    for name in payload:
        if name not in REQUEST_FIELDS and not (vertex and name == "labels"):
            raise _unknown(name, "")
    contents = payload.get("contents")
    if not isinstance(contents, list) or not contents:
        raise invalid("* GenerateContentRequest.contents: contents is not specified")
    for i, content in enumerate(contents):
        role = content.get("role") if isinstance(content, dict) else None
        if role not in ("user", "model") and (vertex or role is not None):
            raise invalid("Please use a valid role: user, model.")
        parts = content.get("parts") if isinstance(content, dict) else None
        if not isinstance(parts, list) or not parts:
            raise invalid(f"* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty.")
        for j, part in enumerate(parts):
            _validate_part(part, f"contents[{i}].parts[{j}]")
    _validate_turn_order(contents)
    system = payload.get("systemInstruction")
    if system is not None:
        for j, part in enumerate((system or {}).get("parts") or []):
            _validate_part(part, f"system_instruction.parts[{j}]")
    declared = _validate_tools(payload.get("tools"))
    _validate_tool_config(payload.get("toolConfig"), declared)
    _validate_generation_config(payload.get("generationConfig"))


def _validate_part(part: Any, where: str) -> None:
    if not isinstance(part, dict):
        raise invalid(f"Invalid value at '{where}': a Part must be an object.")
    data = [k for k in part if k in PART_DATA]
    for name in part:
        if name not in PART_DATA and name not in ("thought", "thoughtSignature", "videoMetadata", "mediaResolution"):
            raise _unknown(name, where)
    resolution = part.get("mediaResolution")
    if resolution is not None and (not isinstance(resolution, dict)
                                   or resolution.get("level") not in MEDIA_RESOLUTIONS):
        raise invalid(f"Invalid value at '{where}.media_resolution.level' "
                      "(type.googleapis.com/google.ai.generativelanguage.v1beta.MediaResolution)")
    if len(data) != 1:
        raise invalid(
            f"* GenerateContentRequest.{where}.data: required oneof field 'data' must have one initialized field"
        )
    inline = part.get("inlineData")
    if inline is not None:
        mime = (inline or {}).get("mimeType")
        if mime not in MIME_TYPES:
            raise invalid(f"Unsupported MIME type: {mime}")
        try:
            base64.b64decode((inline or {}).get("data") or "", validate=True)
        except (binascii.Error, ValueError):
            raise invalid(
                f"Invalid value at '{where}.inline_data.data' (TYPE_BYTES), Base64 decoding failed."
            ) from None
    if "functionResponse" in part and not isinstance((part["functionResponse"] or {}).get("response"), dict):
        raise invalid(
            f"Invalid value at '{where}.function_response.response' (type.googleapis.com/google.protobuf.Struct)"
        )


def _validate_turn_order(contents: list[JSON]) -> None:
    previous: JSON | None = None
    for content in contents:
        calls = [p["functionCall"] for p in content["parts"] if "functionCall" in p]
        responses = [p["functionResponse"] for p in content["parts"] if "functionResponse" in p]
        if calls and (content.get("role") != "model" or previous is None or previous.get("role") == "model"):
            raise invalid(
                "Please ensure that function call turn comes immediately after a user turn or after a function "
                "response turn."
            )
        if responses:
            before = [p["functionCall"] for p in (previous or {}).get("parts", []) if "functionCall" in p]
            if not before:
                raise invalid("Please ensure that function response turn comes immediately after a function call turn.")
            if len(before) != len(responses):
                raise invalid(
                    "Please ensure that the number of function response parts is equal to the number of function "
                    "call parts of the function call turn."
                )
        previous = content


def _validate_tools(tools: Any) -> set[str]:
    declared: set[str] = set()
    for t, tool in enumerate(tools or []):
        for name in tool:
            if name not in ("functionDeclarations", "googleSearch", "codeExecution"):
                raise _unknown(name, f"tools[{t}]")
        for d, declaration in enumerate(tool.get("functionDeclarations") or []):
            where = f"tools[{t}].function_declarations[{d}]"
            for name in declaration:
                if name not in ("name", "description", "parameters", "parametersJsonSchema", "response", "behavior"):
                    raise _unknown(name, where)
            if not FUNCTION_NAME.match(str(declaration.get("name", ""))):
                raise invalid(f"* GenerateContentRequest.{where}.name: Invalid function name.")
            if declaration.get("parameters") is not None:
                _validate_schema(declaration["parameters"], f"{where}.parameters")
            declared.add(declaration["name"])
    return declared


def _validate_schema(schema: Any, where: str) -> None:
    if not isinstance(schema, dict):
        raise invalid(f"Invalid value at '{where}': a Schema must be an object.")
    for name in schema:
        if name not in SCHEMA_FIELDS:
            raise _unknown(name, where)
    kind = str(schema.get("type", "TYPE_UNSPECIFIED")).upper()
    if "type" in schema and kind not in SCHEMA_TYPES:
        raise invalid(f"Invalid value at '{where}.type' (type.googleapis.com/google.ai.generativelanguage.v1beta.Type)")
    if "enum" in schema and not all(isinstance(v, str) for v in schema["enum"] or []):
        raise invalid(f"Invalid value at '{where}.enum': enum values must be strings.")
    properties = schema.get("properties")
    if kind == "OBJECT" and not properties:
        raise invalid(f"* GenerateContentRequest.{where}.properties: should be non-empty for OBJECT type")
    for name, sub in (properties or {}).items():
        _validate_schema(sub, f"{where}.properties[{name}].value")
    missing = [r for r in schema.get("required") or [] if r not in (properties or {})]
    if missing:
        raise invalid(f"* GenerateContentRequest.{where}.required[0]: property is not defined")
    if kind == "ARRAY" and "items" not in schema:
        raise invalid(f"* GenerateContentRequest.{where}.items: missing field.")
    if "items" in schema:
        _validate_schema(schema["items"], f"{where}.items")
    for k, sub in enumerate(schema.get("anyOf") or []):
        _validate_schema(sub, f"{where}.any_of[{k}]")


def _validate_tool_config(config: Any, declared: set[str]) -> None:
    if config is None:
        return
    calling = (config or {}).get("functionCallingConfig") or {}
    if calling and not declared:
        raise invalid("Function calling config is set without function_declarations.")
    mode = calling.get("mode", "MODE_UNSPECIFIED")
    if mode not in ("MODE_UNSPECIFIED", "AUTO", "ANY", "NONE", "VALIDATED"):
        raise invalid("Invalid value at 'tool_config.function_calling_config.mode'")
    allowed = calling.get("allowedFunctionNames")
    if allowed is not None and mode not in ("ANY", "VALIDATED"):
        raise invalid("* GenerateContentRequest.tool_config.function_calling_config.allowed_function_names: only "
                       "allowed when mode is ANY.")  # fmt: skip
    if any(name not in declared for name in allowed or []):
        raise invalid("* GenerateContentRequest.tool_config.function_calling_config.allowed_function_names: "
                       "function not declared.")  # fmt: skip


def _validate_generation_config(config: Any) -> None:
    for name in config or {}:
        if name not in GENERATION_FIELDS:
            raise _unknown(name, "generation_config")
    config = config or {}
    if config.get("mediaResolution", "MEDIA_RESOLUTION_UNSPECIFIED") not in MEDIA_RESOLUTIONS:
        raise invalid("Invalid value at 'generation_config.media_resolution' "
                      "(type.googleapis.com/google.ai.generativelanguage.v1beta.MediaResolution)")
    count = config.get("candidateCount", 1)
    if not isinstance(count, int) or not 1 <= count <= 8:
        raise invalid("* GenerateContentRequest.generation_config.candidate_count: must be between 1 and 8.")
    if config.get("responseSchema") is not None:
        _validate_schema(config["responseSchema"], "generation_config.response_schema")
    if config.get("responseSchema") is not None and config.get("responseMimeType") != "application/json":
        raise invalid("* GenerateContentRequest.generation_config.response_mime_type: must be application/json.")
