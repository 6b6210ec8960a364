"""Property-based fuzzing of a running gateway from its own /openapi.json (schemathesis).

Every documented operation gets `EXAMPLES_PER_MODE` generated valid requests and as
many invalid ones (schemathesis' positive and negative modes), derandomized so CI sees the same ones
every run. Each answer must: not be a 5xx, be documented (status, content type,
headers, body schema), carry an OpenAI-shaped error when it is an error, and refuse
what the document calls invalid. Requests carry the right key (client or admin),
and most body/path `model`s are swapped for a model that really serves that route,
so that generated requests get past routing into validation, translation and the
simulators. Image URLs resolve through a resolver that answers nothing: the fuzzer
never makes the gateway look up or fetch a real host.

Left out, on purpose: schemathesis' `positive_data_acceptance` (a schema-valid
request may be refused for reasons JSON Schema cannot state: `to` before `from`, a
model id that does not exist or is not the caller's, a name that is not a public host,
a parameter a provider refuses, an aiohttp-refused non-ASCII form field name).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from aiohttp.abc import AbstractResolver, ResolveResult
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from router.gateway import GATEWAY
from router.upstream.fetch import ImageFetcher, PublicOnlyResolver
from tests.harness import ADMIN_KEY, KEY_A, Gateway, table_dict

EXAMPLES_PER_MODE = 25  # per operation: 25 valid and 25 invalid requests
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance, negative_data_rejection]
CHAT_MODELS = ["gpt-4o", "gpt-4o-mini", "Llama-3.1-70B-Instruct", "claude-3-5-sonnet", "gemini-1.5-pro"]
MODELS_BY_ROUTE = {
    "chat/completions": CHAT_MODELS,
    "completions": ["Llama-3.1-70B-Instruct"],
    "embeddings": ["jina-embeddings-v2-base-de", "text-embedding-004"],
    "audio/transcriptions": ["whisper-large-v3"],
    "rerank": ["bge-reranker-fuzz", "jina-reranker-fuzz"],
    "models/{model}": CHAT_MODELS,
}
VISION_MODELS = {"chat/completions": ["llava-v1.6-vicuna-13b"], "models/{model}": ["llava-v1.6-vicuna-13b"]}


class NoAnswerResolver(AbstractResolver):
    """Resolves nothing: generated image hosts are refused without a DNS query."""

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[ResolveResult]:
        raise OSError(f"{host}: not resolved in tests")

    async def close(self) -> None:
        return None


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, schemathesis.BaseSchema]]:
    table = table_dict()
    for kind, model in (("tei", "bge-reranker-fuzz"), ("jina", "jina-reranker-fuzz")):
        table["providers"][f"fuzz-{kind}"] = {"kind": kind, "base_url": "http://placeholder", "api_key": "k"}
        table["models"][model] = {"type": "rerank", "targets": [{"provider": f"fuzz-{kind}", "model": model}]}
    path = Path(tmp_path_factory.mktemp("fuzz")) / "routes.yaml"
    path.write_text(json.dumps(table))  # YAML is a superset of JSON: /admin/reload reads it back
    with Gateway(table, file=str(path)) as gw:
        gateway = gw.app[GATEWAY]  # type: ignore[index]
        limits = gateway.runtime.table.server.request_limits
        gateway.fetcher = ImageFetcher(limits.max_image_bytes, timeout=2, resolver=PublicOnlyResolver(
            NoAnswerResolver()))
        schema = schemathesis.openapi.from_url(gw.url("/openapi.json"))
        # Unknown query parameters are ignored and unknown body fields passed through, as the document says:
        # an extra parameter is not an invalid request.
        schema.config.generation.update(allow_extra_parameters=False)
        yield gw, schema


def fuzz_cases() -> list[tuple[str, GenerationMode]]:
    """Every documented operation in both modes; negative only where there is input to make invalid."""
    document = json.loads((Path(__file__).parents[2] / "router" / "http" / "openapi.json").read_text("utf-8"))
    items = document["components"]["pathItems"]
    cases: list[tuple[str, GenerationMode]] = []
    for path, item in document["paths"].items():
        item = items[item["$ref"].rsplit("/", 1)[1]] if "$ref" in item else item
        for method, op in item.items():
            if method in ("get", "post"):
                cases.append((f"{method.upper()} {path}", GenerationMode.POSITIVE))
                if op.get("parameters") or op.get("requestBody"):
                    cases.append((f"{method.upper()} {path}", GenerationMode.NEGATIVE))
    return cases


def _routable_models(path: str) -> list[str]:
    endpoint, _, route = path.lstrip("/").partition("/")
    if endpoint == "vision":
        return VISION_MODELS.get(route, [])
    return MODELS_BY_ROUTE.get(route, []) if endpoint in ("v1", "v2") else []


def _point_at(case: Any, model: str) -> None:
    """Swap a generated model id for a routable one, unless the model id itself is the invalid part."""
    if "model" in (case.path_parameters or {}):
        case.path_parameters["model"] = model
    elif isinstance(case.body, dict) and isinstance(case.body.get("model"), str) and case.body["model"]:
        case.body["model"] = model


def assert_openai_error(response: Any) -> None:
    if response.status_code < 400:
        return
    error = response.json()["error"]
    assert isinstance(error["message"], str) and error["message"], response.text
    assert isinstance(error["type"], str), response.text
    assert set(error) >= {"message", "type", "param", "code"}, response.text


@pytest.mark.parametrize(("operation_id", "mode"), fuzz_cases(), ids=lambda v: v if isinstance(v, str) else v.value)
def test_fuzzed_operation(fuzzed: tuple[Gateway, schemathesis.BaseSchema], operation_id: str,
                          mode: GenerationMode) -> None:
    gw, schema = fuzzed
    method, path = operation_id.split(" ", 1)
    operation = schema[path][method]
    key = ADMIN_KEY if path.startswith("/admin") else KEY_A
    headers = {"Authorization": f"Bearer {key}"}
    models = _routable_models(path)
    statuses: list[int] = []

    @settings(max_examples=EXAMPLES_PER_MODE, deadline=None, derandomize=True, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(mode), model=st.sampled_from([*models, None]))
    def run(case: Any, model: str | None) -> None:
        # A form field mutated into an empty array is sent as no field at all (schemathesis'
        # multipart encoding): the request on the wire is then valid, not negative.
        assume(not (mode is GenerationMode.NEGATIVE and "multipart/form-data" in str(case.media_type)
                    and isinstance(case.body, dict) and [] in case.body.values()))
        if model is not None:
            _point_at(case, model)
        response = case.call(base_url=gw.url(""), headers=headers, timeout=10)
        statuses.append(response.status_code)
        case.validate_response(response, checks=CHECKS, headers=headers)
        assert_openai_error(response)

    run()
    if models and mode is GenerationMode.POSITIVE:  # the fuzzing reached the providers, not only the edge checks
        assert sum(200 <= status < 300 for status in statuses) >= len(statuses) // 4, sorted(statuses)
