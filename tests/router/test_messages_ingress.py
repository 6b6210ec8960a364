"""The Anthropic Messages ingress without a network: the byte-level pass-through against the
recorded Anthropic samples, the Messages <-> canonical chat translation, and the event
sequence made of canonical chunks (recorded streams of every protocol, at 1/7/64-byte splits)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from providers.anthropic import ADAPTERS as ANTHROPIC_ADAPTERS
from providers.anthropic_passthrough import PassthroughStream, allowed_betas, rewrite_model, top_level_members
from providers.base import ApiRequest, Operation, StreamState, UpstreamError
from providers.openai import ADAPTERS as OPENAI_ADAPTERS
from providers.settings import ProviderSettings
from providers.sse import SSEDecoder
from router.errors import GatewayError
from router.http.ingress.anthropic import ANTHROPIC, native_only, to_chat
from router.http.ingress.anthropic_answer import AnthropicStream, message_from_chat

SAMPLES = Path(__file__).resolve().parents[1] / "samples"  # recorded bodies; provenance in SOURCES.md
ANTHROPIC_STREAMS = sorted(p.name for p in SAMPLES.glob("anthropic-stream-*.sse"))
ANTHROPIC_ANSWERS = ["anthropic-thinking.json", "anthropic-thinking-tool-use.json", "anthropic-redacted-thinking.json",
                     "anthropic-prompt-cache-write.json", "anthropic-prompt-cache-read.json",
                     "anthropic-pdf-document.json", "anthropic-structured-output.json"]
SPLITS = [None, 1, 7, 64]


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def passthrough_request(body: dict[str, Any] | None = None, stream: bool = True) -> ApiRequest:
    source = body or {"model": "claude", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    return ApiRequest(Operation.CHAT, to_chat(source), "claude", stream=stream, source=source,
                      source_protocol="anthropic", passthrough=True, source_raw=orjson.dumps(source))


def pipe(body: bytes, piece: int | None, feed: Any) -> list[bytes]:
    decoder = SSEDecoder()
    out: list[bytes] = []
    step = piece or len(body)
    for start in range(0, len(body), step):
        for event in decoder.feed(body[start:start + step]):
            out.extend(feed(event))
    for event in decoder.flush():
        out.extend(feed(event))
    return out


# --- the pass-through ---------------------------------------------------------------


@pytest.mark.parametrize("name", ANTHROPIC_STREAMS)
@pytest.mark.parametrize("piece", SPLITS)
def test_recorded_streams_pass_through_byte_for_byte(name: str, piece: int | None) -> None:
    body = sample(name)
    request = passthrough_request()
    adapter = ANTHROPIC_ADAPTERS["anthropic"](ProviderSettings(name="a", kind="anthropic"))
    translator = adapter.stream_translator(request)
    assert isinstance(translator, PassthroughStream)
    client = ANTHROPIC.client_stream(request)
    sent = client.chunks(pipe(body, piece, translator.feed)) + client.end(translator.finish())
    # The one difference allowed: a last event the recording left without its blank line is ended.
    assert sent == (body if body.endswith(b"\n\n") else body.rstrip(b"\n") + b"\n\n")
    assert translator.state.done and translator.state.usage is not None


def test_stream_usage_counts_cache_reads_and_writes() -> None:
    translator = PassthroughStream(StreamState("claude", False))
    pipe(sample("anthropic-stream-prompt-cache-read.sse"), 7, translator.feed)
    assert translator.state.usage is not None
    start = orjson.loads(sample("anthropic-stream-prompt-cache-read.sse").split(b"data: ", 2)[1].split(b"\n")[0])
    usage = start["message"]["usage"]
    assert usage["cache_read_input_tokens"] == 1165
    assert translator.state.usage.prompt_tokens == usage["input_tokens"] + 1165 + usage["cache_creation_input_tokens"]
    assert translator.state.usage.cached_tokens == 1165


@pytest.mark.parametrize("name", ANTHROPIC_ANSWERS)
def test_recorded_answers_pass_through_unchanged(name: str) -> None:
    body = sample(name)
    adapter = ANTHROPIC_ADAPTERS["anthropic"](ProviderSettings(name="a", kind="anthropic"))
    request = passthrough_request(stream=False)
    out, usage = adapter.from_upstream(request, body)
    assert out == body
    assert ANTHROPIC.answer(out, request) == body
    recorded = orjson.loads(body)["usage"]
    assert usage.prompt_tokens == sum(recorded.get(k) or 0 for k in (
        "input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"))
    assert usage.completion_tokens == recorded["output_tokens"]
    assert usage.cached_tokens == (recorded.get("cache_read_input_tokens") or 0)
    assert usage.cache_write_tokens == (recorded.get("cache_creation_input_tokens") or 0)


def test_a_mid_stream_error_event_raises_for_the_client_protocol() -> None:
    translator = PassthroughStream(StreamState("claude", False))
    body = sample("anthropic-stream-text.sse").split(b"event: content_block_stop")[0] + \
        b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
    with pytest.raises(UpstreamError) as caught:
        pipe(body, 7, translator.feed)
    event = ANTHROPIC.client_stream(passthrough_request()).error(caught.value)
    assert event.startswith(b"event: error\ndata: ")
    assert orjson.loads(event.split(b"data: ")[1])["error"]["type"] == "overloaded_error"


# A request as clients send it: thinking blocks with signatures, cache_control, a document,
# a server tool, odd spacing, escapes and a nested "model" key; only the top-level model may change.
CLIENT_BODY = (b'{ "messages" : [{"role":"user","content":[{"type":"document","source":{"type":"base64",'
               b'"media_type":"application/pdf","data":"JVBERi0xLjQK"},"cache_control":{"type":"ephemeral"}},'
               b'{"type":"text","text":"say \\"model\\": \\u00e9\\\\"}]},{"role":"assistant","content":'
               b'[{"type":"thinking","thinking":"Let me think\\n","signature":"ErUBCkYIBRgCIkB+/=="},'
               b'{"type":"redacted_thinking","data":"EmwKAhgBEgy3va3pzix/LafPsn4a"},{"type":"tool_use",'
               b'"id":"toolu_1","name":"f","input":{"model":"nested"}}]}],\n  "model":\t"claude-sonnet-4-5" ,'
               b'"max_tokens":1024.0,"tools":[{"type":"web_search_20250305","name":"web_search"}],'
               b'"metadata":{"user_id":"u"}}')


def test_rewrite_model_changes_only_the_top_level_model() -> None:
    out = rewrite_model(CLIENT_BODY, "claude-sonnet-4-5-20250929", None)
    assert out == CLIENT_BODY.replace(b'"claude-sonnet-4-5" ', b'"claude-sonnet-4-5-20250929" ')
    assert orjson.loads(out)["model"] == "claude-sonnet-4-5-20250929"


def test_rewrite_model_for_vertex_puts_the_version_where_the_model_was() -> None:
    out = rewrite_model(CLIENT_BODY, "ignored", "vertex-2023-10-16")
    assert out == CLIENT_BODY.replace(b'"model":\t"claude-sonnet-4-5"', b'"anthropic_version":"vertex-2023-10-16"')
    parsed = orjson.loads(out)
    assert "model" not in parsed and parsed["anthropic_version"] == "vertex-2023-10-16"
    with_version = b'{"anthropic_version":"x", "model":"m","max_tokens":1}'
    assert orjson.loads(rewrite_model(with_version, "m2", "v")) == {"anthropic_version": "v", "max_tokens": 1}
    last = b'{"max_tokens":1, "model":"m"}'
    assert orjson.loads(rewrite_model(last, "m2", "v")) == {"max_tokens": 1, "anthropic_version": "v"}


def test_top_level_members_skip_nested_objects_and_strings() -> None:
    members = top_level_members(CLIENT_BODY)
    assert list(members) == ["messages", "model", "max_tokens", "tools", "metadata"]
    start, value, end = members["model"]
    assert CLIENT_BODY[value:end] == b'"claude-sonnet-4-5"'


def test_beta_headers_follow_the_allowlist() -> None:
    asked = ("prompt-caching-2024-07-31", "claude-code-20250219", "interleaved-thinking-2025-05-14")
    assert allowed_betas(asked, ("interleaved-thinking-2025-05-14", "prompt-caching-2024-07-31")) == \
        "prompt-caching-2024-07-31,interleaved-thinking-2025-05-14"
    assert allowed_betas(asked, ()) is None
    assert allowed_betas(asked, ("*",)) == ",".join(asked)


# --- Messages -> canonical chat -----------------------------------------------------


def test_messages_request_as_canonical_chat() -> None:
    body = {
        "model": "gpt-4o", "max_tokens": 300, "stream": True, "stop_sequences": ["END"], "temperature": 0.5,
        "metadata": {"user_id": "user-7"}, "thinking": {"type": "enabled", "budget_tokens": 2048},
        "system": [{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}},
                   {"type": "text", "text": "Answer in English."}],
        "tools": [{"name": "get_weather", "description": "weather", "input_schema": {"type": "object"},
                   "cache_control": {"type": "ephemeral"}}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Weather?"},
                                         {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                                      "data": "iVBO"}}]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "is_error": True,
                 "content": [{"type": "text", "text": "timeout"}]},
                {"type": "text", "text": "Try again."}]},
        ],
    }
    chat = to_chat(body)
    assert chat["max_completion_tokens"] == 300 and chat["stop"] == ["END"] and chat["user"] == "user-7"
    assert chat["reasoning_effort"] == "low" and chat["stream_options"] == {"include_usage": True}
    assert chat["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "parameters": {"type": "object"}, "description": "weather"}}]
    assert chat["tool_choice"] == "required" and chat["parallel_tool_calls"] is False
    assert chat["messages"] == [
        {"role": "system", "content": [{"type": "text", "text": "You are terse."},
                                       {"type": "text", "text": "Answer in English."}]},
        {"role": "user", "content": [{"type": "text", "text": "Weather?"},
                                     {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}}]},
        {"role": "assistant", "content": "Checking.", "tool_calls": [{"id": "toolu_1", "type": "function", "function": {
            "name": "get_weather", "arguments": '{"city":"Paris"}'}}]},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "Error: timeout"},
        {"role": "user", "content": [{"type": "text", "text": "Try again."}]},
    ]
    assert native_only(body) is None


@pytest.mark.parametrize(("budget", "effort"), [(1024, "low"), (4096, "medium"), (16384, "high")])
def test_thinking_budget_as_reasoning_effort(budget: int, effort: str) -> None:
    body = {"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}],
            "thinking": {"type": "enabled", "budget_tokens": budget}}
    assert to_chat(body)["reasoning_effort"] == effort


@pytest.mark.parametrize(("extra", "param"), [
    ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools.0"),
    ({"container": "c"}, "container"),
    ({"messages": [{"role": "user", "content": [{"type": "document", "source": {"type": "url",
                                                                                  "url": "https://x/y.pdf"}}]}]},
     "messages.0.content.0"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": [
        {"type": "server_tool_use", "id": "s", "name": "web_search", "input": {}}]}]}, "messages.1.content.0"),
])
def test_what_only_a_claude_upstream_serves_is_named(extra: dict[str, Any], param: str) -> None:
    body = {"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}], **extra}
    refused = native_only(body)
    assert refused is not None and refused[0] == param


@pytest.mark.parametrize("body", [
    {"max_tokens": 1, "messages": [{"role": "user", "content": "x"}]},
    {"model": "m", "messages": [{"role": "user", "content": "x"}]},
    {"model": "m", "max_tokens": 0, "messages": [{"role": "user", "content": "x"}]},
    {"model": "m", "max_tokens": 1, "messages": []},
    {"model": "m", "max_tokens": 1, "messages": [{"role": "system", "content": "x"}]},
    {"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}], "tool_choice": {"type": "x"}},
])
def test_malformed_requests_are_400s(body: dict[str, Any]) -> None:
    with pytest.raises(GatewayError) as caught:
        to_chat(body)
    assert caught.value.status == 400


# --- canonical chat -> Messages -----------------------------------------------------


def events_of(stream: bytes) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for block in stream.strip().split(b"\n\n"):
        name, data = block.split(b"\n", 1)
        assert name.startswith(b"event: ") and data.startswith(b"data: ")
        parsed = orjson.loads(data[6:])
        assert parsed["type"] == name[7:].decode()
        out.append((parsed["type"], parsed))
    return out


def accumulate(events: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """What an Anthropic client makes of the events; checks their order and indexes on the way."""
    assert events[0][0] == "message_start" and events[-1][0] == "message_stop"
    message = events[0][1]["message"]
    open_index: int | None = None
    json_parts: dict[int, str] = {}
    for name, data in events[1:-1]:
        if name == "content_block_start":
            assert open_index is None and data["index"] == len(message["content"])
            open_index = data["index"]
            message["content"].append(dict(data["content_block"]))
        elif name == "content_block_delta":
            assert data["index"] == open_index
            block, delta = message["content"][data["index"]], data["delta"]
            key = {"text_delta": "text", "thinking_delta": "thinking", "input_json_delta": "partial_json",
                   "signature_delta": "signature"}[delta["type"]]
            if key == "partial_json":
                json_parts[data["index"]] = json_parts.get(data["index"], "") + delta[key]
            else:
                block[key] = block.get(key, "") + delta[key]
        elif name == "content_block_stop":
            assert data["index"] == open_index
            open_index = None
        elif name == "message_delta":
            message.update(data["delta"])
            message["usage"].update(data["usage"])
    for index, text in json_parts.items():
        message["content"][index]["input"] = orjson.loads(text or "{}")
    return message


def through_canonical(upstream: Any, body: bytes, piece: int | None, request: ApiRequest) -> dict[str, Any]:
    translator = upstream.stream_translator(request)
    client = AnthropicStream(request)
    sent = client.chunks(pipe(body, piece, translator.feed)) + client.end(translator.finish())
    return accumulate(events_of(sent))


def canonical_request(model: str = "m") -> ApiRequest:
    body = {"model": model, "max_tokens": 1000, "stream": True,
            "messages": [{"role": "user", "content": "What is the weather in Paris?"}]}
    return ApiRequest(Operation.CHAT, to_chat(body), model, stream=True, include_usage=True, source=body,
                      source_protocol="anthropic")


@pytest.mark.parametrize("name", ANTHROPIC_STREAMS)
@pytest.mark.parametrize("piece", SPLITS)
def test_recorded_anthropic_streams_through_the_chat_translators(name: str, piece: int | None) -> None:
    """Anthropic events -> canonical chunks -> Anthropic events: the same texts, tools and stop."""
    body = sample(name)
    adapter = ANTHROPIC_ADAPTERS["anthropic"](ProviderSettings(name="a", kind="anthropic"))
    message = through_canonical(adapter, body, piece, canonical_request())
    recorded = accumulate(events_of(b"".join(pipe(body, None, PassthroughStream(StreamState("m", False)).feed))))
    texts = [b["text"] for b in recorded["content"] if b["type"] == "text"]
    assert "".join(b.get("text", "") for b in message["content"] if b["type"] == "text") == "".join(texts)
    tools = [(b["name"], b["input"]) for b in recorded["content"] if b["type"] == "tool_use"]
    assert [(b["name"], b["input"]) for b in message["content"] if b["type"] == "tool_use"] == tools
    assert message["stop_reason"] == recorded["stop_reason"]
    assert message["usage"]["output_tokens"] == recorded["usage"]["output_tokens"]


@pytest.mark.parametrize("name", ["openai-chat-stream-text-usage.sse", "openai-chat-stream-tool-call.sse",
                                  "openai-chat-stream-parallel-tool-calls.sse"])
@pytest.mark.parametrize("piece", SPLITS)
def test_recorded_openai_streams_as_messages_events(name: str, piece: int | None) -> None:
    body = sample(name)
    adapter = OPENAI_ADAPTERS["openai"](ProviderSettings(name="o", kind="openai", base_url="http://x/v1"))
    message = through_canonical(adapter, body, piece, canonical_request())
    chunks = [orjson.loads(line[6:]) for line in body.splitlines() if line.startswith(b"data: {")]
    text = "".join((c["choices"][0]["delta"].get("content") or "") for c in chunks if c.get("choices"))
    assert "".join(b.get("text", "") for b in message["content"] if b["type"] == "text") == text
    calls = [b for b in message["content"] if b["type"] == "tool_use"]
    if "tool" in name:
        assert calls and all(isinstance(b["input"], dict) and b["id"] for b in calls)
        assert message["stop_reason"] == "tool_use"
    else:
        assert message["stop_reason"] == "end_turn" and message["usage"]["output_tokens"] > 0
    assert message["model"] == "m" and message["id"].startswith("msg_")


def test_a_reasoning_stream_opens_a_thinking_block_first() -> None:
    request = canonical_request()
    client = AnthropicStream(request)
    chunks = [{"id": "chatcmpl-1", "choices": [{"index": 0, "delta": {"reasoning_content": "Think"}}]},
              {"id": "chatcmpl-1", "choices": [{"index": 0, "delta": {"content": "Answer"}}]},
              {"id": "chatcmpl-1", "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]},
              {"id": "chatcmpl-1", "choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 3,
                                                            "prompt_tokens_details": {"cached_tokens": 4}}}]
    sent = client.chunks([orjson.dumps(c) for c in chunks[:2]]) + client.end([orjson.dumps(c) for c in chunks[2:]])
    message = accumulate(events_of(sent))
    assert [b["type"] for b in message["content"]] == ["thinking", "text"]
    assert message["content"][0]["thinking"] == "Think" and message["stop_reason"] == "max_tokens"
    assert message["usage"]["input_tokens"] == 8 and message["usage"]["cache_read_input_tokens"] == 4


def test_a_whole_chat_answer_as_a_message() -> None:
    answer = {"id": "chatcmpl-abc", "object": "chat.completion", "choices": [{"index": 0, "finish_reason": "tool_calls",
              "message": {"role": "assistant", "content": "Let me check.", "tool_calls": [
                  {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}]}}],
              "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}
    message = orjson.loads(message_from_chat(orjson.dumps(answer), canonical_request("gpt-4o")))
    assert message == {"id": "msg_abc", "type": "message", "role": "assistant", "model": "gpt-4o",
                       "content": [{"type": "text", "text": "Let me check."},
                                   {"type": "tool_use", "id": "call_1", "name": "f", "input": {"a": 1}}],
                       "stop_reason": "tool_use", "stop_sequence": None,
                       "usage": {"input_tokens": 10, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                                 "output_tokens": 5}}


@pytest.mark.parametrize(("status", "shown", "kind"), [
    (400, 400, "invalid_request_error"), (401, 401, "authentication_error"), (403, 403, "permission_error"),
    (404, 404, "not_found_error"), (413, 413, "request_too_large"), (429, 429, "rate_limit_error"),
    (500, 500, "api_error"), (503, 529, "overloaded_error"), (504, 504, "timeout_error")])
def test_errors_in_anthropic_shape(status: int, shown: int, kind: str) -> None:
    response = ANTHROPIC.errors.error_response(status, "why", headers={"retry-after": "3"})
    assert response.status == shown and response.headers["retry-after"] == "3"
    assert response.body is not None
    assert orjson.loads(response.body) == {"type": "error", "error": {"type": kind, "message": "why"}}
