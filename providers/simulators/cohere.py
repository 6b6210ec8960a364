"""A simulator of Cohere's rerank v2: `POST /v2/rerank` with a bearer key and
`{model, query, documents: [str], top_n, max_tokens_per_doc}` answers
`{id, results: [{index, relevance_score}], meta: {api_version, billed_units: {search_units}}}`
(the recorded sample's shape); errors are `{"id", "message"}`."""

from __future__ import annotations

import uuid

from aiohttp import web

from providers.simulators.common import new_state_app
from providers.simulators.ranking import begin, ranked

DOCUMENTS_PER_SEARCH_UNIT = 100  # Cohere bills a search unit per query with up to 100 documents


def create_app() -> web.Application:
    app = new_state_app()
    app.router.add_post("/v2/rerank", rerank)
    return app


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"id": str(uuid.uuid4()), "message": message}, status=status)


async def rerank(request: web.Request) -> web.Response:
    body = await begin(request, _error, bearer=True)
    if isinstance(body, web.Response):
        return body
    query, documents, top_n = body.get("query"), body.get("documents"), body.get("top_n")
    if not isinstance(body.get("model"), str) or not body["model"]:
        return _error(400, "invalid request: model must be specified")
    if not isinstance(query, str) or not query:
        return _error(400, "invalid request: query must not be empty")
    if not isinstance(documents, list) or not documents or not all(isinstance(d, str) for d in documents):
        return _error(400, "invalid request: documents must be a non-empty list of strings")
    if top_n is not None and (not isinstance(top_n, int) or top_n < 1):
        return _error(400, "invalid request: top_n must be a positive integer")
    units = -(-len(documents) // DOCUMENTS_PER_SEARCH_UNIT)
    return web.json_response({
        "id": str(uuid.uuid4()),
        "results": [{"index": i, "relevance_score": s} for i, s in ranked(query, documents, top_n)],
        "meta": {"api_version": {"version": "2"}, "billed_units": {"search_units": units}},
    })
