"""Rerank upstreams: Hugging Face TEI (`POST /rerank`), Cohere (`POST /v2/rerank`) and
Jina (`POST /v1/rerank`); vLLM's Jina/Cohere-compatible `/rerank` is the OpenAI family's
(providers/openai.py); both build the canonical answer with providers/rerank_answer.py.

The canonical rerank request is the Cohere/Jina shape the gateway serves at `{ep}/rerank`:
`model`, `query`, `documents` (strings or `{"text": ...}`), `top_n`, `return_documents`
(default true, as Jina's), `max_chunks_per_doc`. The answer is
`{id, model, results: [{index, relevance_score, document?: {text}}], meta, usage}`,
most relevant first, whatever the upstream answered.

Wire facts (checked against each API's reference):
- TEI: `{query, texts, return_text, truncate, raw_scores}` -> a bare list
  `[{index, score, text?}]`; no usage (the gateway estimates it, marked).
- Cohere v2: `{model, query, documents: [str], top_n, max_tokens_per_doc}`, bearer key ->
  `{id, results: [{index, relevance_score}], meta: {billed_units: {search_units}}}`; v2 returns
  no document text (the gateway adds it from the request) and has no `max_chunks_per_doc`.
- Jina: `{model, query, documents, top_n, return_documents}`, bearer key ->
  `{model, usage: {total_tokens}, results: [{index, relevance_score, document: {text}}]}`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from providers.base import (
    JSON,
    SHAPE_ERRORS,
    ApiRequest,
    Operation,
    UpstreamCall,
    UpstreamError,
    Usage,
    dumps,
    invalid_param,
    malformed_answer,
)
from providers.openai import error_from_upstream
from providers.rerank_answer import Ranked, answer_from_results, document_texts, results_of, token_usage, whole_number
from providers.settings import ProviderSettings


def _load(body: bytes, provider: str) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise malformed_answer(provider) from None


# --- the three protocols --------------------------------------------------------------------------------


def _tei_body(request: ApiRequest, upstream_model: str) -> JSON:
    # TEI serves one model per server: no `model`; it has no `top_n` (cut here) and truncates
    # what does not fit rather than failing the whole rerank.
    return {"query": request.body["query"], "texts": document_texts(request.body),
            "return_text": False, "truncate": True, "raw_scores": False}


def _tei_answer(request: ApiRequest, body: bytes) -> tuple[bytes, Usage]:
    data = _load(body, "TEI")
    try:
        ranked = [Ranked(int(item["index"]), float(item["score"])) for item in data]
    except SHAPE_ERRORS:
        raise malformed_answer("TEI") from None
    return answer_from_results(request, ranked, Usage(estimated=True))


def _cohere_body(request: ApiRequest, upstream_model: str) -> JSON:
    body: JSON = {"model": upstream_model, "query": request.body["query"],
                  "documents": document_texts(request.body)}
    if "top_n" in request.body:
        body["top_n"] = request.body["top_n"]
    return body


def _cohere_answer(request: ApiRequest, body: bytes) -> tuple[bytes, Usage]:
    data = _load(body, "Cohere")
    if not isinstance(data, dict):
        raise malformed_answer("Cohere")
    meta = data.get("meta")
    billed = meta.get("billed_units") if isinstance(meta, dict) else None
    units = whole_number(billed.get("search_units")) if isinstance(billed, dict) else None
    # Cohere bills searches, not tokens: the tokens are estimated (marked), the units are its own.
    usage = Usage(estimated=True, search_units=units or 0)
    answer_id = data.get("id") if isinstance(data.get("id"), str) else None
    return answer_from_results(request, results_of(data, "Cohere"), usage, answer_id)


def _jina_body(request: ApiRequest, upstream_model: str) -> JSON:
    body: JSON = {"model": upstream_model, "query": request.body["query"],
                  "documents": document_texts(request.body), "return_documents": False}
    if "top_n" in request.body:
        body["top_n"] = request.body["top_n"]
    return body


def _jina_answer(request: ApiRequest, body: bytes) -> tuple[bytes, Usage]:
    data = _load(body, "Jina")
    if not isinstance(data, dict):
        raise malformed_answer("Jina")
    return answer_from_results(request, results_of(data, "Jina"), token_usage(data))


@dataclass(frozen=True, slots=True, kw_only=True)
class RerankFlavour:
    path: str  # appended to the provider's base_url
    build: Callable[[ApiRequest, str], JSON]
    read: Callable[[ApiRequest, bytes], tuple[bytes, Usage]]


FLAVOURS: Mapping[str, RerankFlavour] = {
    "tei": RerankFlavour(path="/rerank", build=_tei_body, read=_tei_answer),
    "cohere": RerankFlavour(path="/v2/rerank", build=_cohere_body, read=_cohere_answer),
    "jina": RerankFlavour(path="/v1/rerank", build=_jina_body, read=_jina_answer),
}


class RerankAdapter:
    inlines_image_urls = False

    def __init__(self, config: ProviderSettings, flavour: RerankFlavour) -> None:
        self.kind = config.kind
        self.flavour = flavour
        self._url = config.base_url.rstrip("/") + flavour.path
        headers = {"Content-Type": "application/json"}
        if config.api_key:
            headers["Authorization"] = "Bearer " + config.api_key.get()
        self._headers = headers

    def to_upstream(self, request: ApiRequest, upstream_model: str) -> UpstreamCall:
        if request.operation is not Operation.RERANK:
            raise invalid_param("model", f"A {self.kind} upstream only reranks.")
        return UpstreamCall(self._url, self._headers, dumps(self.flavour.build(request, upstream_model)))

    def from_upstream(self, request: ApiRequest, body: bytes) -> tuple[bytes, Usage]:
        return self.flavour.read(request, body)

    def stream_translator(self, request: ApiRequest) -> Any:
        raise invalid_param("stream", "Reranking does not stream.")

    def parse_error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        """TEI's `{error, error_type}` and Cohere's flat `{message}` are the OpenAI family's
        shapes; Jina's (FastAPI) `{"detail": ...}` is read here."""
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            data = None
        if isinstance(data, dict) and "detail" in data and "message" not in data:
            detail = data["detail"]
            message = detail if isinstance(detail, str) else f"upstream error (HTTP {status})"
            body = dumps({"message": message})
        return error_from_upstream(status, headers, body)

    async def refresh_credentials(self) -> None:
        return None  # static keys only


def _factory(kind: str) -> Callable[[ProviderSettings], RerankAdapter]:
    return lambda config: RerankAdapter(config, FLAVOURS[kind])


ADAPTERS = {kind: _factory(kind) for kind in FLAVOURS}
