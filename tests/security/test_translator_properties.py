"""Hypothesis on the pure parts: any valid OpenAI chat request translates for every
provider without an unexpected exception (a 400 `UpstreamError` for what a provider
cannot take is fine), the OpenAI family round-trips it, upstream bodies and stream
events of any shape only ever raise `UpstreamError`, and the SSE decoder gives the
same events however a byte stream is split."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from providers.anthropic import ADAPTERS as ANTHROPIC_ADAPTERS
from providers.base import Adapter, ApiRequest, InlineImage, Operation, SSEEvent, UpstreamError
from providers.gemini import ADAPTERS as GEMINI_ADAPTERS
from providers.openai import ADAPTERS as OPENAI_ADAPTERS
from providers.settings import ProviderSettings, Secret
from providers.sse import SSEDecoder
from router.config.schema import RequestLimits
from router.http import validate

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
CONFIGS = {
    "openai": ProviderSettings(name="openai", kind="openai", base_url="https://api.openai.com/v1",
                               api_key=Secret("sk-x")),
    "azure": ProviderSettings(name="azure", kind="azure", base_url="https://x.openai.azure.com", api_key=Secret("k"),
                              api_version="2024-10-21"),
    "openai-compatible": ProviderSettings(name="local", kind="openai-compatible", base_url="http://vllm:8000/v1"),
    "anthropic": ProviderSettings(name="anthropic", kind="anthropic", base_url="https://api.anthropic.com",
                                  api_key=Secret("k")),
    "gemini": ProviderSettings(name="gemini", kind="gemini", base_url="https://generativelanguage.googleapis.com",
                               api_key=Secret("k")),
}
FACTORIES = {**OPENAI_ADAPTERS, **ANTHROPIC_ADAPTERS, **GEMINI_ADAPTERS}
ADAPTERS: dict[str, Adapter] = {kind: FACTORIES[kind](config) for kind, config in CONFIGS.items()}
OPENAI_FAMILY = ("openai", "azure", "openai-compatible")

# --- a strategy for valid OpenAI chat requests (router/openapi.json's ChatCompletionRequest) -------------

text = st.text(max_size=24)
names = st.from_regex(r"[a-zA-Z0-9_-]{1,64}", fullmatch=True)
json_values = st.recursive(st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False,
                           allow_infinity=False) | text, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(text, inner, max_size=3), max_leaves=8)
schemas = st.just({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}) | \
    st.dictionaries(names, json_values, max_size=3)
https_urls = st.from_regex(r"[a-z]{1,12}", fullmatch=True).map(lambda host: f"https://{host}.example.com/i.png")
data_uris = st.binary(max_size=24).map(lambda raw: "data:image/png;base64," + base64.b64encode(raw).decode())


def optional(required: dict[str, Any], **maybe: Any) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(required, optional=maybe)


text_part = optional({"type": st.just("text"), "text": text})
refusal_part = optional({"type": st.just("refusal"), "refusal": text})
image_part = optional({"type": st.just("image_url"), "image_url": optional(
    {"url": https_urls | data_uris}, detail=st.sampled_from(["auto", "low", "high"]))})
audio_part = optional({"type": st.just("input_audio"), "input_audio": optional(
    {"data": st.binary(max_size=16).map(lambda b: base64.b64encode(b).decode()), "format": st.sampled_from(
        ["wav", "mp3"])})})


def content(parts: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return text | st.lists(parts, min_size=1, max_size=3)


tool_calls = st.lists(optional({"id": names, "type": st.just("function"), "function": optional({
    "name": names, "arguments": text | st.dictionaries(names, json_values, max_size=2).map(
        lambda d: orjson.dumps(d).decode())})}), min_size=1, max_size=2)
messages = st.lists(st.one_of(
    optional({"role": st.sampled_from(["system", "developer"]), "content": content(text_part)}, name=names),
    optional({"role": st.just("user"), "content": content(text_part | image_part | audio_part)}, name=names),
    optional({"role": st.just("assistant"), "content": content(text_part | refusal_part)}, tool_calls=tool_calls,
             refusal=st.none() | text),
    optional({"role": st.just("assistant"), "tool_calls": tool_calls}, content=st.none()),
    optional({"role": st.just("tool"), "content": content(text_part), "tool_call_id": names}),
), min_size=1, max_size=6)
tools = st.lists(optional({"type": st.just("function"), "function": optional(
    {"name": names}, description=text, parameters=schemas, strict=st.none() | st.booleans())}), max_size=3)
response_formats = st.one_of(
    st.none(), st.just({"type": "text"}), st.just({"type": "json_object"}),
    optional({"type": st.just("json_schema"), "json_schema": optional(
        {"name": names}, description=text, schema=schemas, strict=st.none() | st.booleans())}))
chat_requests = optional(
    {"model": st.just("public-model"), "messages": messages},
    temperature=st.none() | st.floats(0, 2), top_p=st.none() | st.floats(0, 1), n=st.integers(1, 4),
    max_tokens=st.none() | st.integers(1, 10_000_000), max_completion_tokens=st.integers(1, 100_000),
    stop=st.none() | text | st.lists(text, min_size=1, max_size=4), seed=st.integers(-(2**63), 2**63 - 1),
    presence_penalty=st.floats(-2, 2), frequency_penalty=st.floats(-2, 2), logprobs=st.none() | st.booleans(),
    top_logprobs=st.integers(0, 20), user=text, parallel_tool_calls=st.booleans(), tools=tools,
    tool_choice=st.none() | st.sampled_from(["none", "auto", "required"]) | names.map(
        lambda n: {"type": "function", "function": {"name": n}}),
    response_format=response_formats, stream=st.booleans(),
    logit_bias=st.dictionaries(st.integers(0, 100_000).map(str), st.integers(-100, 100), max_size=3),
    metadata=st.dictionaries(names, text, max_size=2),  # an unknown field: carried or refused, never a crash
)


def api_request(body: dict[str, Any]) -> ApiRequest:
    stream, include_usage = validate.stream_flags(body)
    urls = validate.chat(body, RequestLimits())  # the generator makes what the gateway itself accepts
    images = {url: InlineImage("image/png", "iVBORw0KGgo=") for url in urls}
    return ApiRequest(Operation.CHAT, body, "public-model", stream, include_usage, image_urls=tuple(urls),
                      images=images, max_output_length=8192)


@pytest.mark.parametrize("kind", list(ADAPTERS))
@SETTINGS
@given(body=chat_requests)
def test_any_valid_chat_request_translates(kind: str, body: dict[str, Any]) -> None:
    request = api_request(body)
    try:
        call = ADAPTERS[kind].to_upstream(request, "upstream-model")
    except UpstreamError as refused:
        assert refused.status == 400, (refused.status, refused.message)
        return
    sent = orjson.loads(call.body or b"{}")
    assert isinstance(sent, dict)
    if kind in OPENAI_FAMILY:  # the body round-trips: only the model (and the usage request) change
        expected = {**body, "model": "upstream-model"}
        if request.stream:
            expected["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        assert {k: v for k, v in sent.items() if k in expected} == expected


upstream_bodies = st.one_of(
    st.binary(max_size=64), json_values.map(orjson.dumps),
    st.dictionaries(st.sampled_from(["choices", "candidates", "content", "usage", "usageMetadata", "error",
                                     "type", "id", "model", "message", "delta", "index", "stop_reason"]),
                    json_values, max_size=5).map(orjson.dumps),
)
REQUEST = ApiRequest(Operation.CHAT, {"model": "public-model", "messages": [{"role": "user", "content": "hi"}]},
                     "public-model", stream=True, include_usage=True)




@pytest.mark.parametrize("kind", list(ADAPTERS))
@SETTINGS
@given(body=upstream_bodies)
def test_any_upstream_body_is_translated_or_an_upstream_error(kind: str, body: bytes) -> None:
    try:
        answer, _ = ADAPTERS[kind].from_upstream(REQUEST, body)
    except UpstreamError:
        return
    assert isinstance(orjson.loads(answer), dict)


@pytest.mark.parametrize("kind", list(ADAPTERS))
@SETTINGS
@given(events=st.lists(st.tuples(st.none() | st.sampled_from(
    ["message_start", "content_block_start", "content_block_delta", "message_delta", "message_stop", "ping",
     "error"]), upstream_bodies), max_size=6))
def test_any_upstream_stream_is_translated_or_an_upstream_error(kind: str,
                                                                 events: list[tuple[str | None, bytes]]) -> None:
    translator = ADAPTERS[kind].stream_translator(REQUEST)
    try:
        for name, data in events:
            out = translator.feed(SSEEvent(name, data))
            assert all(isinstance(orjson.loads(chunk), dict) for chunk in out)
        translator.finish()
    except UpstreamError:
        return


# --- the SSE decoder -------------------------------------------------------------------------------------

line_text = st.text(st.characters(exclude_characters="\r\n", exclude_categories=["Cs"]), max_size=16)
sse_lines = st.one_of(
    line_text.map(lambda t: "data: " + t), line_text.map(lambda t: "data:" + t), line_text.map(lambda t: "event: " + t),
    line_text.map(lambda t: ": " + t), st.just("id: 7"), st.just("retry: 100"), st.just(""), st.just("data"),
)


@SETTINGS
@given(lines=st.lists(sse_lines, max_size=20), newline=st.sampled_from(["\n", "\r\n", "\r"]),
       cuts=st.lists(st.integers(0, 10_000), max_size=8), trailing_blank=st.booleans())
def test_the_sse_decoder_gives_the_same_events_for_any_split(lines: list[str], newline: str, cuts: list[int],
                                                             trailing_blank: bool) -> None:
    raw = (newline.join(lines) + (newline * 2 if trailing_blank else "")).encode()
    whole = SSEDecoder()
    expected = whole.feed(raw) + whole.flush()
    points = sorted({c % (len(raw) + 1) for c in cuts})
    pieces = [raw[a:b] for a, b in zip([0, *points], [*points, len(raw)], strict=True)]
    split = SSEDecoder()
    got = [event for piece in pieces for event in split.feed(piece)] + split.flush()
    assert got == expected
    one_by_one = SSEDecoder()
    assert [e for i in range(len(raw)) for e in one_by_one.feed(raw[i:i + 1])] + one_by_one.flush() == expected
