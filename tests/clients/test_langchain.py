"""langchain-openai against the gateway: ChatOpenAI plain, streamed, a bind_tools loop,
with_structured_output in its three methods, OpenAIEmbeddings both ways; langchain-cohere's
CohereRerank pointed at the gateway."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cohere
import httpx
import pytest
from langchain_cohere import CohereRerank
from langchain_core.documents import Document
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI, OpenAIEmbeddings
from pydantic import BaseModel

from tests.clients.conftest import CLIENT_KEY
from tests.harness import Gateway

CHAT_MODELS = ["gpt-4o", "Llama-3.1-70B-Instruct", "gemini-1.5-flash", "claude-3-5-sonnet"]


class Capital(BaseModel):
    country: str
    capital: str


@pytest.fixture
def chat(gw: Gateway, http: httpx.Client) -> Callable[[str], ChatOpenAI]:
    return lambda model: ChatOpenAI(model=model, base_url=gw.url("/v2"), api_key=CLIENT_KEY,  # type: ignore[arg-type]
                                    max_retries=0, http_client=http)


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"Sunny in {city}"


@pytest.mark.parametrize("model", CHAT_MODELS)
def test_invoke_and_stream(chat: Callable[[str], ChatOpenAI], model: str) -> None:
    llm = chat(model)
    answer = llm.invoke("Hello")
    assert isinstance(answer.content, str) and answer.content
    assert answer.usage_metadata and answer.usage_metadata["total_tokens"] > 0
    chunks = list(llm.stream("Hello there"))
    assert len(chunks) > 1 and "".join(str(c.content) for c in chunks).strip()


@pytest.mark.parametrize("model", CHAT_MODELS)
def test_bind_tools_loop(chat: Callable[[str], ChatOpenAI], model: str) -> None:
    llm = chat(model).bind_tools([get_weather])
    messages: list[Any] = [HumanMessage("What is the weather in Hamburg?")]
    first = llm.invoke(messages)
    assert first.tool_calls and first.tool_calls[0]["name"] == "get_weather"
    call = first.tool_calls[0]
    messages += [first, ToolMessage(get_weather.invoke(call["args"]), tool_call_id=call["id"])]
    final = llm.invoke(messages)
    assert not final.tool_calls and final.content


@pytest.mark.parametrize("model", ["gpt-4o", "Llama-3.1-70B-Instruct", "gemini-1.5-flash"])
@pytest.mark.parametrize("method", ["json_schema", "function_calling"])
def test_structured_output(chat: Callable[[str], ChatOpenAI], model: str, method: str) -> None:
    answer = chat(model).with_structured_output(Capital, method=method).invoke(  # type: ignore[arg-type]
        "What is the capital of France?")
    assert isinstance(answer, Capital) and answer.capital


@pytest.mark.parametrize("model", ["gpt-4o", "Llama-3.1-70B-Instruct", "gemini-1.5-flash"])
def test_structured_output_json_mode(chat: Callable[[str], ChatOpenAI], model: str) -> None:
    """JSON mode promises a JSON object, not the schema's: the dict schema is parsed as JSON."""
    schema = Capital.model_json_schema()
    answer = chat(model).with_structured_output(schema, method="json_mode").invoke(
        "Answer in JSON: what is the capital of France?")
    assert isinstance(answer, dict)


@pytest.mark.parametrize("check_ctx", [True, False])
@pytest.mark.parametrize(("model", "dimension"),
                         [("text-embedding-ada-002", 1536), ("jina-embeddings-v2-base-de", 768)])
def test_embeddings(gw: Gateway, http: httpx.Client, model: str, dimension: int, check_ctx: bool) -> None:
    """The default sends token ids (tiktoken), check_embedding_ctx_length=False the texts."""
    embeddings = OpenAIEmbeddings(model=model, base_url=gw.url("/v2"), api_key=CLIENT_KEY,  # type: ignore[arg-type]
                                  check_embedding_ctx_length=check_ctx, max_retries=0, http_client=http)
    vectors = embeddings.embed_documents(["Paris is in France.", "Berlin is in Germany."])
    assert len(vectors) == 2 and all(len(v) == dimension for v in vectors)
    assert len(embeddings.embed_query("capital")) == dimension


@pytest.mark.parametrize("model", ["rerank-v3.5", "bge-reranker-v2-m3", "jina-reranker-v2", "bge-reranker-base"])
def test_cohere_rerank(gw: Gateway, http: httpx.Client, model: str) -> None:
    """langchain-cohere's CohereRerank (cohere.ClientV2) with the gateway's root as base_url: it posts to /v2/rerank."""
    client = cohere.ClientV2(api_key=CLIENT_KEY, base_url=gw.url(""), httpx_client=http)
    reranker = CohereRerank(client=client, model=model, top_n=2)
    documents = [Document("Berlin lies on the Spree."), Document("Paris is the capital of France."),
                 Document("France's capital is Paris.")]
    kept = reranker.compress_documents(documents, "What is the capital of France?")
    assert [d.page_content for d in kept] and "Berlin" not in " ".join(d.page_content for d in kept)
    assert all(0 < d.metadata["relevance_score"] < 1 for d in kept)
