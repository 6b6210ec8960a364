"""`POST {ep}/rerank` (Cohere/Jina shape) through the gateway to every rerank upstream:
TEI, vLLM (openai-compatible), Cohere and Jina, each a simulator on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from providers.simulators.common import Fault
from tests.harness import KEY_A, Gateway, table_dict

RERANKERS = {  # public model -> (provider kind, upstream model)
    "bge-tei": ("tei", "BAAI/bge-reranker-v2-m3"),
    "bge-vllm": ("openai-compatible", "BAAI/bge-reranker-base"),
    "cohere-rerank": ("cohere", "rerank-v3.5"),
    "jina-rerank": ("jina", "jina-reranker-v2-base-multilingual"),
}
DOCUMENTS = ["Paris is the capital of France.", "Reranking is fun.", "Berlin lies on the Spree.",
             {"text": "France has many cities; its capital is Paris."}]
QUERY = "What is the capital of France?"


def rerank_table() -> dict[str, Any]:
    data = table_dict()
    for model, (kind, upstream) in RERANKERS.items():
        data["providers"][f"r-{kind}"] = {"kind": kind, "base_url": "http://placeholder", "api_key": "k",
                                          "max_retries": 0, "cooldown": {"failures": 1000}}
        data["models"][model] = {"type": "rerank", "meta_data": {"max_sequence_length": 8192},
                                 "targets": [{"provider": f"r-{kind}", "model": upstream}]}
    data["keys"].append({"name": "limited", "key": "sk-limited-rerank", "models": ["bge-tei"],
                         "limits": {"rpm": 2}})
    return data


@pytest.fixture(scope="module")
def gw() -> Iterator[Gateway]:
    with Gateway(rerank_table()) as gateway:
        yield gateway


def rerank(gw: Gateway, body: dict[str, Any], key: str = KEY_A, endpoint: str = "/v2") -> httpx.Response:
    return httpx.post(gw.url(endpoint) + "/rerank", json=body, headers={"Authorization": f"Bearer {key}"},
                      timeout=10)


@pytest.mark.parametrize("model", RERANKERS)
def test_rerank_ranks_the_relevant_documents_first(gw: Gateway, model: str) -> None:
    answer = rerank(gw, {"model": model, "query": QUERY, "documents": DOCUMENTS, "top_n": 2})
    assert answer.status_code == 200, answer.text
    data = answer.json()
    assert data["model"] == model and data["id"]
    assert [r["index"] for r in data["results"]] in ([0, 3], [3, 0])
    scores = [r["relevance_score"] for r in data["results"]]
    assert scores == sorted(scores, reverse=True) and all(0 < s < 1 for s in scores)
    texts = [DOCUMENTS[0], DOCUMENTS[3]["text"]]  # type: ignore[index]
    assert {r["document"]["text"] for r in data["results"]} == set(texts)
    assert data["usage"]["total_tokens"] > 0


@pytest.mark.parametrize("model", RERANKERS)
def test_return_documents_false_leaves_them_out(gw: Gateway, model: str) -> None:
    data = rerank(gw, {"model": model, "query": QUERY, "documents": DOCUMENTS, "return_documents": False}).json()
    assert len(data["results"]) == len(DOCUMENTS) and all("document" not in r for r in data["results"])


def test_each_upstream_gets_its_own_protocol(gw: Gateway) -> None:
    for model, (kind, upstream) in RERANKERS.items():
        sim = gw.sim(kind)
        sim.received.clear()
        assert rerank(gw, {"model": model, "query": QUERY, "documents": DOCUMENTS, "top_n": 1}).status_code == 200
        sent = sim.received[-1]
        body = sent.json()
        if kind == "tei":
            assert sent.path == "/rerank" and body["texts"][3] == DOCUMENTS[3]["text"]  # type: ignore[index]
            assert "model" not in body and body["truncate"] is True
        else:
            assert body["model"] == upstream and body["query"] == QUERY and body["top_n"] == 1
            assert sent.headers["Authorization"] == "Bearer k"
            assert sent.path == {"cohere": "/v2/rerank", "jina": "/v1/rerank", "openai-compatible": "/v1/rerank"}[kind]
        if kind == "cohere":
            assert all(isinstance(d, str) for d in body["documents"])


def test_usage_is_metered_as_each_upstream_reports_it(gw: Gateway) -> None:
    by_model = {}
    for model in RERANKERS:
        by_model[model] = rerank(gw, {"model": model, "query": QUERY, "documents": DOCUMENTS}).json()
    assert by_model["cohere-rerank"]["meta"]["billed_units"] == {"search_units": 1}
    assert by_model["cohere-rerank"]["usage"]["estimated"] is True  # Cohere bills searches: tokens estimated
    assert by_model["bge-tei"]["usage"]["estimated"] is True  # TEI reports nothing
    assert "estimated" not in by_model["jina-rerank"]["usage"]  # Jina and vLLM count their tokens
    assert "estimated" not in by_model["bge-vllm"]["usage"]
    rows = httpx.get(gw.url() + "/usage", headers={"Authorization": f"Bearer {KEY_A}"}).json()["data"]
    cohere = [r for r in rows if r["model"] == "cohere-rerank"]
    assert cohere and cohere[0]["search_units"] >= 1 and cohere[0]["total_tokens"] > 0


@pytest.mark.parametrize(("body", "param"), [
    ({"query": QUERY}, "documents"),
    ({"documents": ["a"]}, "query"),
    ({"query": "", "documents": ["a"]}, "query"),
    ({"query": QUERY, "documents": []}, "documents"),
    ({"query": QUERY, "documents": [{"title": "no text"}]}, "documents[0]"),
    ({"query": QUERY, "documents": ["a"], "top_n": 0}, "top_n"),
    ({"query": QUERY, "documents": ["a"], "top_n": 1.5}, "top_n"),
    ({"query": QUERY, "documents": ["a"], "return_documents": "yes"}, "return_documents"),
    ({"query": QUERY, "documents": ["a"], "stream": True}, "stream"),
])
def test_invalid_requests_name_the_parameter(gw: Gateway, body: dict[str, Any], param: str) -> None:
    answer = rerank(gw, {"model": "bge-tei", **body})
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == param


def test_wrong_endpoint_both_ways(gw: Gateway) -> None:
    chat = rerank(gw, {"model": "gpt-4o-mini", "query": QUERY, "documents": ["a"]})
    assert chat.status_code == 400 and chat.json()["error"]["code"] == "wrong_endpoint"
    assert "/v2/chat/completions" in chat.json()["error"]["message"]
    answer = httpx.post(gw.url() + "/chat/completions", headers={"Authorization": f"Bearer {KEY_A}"},
                        json={"model": "bge-tei", "messages": [{"role": "user", "content": "hi"}]})
    assert answer.status_code == 400 and "/v2/rerank" in answer.json()["error"]["message"]


def test_models_lists_rerankers(gw: Gateway) -> None:
    ids = {m.id for m in gw.client().models.list()}
    assert set(RERANKERS) <= ids


@pytest.mark.parametrize("model", RERANKERS)
@pytest.mark.parametrize("status", [400, 429, 500])
def test_upstream_errors_in_openai_shape(gw: Gateway, model: str, status: int) -> None:
    sim = gw.sim(RERANKERS[model][0])
    sim.faults.clear()
    sim.faults.append(Fault(status=status))
    try:
        answer = rerank(gw, {"model": model, "query": QUERY, "documents": ["a"]})
    finally:
        sim.faults.clear()
    assert answer.status_code == status
    assert set(answer.json()["error"]) >= {"message", "type"}


@pytest.mark.parametrize("model", RERANKERS)
def test_an_upstream_answer_of_the_wrong_shape_is_a_502(gw: Gateway, model: str) -> None:
    sim = gw.sim(RERANKERS[model][0])
    sim.faults.append(Fault(garbage=True))
    answer = rerank(gw, {"model": model, "query": QUERY, "documents": ["a"]})
    assert answer.status_code == 502 and "error" in answer.json()


def test_rate_limits_apply(gw: Gateway) -> None:
    statuses = [rerank(gw, {"model": "bge-tei", "query": QUERY, "documents": ["a"]}, key="sk-limited-rerank")
                for _ in range(3)]
    assert [s.status_code for s in statuses] == [200, 200, 429]
    assert statuses[0].headers["x-ratelimit-limit-requests"] == "2"
