"""A simulator of Hugging Face Text Embeddings Inference's rerank: `POST /rerank` with
`{query, texts, return_text, truncate, raw_scores}` answers a bare list `[{index, score, text?}]`,
most relevant first; errors are `{"error": ..., "error_type": ...}`."""

from __future__ import annotations

from aiohttp import web

from providers.simulators.common import new_state_app
from providers.simulators.ranking import begin, ranked, texts_of


def create_app() -> web.Application:
    app = new_state_app()
    app.router.add_post("/rerank", rerank)
    return app


def _error(status: int, message: str) -> web.Response:
    kind = {413: "Validation", 422: "Validation", 424: "Backend", 429: "Overloaded"}.get(status, "Backend")
    return web.json_response({"error": message, "error_type": kind}, status=status)


async def rerank(request: web.Request) -> web.Response:
    body = await begin(request, _error, bearer=False)  # TEI's `--api-key` is optional
    if isinstance(body, web.Response):
        return body
    query, texts = body.get("query"), body.get("texts")
    if not isinstance(query, str) or not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        return _error(422, "Failed to deserialize the JSON body: expected `query` and `texts` strings")
    if not texts:
        return _error(422, "`texts` cannot be empty")
    answer = []
    for index, score in ranked(query, texts_of(texts) or []):
        item: dict[str, object] = {"index": index, "score": score}
        if body.get("return_text"):
            item["text"] = texts[index]
        answer.append(item)
    return web.json_response(answer)
