"""What a hostile upstream sends is checked where it enters: usage out of range is treated as
missing (the gateway counts instead, the answer still served, the access line still written),
its error pages and texts never reach the client as they are, and a "stream" that is not an
event stream is an HTTP 502 before any byte is sent."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from router import metrics
from tests.harness import KEY_A, Gateway
from tests.security.hostile import MODELS, AccessLines, HostileUpstream, hostile_gateway
from tests.security.http import Answer, call

SSE = "text/event-stream"
JSON_TYPE = "application/json"
# Out of range in every way an upstream can be: negative, beyond any answer, beyond 64 bits, fractional, a string.
BAD_COUNTS = [b"-1000000", b"1000000000000", b"123456789012345678901234567890", b"1.5", b'"12"', b"true"]


@pytest.fixture(scope="module")
def hostile() -> Iterator[tuple[Gateway, HostileUpstream]]:
    yield from hostile_gateway()


@pytest.fixture
def access() -> Iterator[AccessLines]:
    logger = logging.getLogger("llm_router.access")
    handler, level = AccessLines(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


def chat(gw: Gateway, model: str, stream: bool = False, **extra: Any) -> Answer:
    body = {"model": model, "messages": [{"role": "user", "content": "hello"}], "stream": stream, **extra}
    return call(gw, "POST", "/v2/chat/completions", KEY_A, data=orjson.dumps(body),
                headers={"Content-Type": "application/json"})


def answer_with_prompt_tokens(kind: str, count: bytes) -> bytes:
    """A whole, valid answer of `kind`'s protocol whose prompt token count is `count` (raw JSON)."""
    if kind == "openai-compatible":
        return (b'{"id":"c1","object":"chat.completion","created":1,"model":"upstream-model","choices":[{"index":0,'
                b'"message":{"role":"assistant","content":"hi there"},"finish_reason":"stop"}],'
                b'"usage":{"prompt_tokens":' + count + b',"completion_tokens":2,"total_tokens":2}}')
    if kind == "anthropic":
        return (b'{"id":"msg_1","type":"message","role":"assistant","model":"upstream-model","content":[{"type":"text",'
                b'"text":"hi there"}],"stop_reason":"end_turn","usage":{"input_tokens":' + count +
                b',"output_tokens":2}}')
    return (b'{"candidates":[{"content":{"role":"model","parts":[{"text":"hi there"}]},"finishReason":"STOP",'
            b'"index":0}],"usageMetadata":{"promptTokenCount":' + count + b',"candidatesTokenCount":2}}')


def stream_with_prompt_tokens(kind: str, count: bytes) -> bytes:
    if kind == "openai-compatible":
        chunk = b'{"id":"c1","object":"chat.completion.chunk","created":1,"model":"upstream-model","choices":'
        return (b"data: " + chunk + b'[{"index":0,"delta":{"role":"assistant","content":"hi there"},'
                b'"finish_reason":"stop"}]}\n\n' + b"data: " + chunk + b'[],"usage":{"prompt_tokens":' + count +
                b',"completion_tokens":2,"total_tokens":2}}\n\ndata: [DONE]\n\n')
    if kind == "anthropic":
        return (b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","type":"message",'
                b'"role":"assistant","content":[],"model":"m","usage":{"input_tokens":' + count +
                b',"output_tokens":1}}}\n\n'
                b'event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":'
                b'{"type":"text","text":""}}\n\n'
                b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":'
                b'{"type":"text_delta","text":"hi there"}}\n\n'
                b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n'
                b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},'
                b'"usage":{"output_tokens":2}}\n\n'
                b'event: message_stop\ndata: {"type":"message_stop"}\n\n')
    return (b'data: {"candidates":[{"content":{"role":"model","parts":[{"text":"hi there"}]},"finishReason":"STOP",'
            b'"index":0}],"usageMetadata":{"promptTokenCount":' + count + b',"candidatesTokenCount":2}}\n\n')


def events(answer: Answer) -> list[Any]:
    return [orjson.loads(line[6:]) for line in answer.text.split("\n")
            if line.startswith("data: ") and line != "data: [DONE]"]


# --- usage out of range -------------------------------------------------------------


@pytest.mark.parametrize("count", BAD_COUNTS)
@pytest.mark.parametrize("kind", list(MODELS))
def test_usage_out_of_range_is_counted_by_the_gateway_and_the_answer_served(
        hostile: tuple[Gateway, HostileUpstream], access: AccessLines, kind: str, count: bytes) -> None:
    gw, upstream = hostile
    upstream.script(200, JSON_TYPE, answer_with_prompt_tokens(kind, count))
    answer = chat(gw, MODELS[kind])
    assert answer.status == 200, answer.text
    body = answer.json()
    assert body["choices"][0]["message"]["content"] == "hi there"
    usage = body.get("usage")  # absent, or the gateway's own count: never the upstream's number
    assert usage is None or (isinstance(usage["prompt_tokens"], int) and 0 <= usage["prompt_tokens"] < 10**6)
    [line] = [f for f in access.fields if f.get("model") == MODELS[kind]][-1:]
    assert line["status"] == 200 and line["tokens_estimated"] is True
    assert 0 < line["prompt_tokens"] < 1000 and 0 < line["completion_tokens"] < 1000


@pytest.mark.parametrize("count", [b"-1000000", b"1000000000000", b"1.5"])
@pytest.mark.parametrize("kind", list(MODELS))
def test_streamed_usage_out_of_range_is_counted_by_the_gateway(
        hostile: tuple[Gateway, HostileUpstream], access: AccessLines, kind: str, count: bytes) -> None:
    gw, upstream = hostile
    upstream.script(200, SSE, stream_with_prompt_tokens(kind, count))
    answer = chat(gw, MODELS[kind], stream=True, stream_options={"include_usage": True})
    assert answer.status == 200, answer.text
    assert answer.text.endswith("data: [DONE]\n\n"), answer.text
    usages = [e["usage"] for e in events(answer) if e.get("usage")]
    assert len(usages) == 1 and 0 <= usages[0]["prompt_tokens"] < 10**6, usages
    line = [f for f in access.fields if f.get("model") == MODELS[kind]][-1]
    assert line["status"] == 200 and line["tokens_estimated"] is True and line["prompt_tokens"] >= 0


def test_a_metrics_failure_neither_turns_the_answer_into_a_500_nor_loses_the_log_line(
        hostile: tuple[Gateway, HostileUpstream], access: AccessLines, monkeypatch: pytest.MonkeyPatch) -> None:
    gw, upstream = hostile

    def broken(*labels: str) -> Any:
        raise ValueError("Counters can only be incremented by non-negative amounts.")

    monkeypatch.setattr(metrics, "labelled", broken)
    upstream.script(200, JSON_TYPE, answer_with_prompt_tokens("openai-compatible", b"3"))
    answer = chat(gw, "h-openai")
    assert answer.status == 200, answer.text
    line = [f for f in access.fields if f.get("model") == "h-openai"][-1]
    assert line["status"] == 200 and line["prompt_tokens"] == 3


@pytest.mark.parametrize(("kind", "chunk"), [
    ("openai-compatible", b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":'
                          b'[{"index":-7,"delta":{"content":"x"},"finish_reason":null}]}\n\n'),
    ("openai-compatible", b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":'
                          b'[{"index":0,"delta":{"tool_calls":[{"index":1e15,"function":{"name":"f"}}]}}]}\n\n'),
    ("anthropic", b'event: content_block_start\ndata: {"type":"content_block_start","index":"zero",'
                  b'"content_block":{"type":"text","text":""}}\n\n'),
    ("gemini", b'data: {"candidates":[{"content":{"role":"model","parts":[{"text":"x"}]},"index":-1}]}\n\n'),
])
def test_a_position_out_of_range_in_a_stream_is_a_502(hostile: tuple[Gateway, HostileUpstream], kind: str,
                                                      chunk: bytes) -> None:
    gw, upstream = hostile
    upstream.script(200, SSE, chunk)
    answer = chat(gw, MODELS[kind], stream=True)
    assert answer.status == 502, answer.text
    assert answer.json()["error"]["code"] == "upstream_malformed"


def test_a_logprob_out_of_range_is_a_502(hostile: tuple[Gateway, HostileUpstream]) -> None:
    gw, upstream = hostile
    body = orjson.loads(answer_with_prompt_tokens("openai-compatible", b"3"))
    body["choices"][0]["logprobs"] = {"content": [{"token": "hi", "logprob": 5.0, "bytes": [104, 105],
                                                   "top_logprobs": []}]}
    upstream.script(200, JSON_TYPE, body)
    answer = chat(gw, "h-openai")
    assert answer.status == 502, answer.text


# --- error text ---------------------------------------------------------------------

SECRET = "sk-live-0123456789abcdefABCDEF"
TRACEBACK_PAGE = (f"<html><body><h1>500 Internal Server Error</h1><pre>Traceback (most recent call last):\n"
                  f'  File "/srv/app.py", line 12, in handler\n    key = "{SECRET}"\nKeyError: x</pre>'
                  f"</body></html>").encode()


@pytest.mark.parametrize("kind", list(MODELS))
@pytest.mark.parametrize("content_type", ["text/html", "text/plain", JSON_TYPE])
def test_an_upstream_error_page_is_not_relayed(hostile: tuple[Gateway, HostileUpstream], kind: str,
                                               content_type: str) -> None:
    gw, upstream = hostile
    upstream.script(500, content_type, TRACEBACK_PAGE)
    answer = chat(gw, MODELS[kind])
    assert answer.status == 500, answer.text
    message = answer.json()["error"]["message"]
    assert SECRET not in answer.text and "Traceback" not in answer.text and "<" not in message
    assert "HTTP 500" in message


def error_shape(kind: str, text: str) -> dict[str, Any]:
    """`text` as the message of `kind`'s own JSON error."""
    if kind == "openai-compatible":
        return {"error": {"message": text, "type": "server_error", "code": None}}
    if kind == "anthropic":
        return {"type": "error", "error": {"type": "api_error", "message": text}}
    return {"error": {"code": 400, "message": text, "status": "INVALID_ARGUMENT"}}


@pytest.mark.parametrize("kind", list(MODELS))
def test_a_structured_upstream_message_is_relayed_bounded_and_without_secrets(
        hostile: tuple[Gateway, HostileUpstream], kind: str) -> None:
    gw, upstream = hostile
    text = (f"backend failed: Authorization: Bearer {SECRET} api_key={SECRET} "
            f"token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl " + "padding " * 500)
    upstream.script(400, JSON_TYPE, error_shape(kind, text))
    answer = chat(gw, MODELS[kind])
    assert answer.status == 400, answer.text
    message = answer.json()["error"]["message"]
    assert "backend failed" in message  # the provider's own words are kept ...
    assert SECRET not in message and "eyJhbGciOiJIUzI1NiJ9" not in message  # ... without what looks like a secret
    assert len(message) < 1000


@pytest.mark.parametrize("kind", list(MODELS))
def test_free_text_in_an_error_type_or_code_is_not_relayed(hostile: tuple[Gateway, HostileUpstream],
                                                           kind: str) -> None:
    gw, upstream = hostile
    body = error_shape(kind, "bad request")
    inner = body["error"]
    inner["type"] = inner["code"] = f"failed with {SECRET} <b>"
    upstream.script(400, JSON_TYPE, body)
    answer = chat(gw, MODELS[kind])
    assert answer.status == 400, answer.text
    assert SECRET not in answer.text and "<b>" not in answer.text


@pytest.mark.parametrize("retry_after", ["inf", "nan", "1e300", "-5", "99999999"])
def test_a_retry_after_out_of_range_is_ignored(hostile: tuple[Gateway, HostileUpstream], retry_after: str) -> None:
    gw, upstream = hostile
    upstream.script(429, JSON_TYPE, error_shape("openai-compatible", "slow down"), headers={"Retry-After": retry_after})
    answer = chat(gw, "h-openai")
    assert answer.status == 429, answer.text
    assert answer.json()["error"]["message"].endswith("slow down")
    assert "Retry-After" not in answer.headers


# --- a stream that is not an event stream -------------------------------------------


@pytest.mark.parametrize("kind", list(MODELS))
@pytest.mark.parametrize(("content_type", "body"), [
    ("text/html", b"<html><body>Welcome to nginx!</body></html>"),
    (JSON_TYPE, b'{"id":"c1","object":"chat.completion","choices":[]}'),
])
def test_a_stream_answered_with_something_else_is_an_http_502(hostile: tuple[Gateway, HostileUpstream], kind: str,
                                                              content_type: str, body: bytes) -> None:
    gw, upstream = hostile
    upstream.script(200, content_type, body)
    answer = chat(gw, MODELS[kind], stream=True)
    assert answer.status == 502, answer.text
    assert answer.headers["Content-Type"].startswith(JSON_TYPE)
    error = answer.json()["error"]
    assert error["code"] == "upstream_not_a_stream" and "<" not in error["message"]
