"""LlamaIndex (OpenAILike chat/stream/complete, OpenAILikeEmbedding, a VectorStoreIndex end to
end with Cohere's and Jina's rerankers pointed at the gateway) and LiteLLM's SDK
(`litellm_proxy/` models) against the gateway, offline."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import litellm
import openai
import pytest
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.llms import ChatMessage
from llama_index.embeddings.openai_like import OpenAILikeEmbedding
from llama_index.llms.openai_like import OpenAILike
from llama_index.postprocessor.cohere_rerank import CohereRerank
from llama_index.postprocessor.jinaai_rerank import JinaRerank

from tests.clients.conftest import CLIENT_KEY
from tests.harness import Gateway

FACTS = ["Paris is the capital of France.", "Berlin lies on the Spree.", "The capital of Italy is Rome.",
         "France exports wine and cheese."]


HTTP = httpx.Client(timeout=30)  # shared by the LlamaIndex clients, closed with the module


@pytest.fixture(scope="module", autouse=True)
def close_http() -> Iterator[None]:
    yield
    HTTP.close()


def llm(gw: Gateway, model: str = "gpt-4o", chat: bool = True) -> OpenAILike:
    return OpenAILike(model=model, api_base=gw.url("/v2"), api_key=CLIENT_KEY, is_chat_model=chat,
                      is_function_calling_model=chat, context_window=128000, max_retries=0, http_client=HTTP)


def embedder(gw: Gateway) -> OpenAILikeEmbedding:
    return OpenAILikeEmbedding(model_name="text-embedding-bge-m3", api_base=gw.url("/v2"), api_key=CLIENT_KEY,
                               max_retries=0, http_client=HTTP)


@pytest.mark.parametrize("model", ["gpt-4o", "claude-3-5-sonnet", "gemini-1.5-pro"])
def test_openai_like_chat_stream_and_complete(gw: Gateway, model: str) -> None:
    model_llm = llm(gw, model)
    assert model_llm.chat([ChatMessage(role="user", content="Hello")]).message.content
    streamed = list(model_llm.stream_chat([ChatMessage(role="user", content="Hello there")]))
    assert len(streamed) > 1 and streamed[-1].message.content
    assert model_llm.complete("Say hello").text


def test_openai_like_raw_completions(gw: Gateway) -> None:
    assert llm(gw, "Llama-3.1-70B-Instruct", chat=False).complete("The capital of France is").text


def test_openai_like_embedding(gw: Gateway) -> None:
    vectors = embedder(gw).get_text_embedding_batch(["a", "b", "c"])
    assert len(vectors) == 3 and all(len(v) == 1024 for v in vectors)


@pytest.mark.parametrize("reranker", ["cohere", "jina"])
def test_vector_store_index_with_a_reranker(gw: Gateway, reranker: str) -> None:
    index = VectorStoreIndex.from_documents([Document(text=t) for t in FACTS], embed_model=embedder(gw))
    postprocessor = (CohereRerank(model="rerank-v3.5", api_key=CLIENT_KEY, base_url=gw.url(""), top_n=2)
                     if reranker == "cohere" else
                     JinaRerank(model="jina-reranker-v2", api_key=CLIENT_KEY, base_url=gw.url("/v2"), top_n=2))
    engine = index.as_query_engine(llm=llm(gw), similarity_top_k=4, node_postprocessors=[postprocessor])
    response = engine.query("What is the capital of France?")
    assert str(response).strip()
    assert len(response.source_nodes) == 2
    assert response.source_nodes[0].node.get_content() == FACTS[0]  # type: ignore[attr-defined]


# LiteLLM's own modules warn at import under current pydantic (not the gateway's business).
@pytest.mark.slow  # LiteLLM's first import takes seconds
@pytest.mark.filterwarnings("ignore:.*the `ReadOnly` qualifier:UserWarning")
def test_litellm_completion_stream_tools_and_embedding(gw: Gateway) -> None:
    # LiteLLM takes the OpenAI client to call with; one on the shared HTTP client leaves no socket open.
    client = openai.OpenAI(base_url=gw.url("/v2"), api_key=CLIENT_KEY, http_client=HTTP, max_retries=0)
    common = {"api_base": gw.url("/v2"), "api_key": CLIENT_KEY, "client": client}
    answer = litellm.completion(model="litellm_proxy/gpt-4o", messages=[{"role": "user", "content": "Hi"}], **common)
    assert answer.choices[0].message.content and answer.usage.total_tokens > 0
    chunks = list(litellm.completion(model="litellm_proxy/Llama-3.1-70B-Instruct", stream=True,
                                     messages=[{"role": "user", "content": "Hi"}], **common))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).strip()
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
    called = litellm.completion(model="litellm_proxy/claude-3-5-sonnet", tools=tools,
                                messages=[{"role": "user", "content": "Weather in Hamburg?"}], **common)
    assert called.choices[0].message.tool_calls[0].function.name == "get_weather"
    embedded = litellm.embedding(model="litellm_proxy/text-embedding-ada-002", input=["a", "b"], **common)
    assert len(embedded.data) == 2 and len(embedded.data[0]["embedding"]) == 1536
