"""What the rerank simulators share (TEI, Cohere, Jina, and vLLM's `/rerank` in the OpenAI
simulator): a deterministic relevance score, request parsing and scripted faults, each
simulator answering in its own protocol's shapes."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

from providers.simulators.common import Fault, record

_WORDS = re.compile(r"\w+", re.UNICODE)

# A protocol's error answer: (status, message) -> response.
ErrorAnswer = Callable[[int, str], web.Response]


def relevance(query: str, document: str) -> float:
    """In (0, 1): the share of the query's words the document contains, with a small
    tie-break from the document's hash, so that the same inputs always rank alike."""
    query_words = set(_WORDS.findall(query.lower()))
    document_words = set(_WORDS.findall(document.lower()))
    overlap = len(query_words & document_words) / len(query_words) if query_words else 0.0
    tie = int.from_bytes(hashlib.sha256(document.encode()).digest()[:4], "big") / 2**32
    return round(0.05 + 0.9 * overlap + 0.04 * tie, 6)


def ranked(query: str, documents: list[str], top_n: Any = None) -> list[tuple[int, float]]:
    """(index, score), most relevant first, cut to `top_n`."""
    scores = sorted(((i, relevance(query, d)) for i, d in enumerate(documents)), key=lambda s: s[1], reverse=True)
    return scores[:top_n] if isinstance(top_n, int) and top_n > 0 else scores


def texts_of(documents: Any) -> list[str] | None:
    """Strings, or `{"text": ...}` objects (Jina, vLLM), as strings; None when neither."""
    if not isinstance(documents, list) or not documents:
        return None
    texts = [d if isinstance(d, str) else d.get("text") if isinstance(d, dict) else None for d in documents]
    return [t for t in texts if isinstance(t, str)] if all(isinstance(t, str) for t in texts) else None


def bearer_missing(request: web.Request) -> bool:
    return not request.headers.get("Authorization", "").startswith("Bearer ")


def _fault_answer(fault: Fault | None, error: ErrorAnswer) -> web.Response | None:
    if fault is None:
        return None
    if fault.status:
        answer = error(fault.status, f"simulated upstream failure ({fault.status})")
        if fault.retry_after is not None:
            answer.headers["retry-after"] = str(fault.retry_after)
        return answer
    if fault.garbage:
        return web.Response(status=200, text="<html>502 Bad Gateway</html>", content_type="application/json")
    return None


async def begin(request: web.Request, error: ErrorAnswer, *, bearer: bool) -> Any:
    """Record the request, play a scripted fault, check the key and parse the JSON body:
    the body (a dict), or the protocol's error response."""
    _, fault, raw = await record(request)
    failed = _fault_answer(fault, error)
    if failed is not None:
        return failed
    if bearer and bearer_missing(request):
        return error(401, "invalid api token")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return error(400, "invalid request: the body is not JSON")
    return body if isinstance(body, dict) else error(400, "invalid request: the body must be an object")
