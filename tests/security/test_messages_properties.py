"""The Messages ingress on hostile input: any JSON a client sends is a translation or a 400
(never another exception), the pass-through's model splice keeps everything else, and any
canonical answer an upstream can make (an openai-compatible body passes nearly as it came)
becomes a Message or a 502, and any chunks a stream of events."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from providers.anthropic_passthrough import rewrite_model
from providers.base import ApiRequest, Operation, UpstreamError
from router.errors import GatewayError
from router.http.ingress.anthropic import native_only, to_chat
from router.http.ingress.anthropic_answer import AnthropicStream, message_from_chat

SETTINGS = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))
SCALARS = st.none() | st.booleans() | st.integers(-2**60, 2**60) | st.floats(allow_nan=False, allow_infinity=False) \
    | st.text(max_size=5)


def values(*names: str) -> Any:
    return st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                        | st.dictionaries(st.sampled_from(names), inner, max_size=4), max_leaves=20)


BLOCK_VALUES = values("type", "text", "source", "content", "role", "id", "name", "input", "tool_use_id", "is_error",
                      "media_type", "data", "url", "cache_control", "thinking", "signature")
BLOCKS = st.fixed_dictionaries(
    {"type": st.sampled_from(["text", "image", "document", "tool_use", "tool_result", "thinking", "server_tool_use"])},
    optional={k: BLOCK_VALUES for k in ("text", "source", "content", "id", "name", "input", "tool_use_id",
                                        "is_error")})
TURNS = st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system"]),
                               "content": st.text(max_size=5) | st.lists(BLOCKS | BLOCK_VALUES, max_size=3)
                               | BLOCK_VALUES})
BODIES = st.fixed_dictionaries(
    {"model": st.sampled_from(["m", 1]), "max_tokens": st.sampled_from([1, 0, "x"]),
     "messages": st.lists(TURNS, max_size=3)},
    optional={k: BLOCK_VALUES for k in ("system", "tools", "tool_choice", "thinking", "metadata", "stop_sequences",
                                        "stream", "output_config", "output_format", "container")})
ANSWERS = values("id", "choices", "message", "delta", "content", "tool_calls", "function", "arguments", "name",
                 "index", "finish_reason", "usage", "prompt_tokens", "completion_tokens", "prompt_tokens_details",
                 "cached_tokens", "reasoning_content", "refusal")
REQUEST = ApiRequest(Operation.CHAT, {"model": "m", "messages": [{"role": "user", "content": "x"}]}, "m", stream=True)


@SETTINGS
@given(BODIES)
def test_any_request_is_translated_or_a_400(body: dict[str, Any]) -> None:
    native_only(body)
    try:
        to_chat(body)
    except GatewayError as error:
        assert error.status == 400
    raw = orjson.dumps(body, option=orjson.OPT_INDENT_2)
    assert orjson.loads(rewrite_model(raw, "upstream", None)) == {**body, "model": "upstream"}
    vertex = {k: v for k, v in body.items() if k != "model"}
    assert orjson.loads(rewrite_model(b" \n" + raw, "upstream", "vertex-2023-10-16")) == {
        **vertex, "anthropic_version": "vertex-2023-10-16"}


@SETTINGS
@given(ANSWERS, st.lists(ANSWERS, max_size=4))
def test_any_canonical_answer_is_a_message_or_a_502(whole: Any, chunks: list[Any]) -> None:
    try:
        message = orjson.loads(message_from_chat(orjson.dumps(whole), REQUEST))
        assert message["type"] == "message" and isinstance(message["content"], list)
    except UpstreamError as error:
        assert error.status == 502
    stream = AnthropicStream(REQUEST)
    sent = stream.chunks([orjson.dumps(c) for c in chunks]) + stream.end([])
    assert sent.startswith(b"event: message_start\n") and sent.endswith(b'event: message_stop\ndata: {"type":'
                                                                        b'"message_stop"}\n\n')
