"""The canonical rerank answer, shared by every rerank translator (providers/rerank.py and
vLLM's `/rerank` in providers/openai.py): `{id, model, results: [{index, relevance_score,
document?: {text}}], meta, usage}`, most relevant first, whatever the upstream answered."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from typing import Any

from providers.base import JSON, SHAPE_ERRORS, ApiRequest, UpstreamError, Usage, dumps, malformed_answer

CHARS_PER_TOKEN = 4  # as router/tokens.py: estimates are marked wherever they are metered


def document_texts(body: JSON) -> list[str]:
    """The request's documents as strings (a `{"text": ...}` document gives its text);
    the edge validated the shape."""
    return [d if isinstance(d, str) else str(d.get("text", "")) for d in body.get("documents") or []]


def estimate_tokens(body: JSON) -> int:
    """A cross-encoder reads the query once per document: (query + document) per document."""
    query = body.get("query")
    query_chars = len(query) if isinstance(query, str) else 0
    chars = sum(query_chars + len(text) for text in document_texts(body))
    return (chars + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN


@dataclass(frozen=True, slots=True)
class Ranked:
    index: int
    score: float
    text: str | None = None  # the document, where the upstream gave it back


def answer_from_results(request: ApiRequest, ranked: list[Ranked], usage: Usage,
                        answer_id: str | None = None) -> tuple[bytes, Usage]:
    """The canonical answer: sorted by score, cut to `top_n`, documents added from the request
    when asked for and not given back, usage in both Cohere's (`meta`) and Jina's shape."""
    texts = document_texts(request.body)
    for r in ranked:
        if not 0 <= r.index < len(texts) or not math.isfinite(r.score):
            raise UpstreamError(502, "The rerank upstream answered with a document index or a score out of range.",
                                code="upstream_malformed", retryable=False)
    ranked = sorted(ranked, key=lambda r: r.score, reverse=True)
    top_n = request.body.get("top_n")
    if isinstance(top_n, int):
        ranked = ranked[:top_n]
    with_documents = request.body.get("return_documents", True) is not False
    results: list[JSON] = []
    for r in ranked:
        result: JSON = {"index": r.index, "relevance_score": r.score}
        if with_documents:
            result["document"] = {"text": r.text if r.text is not None else texts[r.index]}
        results.append(result)
    if usage.estimated:
        usage = Usage(estimate_tokens(request.body), 0, estimated=True, search_units=usage.search_units)
    billed: JSON = {"search_units": usage.search_units} if usage.search_units else {}
    if usage.prompt_tokens and not usage.estimated:  # billed: what the upstream counted, never an estimate
        billed["total_tokens"] = usage.prompt_tokens
    answer: JSON = {
        "id": answer_id or str(uuid.uuid4()), "model": request.public_model, "results": results,
        "meta": {"api_version": {"version": "2"}, "billed_units": billed},
        "usage": {"prompt_tokens": usage.prompt_tokens, "total_tokens": usage.prompt_tokens,
                  **({"estimated": True} if usage.estimated else {})},
    }
    return dumps(answer), usage


def whole_number(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**53 else None


def results_of(data: Any, provider: str) -> list[Ranked]:
    """Cohere/Jina/vLLM `results: [{index, relevance_score, document?}]`."""
    try:
        ranked = []
        for item in data["results"]:
            document = item.get("document")
            text = document.get("text") if isinstance(document, dict) else document
            ranked.append(Ranked(int(item["index"]), float(item["relevance_score"]),
                                 text if isinstance(text, str) else None))
        return ranked
    except SHAPE_ERRORS:
        raise malformed_answer(provider) from None


def token_usage(data: Any) -> Usage:
    """Jina's and vLLM's `usage.total_tokens` (a rerank has no completion)."""
    usage = data.get("usage") if isinstance(data, dict) else None
    tokens = whole_number(usage.get("total_tokens", usage.get("prompt_tokens"))) if isinstance(usage, dict) else None
    return Usage(tokens, 0) if tokens is not None else Usage(estimated=True)
