"""router/http/openapi.json: valid OpenAPI 3.1, complete for the contract, and true to the API guide's requests."""

import base64
import copy
import json
from collections.abc import Iterator
from importlib import resources
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

DOC_URI = "urn:llm-router:openapi"
DEFAULT_ENDPOINTS = ["/v1", "/v2", "/vision"]
ENDPOINT_ROUTES = [
    ("get", "models"),
    ("get", "models/{model}"),
    ("post", "chat/completions"),
    ("post", "completions"),
    ("post", "embeddings"),
    ("post", "audio/transcriptions"),
    ("post", "rerank"),
    ("post", "audio/translations"),
    ("get", "usage"),
]
OUTSIDE_ROUTES = [("get", "/healthz"), ("get", "/readyz"), ("get", "/metrics"), ("get", "/openapi.json")]
ADMIN_ROUTES = [("post", "/admin/reload"), ("get", "/admin/usage"), ("get", "/admin/config")]
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
ERROR_SCHEMA_REF = "#/components/schemas/Error"
RATE_LIMIT_HEADERS = {
    "x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests",
    "x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens",
}


def load_document() -> dict[str, Any]:
    # Read as package data: the file the gateway serves at /openapi.json is the one tested here.
    document: dict[str, Any] = json.loads((resources.files("router.http") / "openapi.json").read_text("utf-8"))
    return document


DOCUMENT = load_document()
REGISTRY: Registry[Any] = Registry().with_resource(
    DOC_URI, Resource.from_contents(DOCUMENT, default_specification=DRAFT202012)
)


def resolve(node: dict[str, Any]) -> dict[str, Any]:
    """Follows local `$ref`s (path items, responses, headers) to the object they name."""
    while "$ref" in node:
        target: Any = DOCUMENT
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def pointer(*parts: str) -> str:
    return "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def validator(*location: str) -> Draft202012Validator:
    """A 2020-12 validator for the schema at `location` inside the document, its `$ref`s resolved there."""
    return Draft202012Validator(
        {"$ref": f"{DOC_URI}#/{pointer(*location)}"},
        registry=REGISTRY,
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )


def schema_validator(name: str) -> Draft202012Validator:
    return validator("components", "schemas", name)


def errors_of(schema_name: str, instance: Any) -> list[str]:
    return [e.message for e in schema_validator(schema_name).iter_errors(instance)]


def operation(path: str, method: str) -> dict[str, Any]:
    item = resolve(DOCUMENT["paths"][path])
    assert method in item, f"{method.upper()} {path} is not documented"
    op: dict[str, Any] = item[method]
    return op


def operations() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in DOCUMENT["paths"].items():
        for method, op in resolve(item).items():
            if method in HTTP_METHODS:
                yield path, method, op


# --- the document itself -----------------------------------------------------------------------------


def test_document_is_valid_openapi_3_1() -> None:
    assert DOCUMENT["openapi"] == "3.1.0"
    assert DOCUMENT["servers"] == [{"url": "/"}]
    validate(DOCUMENT, cls=OpenAPIV31SpecValidator)


def test_the_validator_rejects_a_broken_document() -> None:
    broken = copy.deepcopy(DOCUMENT)
    broken["paths"]["/healthz"]["get"]["responses"]["200"]["content"] = "text/plain"
    with pytest.raises(OpenAPIValidationError):
        validate(broken, cls=OpenAPIV31SpecValidator)


@pytest.mark.parametrize("endpoint", DEFAULT_ENDPOINTS)
@pytest.mark.parametrize(("method", "route"), ENDPOINT_ROUTES)
def test_every_contract_route_is_documented_under_every_default_endpoint(
    endpoint: str, method: str, route: str
) -> None:
    op = operation(f"{endpoint}/{route}", method)
    assert "security" not in op, "endpoint routes take the client key (the document's default security)"


@pytest.mark.parametrize(("method", "path"), OUTSIDE_ROUTES)
def test_operational_routes_are_documented_without_auth(method: str, path: str) -> None:
    assert operation(path, method)["security"] == []


@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES)
def test_admin_routes_take_the_admin_key(method: str, path: str) -> None:
    assert operation(path, method)["security"] == [{"adminKey": []}]


def test_both_keys_are_bearer_tokens() -> None:
    assert DOCUMENT["security"] == [{"clientKey": []}]
    schemes = DOCUMENT["components"]["securitySchemes"]
    for name in ("clientKey", "adminKey"):
        assert schemes[name] == {**schemes[name], "type": "http", "scheme": "bearer"}


def test_no_undocumented_paths_beyond_the_contract() -> None:
    expected = {f"{ep}/{route}" for ep in DEFAULT_ENDPOINTS for _, route in ENDPOINT_ROUTES}
    expected |= {path for _, path in OUTSIDE_ROUTES + ADMIN_ROUTES}
    assert set(DOCUMENT["paths"]) == expected


def test_every_non_success_response_is_the_error_schema() -> None:
    checked = 0
    for path, method, op in operations():
        for status, response in op["responses"].items():
            if status.startswith("2"):
                continue
            content = resolve(response)["content"]
            assert set(content) == {"application/json"}, f"{method} {path} {status}"
            assert content["application/json"]["schema"] == {"$ref": ERROR_SCHEMA_REF}, f"{method} {path} {status}"
            checked += 1
        assert "default" in op["responses"], f"{method} {path}: upstream 4xx pass through with their status"
    assert checked > 100


@pytest.mark.parametrize("endpoint", DEFAULT_ENDPOINTS)
@pytest.mark.parametrize("route", ["chat/completions", "completions", "embeddings", "audio/transcriptions",
                                   "audio/translations", "rerank"])
def test_calls_document_every_error_status_of_the_contract(endpoint: str, route: str) -> None:
    statuses = set(operation(f"{endpoint}/{route}", "post")["responses"])
    assert {"400", "401", "404", "405", "413", "429", "500", "502", "503", "504"} <= statuses


def test_rate_limited_answers_carry_retry_after_and_the_rate_limit_headers() -> None:
    for path, method, op in operations():
        if "429" in op["responses"]:
            headers = set(resolve(op["responses"]["429"])["headers"])
            assert {"Retry-After", *RATE_LIMIT_HEADERS} <= headers, f"{method} {path}"
    assert "429" in operation("/v2/chat/completions", "post")["responses"]


def test_every_success_response_documents_the_request_id() -> None:
    for path, method, op in operations():
        successes = [resolve(r) for status, r in op["responses"].items() if status.startswith("2")]
        assert successes, f"{method} {path} documents no success"
        for response in successes:
            header = resolve(response["headers"]["x-request-id"])
            assert header["required"] is True, f"{method} {path}"


def test_readiness_answers_503_when_not_ready() -> None:
    assert set(operation("/readyz", "get")["responses"]) >= {"200", "503"}


def test_streaming_and_text_responses_are_documented() -> None:
    chat = operation("/v1/chat/completions", "post")["responses"]["200"]["content"]
    assert set(chat) == {"application/json", "text/event-stream"}
    transcription = operation("/v1/audio/transcriptions", "post")
    assert set(transcription["requestBody"]["content"]) == {"multipart/form-data"}
    assert set(transcription["responses"]["200"]["content"]) == {"application/json", "text/plain"}
    assert set(operation("/metrics", "get")["responses"]["200"]["content"]) == {"text/plain"}


def test_usage_queries_take_an_optional_date_range() -> None:
    # As the gateway: `from` defaults to today (UTC), `to` to `from`.
    for path, names in [("/v1/usage", {"from", "to", "model"}), ("/admin/usage", {"from", "to", "key", "model"})]:
        params = {p["name"]: p for p in operation(path, "get")["parameters"]}
        assert set(params) == names
        assert not params["from"]["required"] and not params["to"]["required"]


# --- the API guide's requests against the request schemas --------------------------------------------

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_current_weather",
        "description": "Get the current weather",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
                "format": {"type": "string", "enum": ["celsius", "fahrenheit"],
                           "description": "The temperature unit to use. Infer this from the users location."},
            },
            "required": ["location", "format"],
        },
    },
}
WEATHER_MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "Don't make assumptions about what values to plug into functions. "
                                  "Ask for clarification if a user request is ambiguous."},
    {"role": "user", "content": "What's the weather like today in Hamburg"},
]
IMAGE_URL = ("https://upload.wikimedia.org/wikipedia/commons/thumb/d/dd/Gfp-wisconsin-madison-the-nature-boardwalk"
             ".jpg/2560px-Gfp-wisconsin-madison-the-nature-boardwalk.jpg")
JPEG_BYTES = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9"


def vision_request(model: str, url: str, max_tokens: int) -> dict[str, Any]:
    return {
        "model": model,
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What’s in this image?"},
            {"type": "image_url", "image_url": {"url": url}},
        ]}],
        "max_tokens": max_tokens, "stream": True, "temperature": 0.01,
    }


GUIDE_REQUESTS: dict[str, tuple[str, dict[str, Any]]] = {
    "chat with a system and a user message": ("ChatCompletionRequest", {
        "model": "Llama-3.1-70B-Instruct",
        "messages": [{"role": "system", "content": "You are a helpful assistant named Llama-3."},
                     {"role": "user", "content": "What is Open Telekom Cloud?"}],
        "temperature": 0.1, "max_tokens": 256, "stream": True,
    }),
    "completions": ("CompletionRequest", {
        "model": "Llama-3.1-70B-Instruct", "prompt": "What is Python programming language?",
        "stream": True, "temperature": 0.2, "max_tokens": 128,
    }),
    "embeddings of 5 texts": ("EmbeddingRequest", {
        "model": "jina-embeddings-v2-base-de",
        "input": ["I am Batman and I'm rich", "I am Spiderman", "I am Ironman and I'm a bilionaire", "I am Flash",
                  "I am the president of USA"],
    }),
    "function calling": ("ChatCompletionRequest", {
        "model": "gpt-4-turbo-128k-france", "messages": WEATHER_MESSAGES, "tools": [WEATHER_TOOL],
    }),
    "function calling, the conversation continued": ("ChatCompletionRequest", {
        "model": "gpt-4-turbo-128k-france",
        "messages": [*WEATHER_MESSAGES,
                     {"role": "assistant", "content": None, "tool_calls": [{
                         "id": "call_adnFRLazqswLI1ky6FU2O40u", "type": "function",
                         "function": {"name": "get_current_weather",
                                      "arguments": '{"location":"Hamburg","format":"celsius"}'}}]},
                     {"role": "tool", "tool_call_id": "call_adnFRLazqswLI1ky6FU2O40u", "content": "12 celsius"}],
        "tools": [WEATHER_TOOL],
    }),
    "vision with an https URL and a system message in parts": ("ChatCompletionRequest", {
        **vision_request("llava-v1.6-vicuna-13b", IMAGE_URL, 300),
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": "You are an helpful AI assistant named LLava "
                                            "help people answer their question base on the image and text "
                                            "provided."}]},
            *vision_request("llava-v1.6-vicuna-13b", IMAGE_URL, 300)["messages"],
        ],
    }),
    "vision with a data: URI": ("ChatCompletionRequest", vision_request(
        "llava-v1.6-34b", "data:image/jpeg;base64," + base64.b64encode(JPEG_BYTES).decode(), 1000)),
}


@pytest.mark.parametrize("name", list(GUIDE_REQUESTS))
def test_the_api_guide_requests_validate(name: str) -> None:
    schema_name, request = GUIDE_REQUESTS[name]
    assert errors_of(schema_name, request) == []


def test_a_whole_decimal_is_an_integer_and_null_is_absent() -> None:
    assert errors_of("ChatCompletionRequest", chat(max_tokens=5.0, user=None, tools=None, tool_choice=None,
                                                   response_format=None, parallel_tool_calls=None)) == []
    assert errors_of("ChatCompletionRequest", chat(messages=[{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}]}])) == []


def test_unknown_openai_fields_are_accepted_for_pass_through() -> None:
    _, request = GUIDE_REQUESTS["chat with a system and a user message"]
    assert errors_of("ChatCompletionRequest", {**request, "reasoning_effort": "low", "metadata": {"a": "b"}}) == []


def chat(**changes: Any) -> dict[str, Any]:
    return {**GUIDE_REQUESTS["chat with a system and a user message"][1], **changes}


INVALID_REQUESTS: dict[str, tuple[str, dict[str, Any]]] = {
    "no messages": ("ChatCompletionRequest", {"model": "gpt-4o"}),
    "empty messages": ("ChatCompletionRequest", chat(messages=[])),
    "no model": ("ChatCompletionRequest", {"messages": [{"role": "user", "content": "hi"}]}),
    "unknown role": ("ChatCompletionRequest", chat(messages=[{"role": "robot", "content": "hi"}])),
    "tool message without its call id": ("ChatCompletionRequest", chat(messages=[{"role": "tool", "content": "x"}])),
    "temperature above 2": ("ChatCompletionRequest", chat(temperature=2.5)),
    "top_p above 1": ("ChatCompletionRequest", chat(top_p=1.5)),
    "max_tokens 0": ("ChatCompletionRequest", chat(max_tokens=0)),
    "max_completion_tokens not an integer": ("ChatCompletionRequest", chat(max_completion_tokens=1.5)),
    "five stop sequences": ("ChatCompletionRequest", chat(stop=["a", "b", "c", "d", "e"])),
    "an http image URL": ("ChatCompletionRequest", vision_request("llava-v1.6-34b", "http://example.com/a.jpg", 9)),
    "a data: URI that is not base64": ("ChatCompletionRequest", vision_request(
        "llava-v1.6-34b", "data:image/jpeg,rawbytes", 9)),
    "a data: URI that is not an image": ("ChatCompletionRequest", vision_request(
        "llava-v1.6-34b", "data:text/plain;base64,aGk=", 9)),
    "an assistant message with neither content nor tool calls": ("ChatCompletionRequest", chat(messages=[
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": None}])),
    "stream_options without stream": ("ChatCompletionRequest", chat(stream=False,
                                                                    stream_options={"include_usage": True})),
    "an image part without a URL": ("ChatCompletionRequest", chat(messages=[
        {"role": "user", "content": [{"type": "image_url", "image_url": {}}]}])),
    "an unknown tool_choice": ("ChatCompletionRequest", chat(tool_choice="sometimes")),
    "a tool name with spaces": ("ChatCompletionRequest", chat(tools=[
        {"type": "function", "function": {"name": "get weather"}}])),
    "an empty prompt list": ("CompletionRequest", {"model": "Llama-3.1-70B-Instruct", "prompt": []}),
    "a prompt of floats": ("CompletionRequest", {"model": "Llama-3.1-70B-Instruct", "prompt": [1.5, 2.5]}),
    "an unknown encoding_format": ("EmbeddingRequest", {"model": "text-embedding-bge-m3", "input": "a",
                                                        "encoding_format": "int8"}),
    "an empty input": ("EmbeddingRequest", {"model": "text-embedding-bge-m3", "input": ""}),
    "dimensions 0": ("EmbeddingRequest", {"model": "text-embedding-bge-m3", "input": "a", "dimensions": 0}),
    "input of mixed types": ("EmbeddingRequest", {"model": "text-embedding-bge-m3", "input": ["a", 1]}),
    "a user that is an object": ("EmbeddingRequest", {"model": "text-embedding-bge-m3", "input": "a", "user": {}}),
    "best_of 21": ("CompletionRequest", {"model": "Llama-3.1-70B-Instruct", "prompt": "a", "best_of": 21}),
    "a json_schema strict that is a string": ("ChatCompletionRequest", chat(response_format={
        "type": "json_schema", "json_schema": {"name": "answer", "strict": "yes"}})),
    "an empty content array": ("ChatCompletionRequest", chat(messages=[{"role": "user", "content": []}])),
    "an image part in a system message": ("ChatCompletionRequest", chat(messages=[{"role": "system", "content": [
        {"type": "image_url", "image_url": {"url": IMAGE_URL}}]}])),
    "a data: URI that is not valid base64": ("ChatCompletionRequest", vision_request(
        "llava-v1.6-34b", "data:image/png;base64,AAA", 9)),
    "an image URL with a control character": ("ChatCompletionRequest", vision_request(
        "llava-v1.6-34b", "https://example.com/a\x01.png", 9)),
    "a transcription form field with a non-ASCII name": ("TranscriptionRequest", {
        "model": "whisper-large-v3", "file": "x", "größe": "1"}),
}


@pytest.mark.parametrize("name", list(INVALID_REQUESTS))
def test_the_request_schemas_reject_invalid_requests(name: str) -> None:
    schema_name, request = INVALID_REQUESTS[name]
    assert errors_of(schema_name, request) != []


# --- the document's own examples ----------------------------------------------------------------------


def media_examples() -> Iterator[tuple[str, tuple[str, ...], Any]]:
    """(where, location of the schema, example) for every JSON example in the document."""
    components = DOCUMENT["components"]
    places: list[tuple[tuple[str, ...], dict[str, Any]]] = []
    for name, item in components["pathItems"].items():
        for method, op in item.items():
            if method not in HTTP_METHODS:
                continue
            base = ("components", "pathItems", name, method)
            if "requestBody" in op:
                places.append(((*base, "requestBody"), op["requestBody"]))
            places += [((*base, "responses", s), r) for s, r in op["responses"].items() if "$ref" not in r]
    places += [(("components", "responses", name), r) for name, r in components["responses"].items()]
    for location, holder in places:
        for media_type, media in holder.get("content", {}).items():
            if media_type != "application/json":
                continue
            schema_at = (*location, "content", media_type, "schema")
            if "example" in media:
                yield "/".join(location), schema_at, media["example"]
            for key, example in media.get("examples", {}).items():
                yield f"{'/'.join(location)} {key}", schema_at, example["value"]


def test_every_json_example_validates_against_its_schema() -> None:
    seen = 0
    for where, schema_at, example in media_examples():
        assert [e.message for e in validator(*schema_at).iter_errors(example)] == [], where
        seen += 1
    assert seen >= 20


def stream_locations() -> Iterator[tuple[str, tuple[str, ...], dict[str, Any]]]:
    for name, item in DOCUMENT["components"]["pathItems"].items():
        for method, op in item.items():
            stream = op["responses"].get("200", {}).get("content", {}).get("text/event-stream") if (
                method in HTTP_METHODS) else None
            if stream is not None:
                yield f"{method} {name}", ("components", "pathItems", name, method, "responses", "200", "content",
                                           "text/event-stream", "schema"), stream


def sse_events(text: str) -> list[dict[str, str]]:
    """The example's events as SSE field maps (`data:` lines only, as the gateway sends)."""
    blocks = [b for b in text.split("\n\n") if b.strip()]
    return [{"data": "\n".join(line.removeprefix("data: ") for line in b.split("\n"))} for b in blocks]


def test_stream_events_are_data_then_done_with_a_json_payload_schema() -> None:
    found = list(stream_locations())
    assert {where for where, _, _ in found} == {"post ChatCompletions", "post Completions"}
    for where, schema_at, stream in found:
        events = sse_events(stream["example"])
        assert events[-1] == {"data": "[DONE]"}, where
        event_validator = validator(*schema_at)
        payload_validator = validator(*schema_at, "properties", "data", "anyOf", "1", "contentSchema")
        for event in events:
            assert list(event_validator.iter_errors(event)) == [], f"{where}: {event}"
        for event in events[:-1]:
            payload = json.loads(event["data"])
            assert list(payload_validator.iter_errors(payload)) == [], f"{where}: {event}"
        error_event = {"error": {"message": "upstream disconnected", "type": "server_error", "param": None,
                                 "code": "upstream_disconnected"}}
        assert list(payload_validator.iter_errors(error_event)) == [], "a mid-stream error is a valid event"
        assert list(payload_validator.iter_errors({"choices": []})) != [], where


def test_the_error_schema_is_openai_shape() -> None:
    ok = {"error": {"message": "Invalid API key.", "type": "invalid_request_error", "param": None,
                    "code": "invalid_api_key"}}
    assert errors_of("Error", ok) == []
    assert errors_of("Error", {"error": {**ok["error"], "code": 429, "type": None}}) == []
    assert errors_of("Error", {"error": {"message": "no type, param or code"}}) != []
    assert errors_of("Error", {"detail": "Not Found"}) != []


def test_models_carry_their_meta_data() -> None:
    model = {"id": "Llama-3.1-70B-Instruct", "object": "model", "created": 1764028800, "owned_by": "t-systems",
             "meta_data": {"max_sequence_length": 8192, "hidden_size": 0, "max_output_length": 0}}
    assert errors_of("ModelList", {"object": "list", "data": [model]}) == []
    assert errors_of("Model", {k: v for k, v in model.items() if k != "meta_data"}) != []
