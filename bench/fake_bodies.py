"""The bodies the fake upstream answers with, in each provider's real wire format.

Every body is built once per (protocol, model) and cached as bytes, so answering a
request costs a dict lookup and a socket write: the upstream must never be what a
benchmark measures. Shapes follow /work/shared/reference/wire-formats.md and the
recordings in its samples/ (Gemini frames events with CRLF, the others with LF).
"""

from __future__ import annotations

import base64
import functools
import json
import struct

PROMPT_TOKENS = 12
WORDS = ("The", "quick", "brown", "fox", "jumps", "over", "the", "lazy", "dog", "while", "the", "benchmark",
         "counts", "every", "chunk", "that", "passes", "through", "the", "gateway", "under", "test", "and", "the",
         "clock", "keeps", "running")
CREATED = 1_732_500_000


def dumps(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def words(n: int) -> list[str]:
    """n tokens of text, each with its leading space (the first without)."""
    return [(" " if i else "") + WORDS[i % len(WORDS)] for i in range(n)]


# --- OpenAI -------------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def openai_chat(model: str, n_words: int) -> bytes:
    text = "".join(words(n_words))
    return dumps({
        "id": "chatcmpl-bench0001", "object": "chat.completion", "created": CREATED, "model": model,
        "system_fingerprint": "fp_bench",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": None},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": n_words,
                  "total_tokens": PROMPT_TOKENS + n_words},
    })


@functools.lru_cache(maxsize=256)
def openai_chat_events(model: str, n_chunks: int, include_usage: bool) -> tuple[bytes, ...]:
    """n_chunks content chunks (the first also carries the role), the finish chunk,
    the usage chunk when asked for, and [DONE]: each one SSE event."""
    head = {"id": "chatcmpl-bench0001", "object": "chat.completion.chunk", "created": CREATED,
            "model": model, "system_fingerprint": "fp_bench"}
    events: list[bytes] = []
    for i, word in enumerate(words(n_chunks)):
        delta = {"role": "assistant", "content": word} if i == 0 else {"content": word}
        chunk = {**head, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}]}
        events.append(b"data: " + dumps(chunk) + b"\n\n")
    finish = {**head, "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]}
    events.append(b"data: " + dumps(finish) + b"\n\n")
    if include_usage:
        usage = {**head, "choices": [], "usage": {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": n_chunks,
                                                  "total_tokens": PROMPT_TOKENS + n_chunks}}
        events.append(b"data: " + dumps(usage) + b"\n\n")
    events.append(b"data: [DONE]\n\n")
    return tuple(events)


@functools.lru_cache(maxsize=64)
def _vector_json(dim: int) -> str:
    # A deterministic, realistic-looking vector: floats with full precision.
    return "[" + ",".join(f"{((i * 7919) % 2001 - 1000) / 33333.3:.9f}" for i in range(dim)) + "]"


@functools.lru_cache(maxsize=64)
def _vector_base64(dim: int) -> str:
    floats = [((i * 7919) % 2001 - 1000) / 33333.3 for i in range(dim)]
    return base64.b64encode(struct.pack(f"<{dim}f", *floats)).decode()


@functools.lru_cache(maxsize=256)
def openai_embeddings(model: str, n_inputs: int, dim: int, as_base64: bool) -> bytes:
    vector = json.dumps(_vector_base64(dim)) if as_base64 else _vector_json(dim)
    items = ",".join(f'{{"object":"embedding","index":{i},"embedding":{vector}}}' for i in range(n_inputs))
    tokens = PROMPT_TOKENS * n_inputs
    return (f'{{"object":"list","data":[{items}],"model":{json.dumps(model)},'
            f'"usage":{{"prompt_tokens":{tokens},"total_tokens":{tokens}}}}}').encode()


# --- Anthropic ------------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def anthropic_message(model: str, n_words: int) -> bytes:
    return dumps({
        "id": "msg_bench0001", "type": "message", "role": "assistant", "model": model,
        "content": [{"type": "text", "text": "".join(words(n_words))}],
        "stop_reason": "end_turn", "stop_sequence": None,
        "usage": {"input_tokens": PROMPT_TOKENS, "output_tokens": n_words,
                  "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "service_tier": "standard"},
    })


def _anthropic_event(name: str, data: object) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + dumps(data) + b"\n\n"


@functools.lru_cache(maxsize=256)
def anthropic_events(model: str, n_chunks: int) -> tuple[bytes, ...]:
    start = {"type": "message_start", "message": {
        "id": "msg_bench0001", "type": "message", "role": "assistant", "model": model, "content": [],
        "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": PROMPT_TOKENS, "cache_creation_input_tokens": 0,
                  "cache_read_input_tokens": 0, "output_tokens": 1, "service_tier": "standard"}}}
    events = [
        _anthropic_event("message_start", start),
        _anthropic_event("content_block_start",
                         {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        _anthropic_event("ping", {"type": "ping"}),
    ]
    for word in words(n_chunks):
        events.append(_anthropic_event("content_block_delta", {
            "type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": word}}))
    events.append(_anthropic_event("content_block_stop", {"type": "content_block_stop", "index": 0}))
    events.append(_anthropic_event("message_delta", {
        "type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {"output_tokens": n_chunks}}))
    events.append(_anthropic_event("message_stop", {"type": "message_stop"}))
    return tuple(events)


# --- Gemini -------------------------------------------------------------------------------


def _gemini_usage(n_words: int) -> dict[str, int]:
    return {"promptTokenCount": PROMPT_TOKENS, "candidatesTokenCount": n_words,
            "totalTokenCount": PROMPT_TOKENS + n_words}


@functools.lru_cache(maxsize=256)
def gemini_response(model: str, n_words: int) -> bytes:
    return dumps({
        "candidates": [{"content": {"parts": [{"text": "".join(words(n_words))}], "role": "model"},
                        "finishReason": "STOP", "index": 0}],
        "usageMetadata": _gemini_usage(n_words), "modelVersion": model, "responseId": "bench0001",
    })


@functools.lru_cache(maxsize=256)
def gemini_events(model: str, n_chunks: int) -> tuple[bytes, ...]:
    events = []
    for i, word in enumerate(words(n_chunks)):
        candidate: dict[str, object] = {"content": {"parts": [{"text": word}], "role": "model"}, "index": 0}
        if i == n_chunks - 1:
            candidate["finishReason"] = "STOP"
        chunk = {"candidates": [candidate], "usageMetadata": _gemini_usage(i + 1),
                 "modelVersion": model, "responseId": "bench0001"}
        events.append(b"data: " + dumps(chunk) + b"\r\n\r\n")
    return tuple(events)


@functools.lru_cache(maxsize=256)
def gemini_array_events(model: str, n_chunks: int) -> tuple[bytes, ...]:
    """The REST stream without alt=sse: one JSON array sent progressively,
    elements separated by "\n,\r\n" and closed by "\n]" as Google sends it."""
    bodies = [e[len(b"data: "):-4] for e in gemini_events(model, n_chunks)]
    events = [b"[" + bodies[0] + (b"\n,\r\n" if len(bodies) > 1 else b"\n]")]
    events += [b + b"\n,\r\n" for b in bodies[1:-1]]
    if len(bodies) > 1:
        events.append(bodies[-1] + b"\n]")
    return tuple(events)


@functools.lru_cache(maxsize=64)
def gemini_batch_embeddings(n_inputs: int, dim: int) -> bytes:
    one = '{"values":' + _vector_json(dim) + "}"
    return ('{"embeddings":[' + ",".join([one] * n_inputs) + "]}").encode()
