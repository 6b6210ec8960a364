"""A simulator of Jina's reranker API: `POST /v1/rerank` with a bearer key and
`{model, query, documents, top_n, return_documents}` answers
`{model, usage: {total_tokens, prompt_tokens}, results: [{index, relevance_score, document?}]}`;
errors are FastAPI's `{"detail": ...}`."""

from __future__ import annotations

from aiohttp import web

from providers.simulators.common import count_tokens, new_state_app
from providers.simulators.ranking import begin, ranked, texts_of


def create_app() -> web.Application:
    app = new_state_app()
    app.router.add_post("/v1/rerank", rerank)
    return app


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"detail": message}, status=status)


def rerank_answer(body: dict[str, object]) -> dict[str, object] | str:
    """Jina's answer for a parsed request (vLLM's `/rerank` answers the same shape), or what is wrong."""
    query, texts, top_n = body.get("query"), texts_of(body.get("documents")), body.get("top_n")
    if not isinstance(query, str) or not query:
        return "query: field required"
    if texts is None:
        return "documents: expected a non-empty list of strings or {text} objects"
    if top_n is not None and (not isinstance(top_n, int) or top_n < 1):
        return "top_n: expected a positive integer"
    with_documents = body.get("return_documents", True) is not False
    results: list[dict[str, object]] = []
    for index, score in ranked(query, texts, top_n):
        result: dict[str, object] = {"index": index, "relevance_score": score}
        if with_documents:
            result["document"] = {"text": texts[index]}
        results.append(result)
    tokens = sum(count_tokens(query) + count_tokens(t) for t in texts)
    return {"model": body.get("model"), "usage": {"total_tokens": tokens, "prompt_tokens": tokens},
            "results": results}


async def rerank(request: web.Request) -> web.Response:
    body = await begin(request, _error, bearer=True)
    if isinstance(body, web.Response):
        return body
    answer = rerank_answer(body)
    return _error(422, answer) if isinstance(answer, str) else web.json_response(answer)
