"""Every error a client can meet, seen from the client: OpenAI's JSON shape, the right
status, the `openai` package's matching exception, and the gateway serving on."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from providers.openai import OpenAIAdapter
from providers.simulators.common import Fault
from tests.harness import KEY_A, KEY_B, Gateway, table_dict


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def gw() -> Iterator[Gateway]:
    data = table_dict(server={"request_limits": {"max_body_bytes": 200_000}})
    for provider in data["providers"].values():
        provider["max_retries"] = 0
    data["providers"]["dead"] = {"kind": "openai-compatible", "base_url": f"http://127.0.0.1:{_free_port()}/v1",
                                 "max_retries": 0}
    data["providers"]["slow"] = {"kind": "openai", "base_url": "http://placeholder/v1", "api_key": "k",
                                 "max_retries": 0, "timeouts": {"first_byte": 0.3}}
    data["models"]["dead-model"] = {"targets": [{"provider": "dead", "model": "m"}]}
    data["models"]["slow-model"] = {"targets": [{"provider": "slow", "model": "m"}]}
    with Gateway(data) as gateway:
        # The dead provider must stay dead: the demo transform points it at a simulator.
        table = gateway.table
        assert table is not None
        yield gateway


def raw(gw: Gateway, method: str, path: str, body: bytes | None = None, key: str | None = KEY_A,
        headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    request = urllib.request.Request(f"http://127.0.0.1:{gw.port}{path}", data=body, method=method,
                                     headers={**({"Authorization": f"Bearer {key}"} if key else {}),
                                              "Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        with error:
            return error.code, dict(error.headers), json.loads(error.read())


def assert_openai_error(body: Any, param: str | None = None) -> dict[str, Any]:
    assert set(body) >= {"error"}
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    assert "Traceback" not in error["message"]
    if param is not None:
        assert error["param"] == param
    return error


def still_serving(gw: Gateway) -> None:
    reply = gw.client().chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "ok?"}])
    assert reply.choices[0].message.content


def test_missing_and_wrong_key(gw: Gateway) -> None:
    with pytest.raises(openai.AuthenticationError) as caught:
        gw.client(key="sk-wrong").models.list()
    assert caught.value.status_code == 401
    assert "sk-wrong" not in str(caught.value)
    status, _, body = raw(gw, "GET", "/v2/models", key=None)
    assert status == 401 and assert_openai_error(body)["code"] == "missing_api_key"
    still_serving(gw)


def test_model_not_dedicated_answers_like_a_missing_model(gw: Gateway) -> None:
    with pytest.raises(openai.NotFoundError) as hidden:
        gw.client(key=KEY_B).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.NotFoundError) as missing:
        gw.client(key=KEY_B).chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "x"}])
    assert hidden.value.code == missing.value.code == "model_not_found"
    assert str(hidden.value).replace("gpt-4o", "X") == str(missing.value).replace("gpt-9", "X")
    with pytest.raises(openai.NotFoundError):
        gw.client(key=KEY_B).models.retrieve("gpt-4o")
    with pytest.raises(openai.NotFoundError):  # a vision model is not served under /v2
        gw.client().chat.completions.create(model="llava-v1.6-vicuna-13b", messages=[{"role": "user", "content": "x"}])
    still_serving(gw)


@pytest.mark.parametrize(("body", "param"), [
    (b'{"model": "gpt-4o-mini", "messages": [', "body"),
    (b'["a list"]', "body"),
    (b'', "body"),
    (b'{"messages": [{"role": "user", "content": "x"}]}', "model"),
    (b'{"model": 7, "messages": [{"role": "user", "content": "x"}]}', "model"),
    (b'{"model": "gpt-4o-mini"}', "messages"),
    (b'{"model": "gpt-4o-mini", "messages": []}', "messages"),
    (b'{"model": "gpt-4o-mini", "messages": [{"role": "wizard", "content": "x"}]}', "messages[0].role"),
    (b'{"model": "gpt-4o-mini", "messages": [{"role": "user"}]}', "messages[0].content"),
    (b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": 5}]}', "messages[0].content"),
    (b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}',
     "temperature"),
    (b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "temperature": 3}', "temperature"),
    (b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0}', "max_tokens"),
    (b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}', "stream"),
    (b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "stream_options": '
     b'{"include_usage": true}}', "stream_options"),
    (b'{"model": "gpt-4o-mini", "messages": [{"role": "tool", "content": "x"}]}', "messages[0].tool_call_id"),
    (b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": '
     b'{"url": "http://example.com/a.png"}}]}]}', "messages[0].content[0].image_url.url"),
])
def test_malformed_chat_requests(gw: Gateway, body: bytes, param: str) -> None:
    status, headers, answer = raw(gw, "POST", "/v2/chat/completions", body)
    assert status == 400
    assert_openai_error(answer, param)
    assert headers["x-request-id"]


def test_openai_client_raises_bad_request_with_param(gw: Gateway) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        gw.client().chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}],
                                            top_p=7)
    assert caught.value.param == "top_p"
    still_serving(gw)


def test_embeddings_and_completions_validation(gw: Gateway) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        gw.client().embeddings.create(model="jina-embeddings-v2-base-de", input=[])
    assert caught.value.param == "input"
    with pytest.raises(openai.BadRequestError) as caught:
        gw.client().embeddings.create(model="gpt-4o-mini", input="x")
    assert caught.value.code == "wrong_endpoint"
    with pytest.raises(openai.BadRequestError) as caught:
        gw.client().completions.create(model="gpt-4o-mini", prompt="x")
    assert "only available for open-source models" in str(caught.value)
    assert "chat/completions" in str(caught.value)


def test_unknown_route_and_method(gw: Gateway) -> None:
    status, _, body = raw(gw, "GET", "/v2/engines")
    assert status == 404 and assert_openai_error(body)["code"] == "unknown_url"
    status, _, body = raw(gw, "GET", "/nowhere")
    assert status == 404
    status, headers, body = raw(gw, "GET", "/v2/chat/completions")
    assert status == 405 and headers["Allow"] == "POST"
    assert_openai_error(body)
    status, headers, body = raw(gw, "DELETE", "/healthz")
    assert status == 405 and "GET" in headers["Allow"]


def test_body_over_the_limit(gw: Gateway) -> None:
    big = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x" * 300_000}]}).encode()
    status, _, body = raw(gw, "POST", "/v2/chat/completions", big)
    assert status == 413
    assert "max_body_bytes" in assert_openai_error(body)["message"]
    with pytest.raises(openai.APIStatusError) as caught:
        gw.client().chat.completions.create(model="gpt-4o-mini",
                                            messages=[{"role": "user", "content": "x" * 300_000}])
    assert caught.value.status_code == 413
    still_serving(gw)


@pytest.mark.parametrize(("status", "exception"), [
    (400, openai.BadRequestError), (404, openai.NotFoundError), (422, openai.UnprocessableEntityError),
    (429, openai.RateLimitError), (500, openai.InternalServerError), (503, openai.InternalServerError),
])
def test_upstream_errors_pass_through_with_their_status(gw: Gateway, status: int, exception: type) -> None:
    sim = gw.sim("openai")
    sim.faults.clear()
    sim.faults.extend(Fault(status=status) for _ in range(5))
    try:
        with pytest.raises(exception) as caught:
            gw.client().chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
        assert caught.value.status_code == status
        assert "simulated upstream failure" in caught.value.message
    finally:
        sim.faults.clear()
    still_serving(gw)


def test_upstream_auth_failure_is_the_gateways_problem(gw: Gateway) -> None:
    sim = gw.sim("openai")
    sim.faults.extend(Fault(status=401) for _ in range(3))
    try:
        with pytest.raises(openai.APIStatusError) as caught:
            gw.client().chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
        assert caught.value.status_code == 502  # our credentials upstream, not the caller's key
    finally:
        sim.faults.clear()


def test_unreachable_upstream_is_502(gw: Gateway) -> None:
    # The harness pointed every provider at a simulator; point `dead` back at a closed port.
    import dataclasses

    from router.gateway import GATEWAY

    gateway = gw.app[GATEWAY]  # type: ignore[index]
    table = gateway.runtime.table
    dead = dataclasses.replace(table.providers["dead"], settings=dataclasses.replace(
        table.providers["dead"].settings, base_url=f"http://127.0.0.1:{_free_port()}/v1"))
    gw.run(_swap(gateway, dataclasses.replace(table, providers={**table.providers, "dead": dead})))
    with pytest.raises(openai.APIStatusError) as caught:
        gw.client().chat.completions.create(model="dead-model", messages=[{"role": "user", "content": "x"}])
    assert caught.value.status_code == 502
    assert caught.value.code == "upstream_unreachable"
    still_serving(gw)


async def _swap(gateway: Any, table: Any) -> None:
    gateway.swap(table)


def test_upstream_timeout_is_504(gw: Gateway) -> None:
    sim = gw.sim("openai")
    sim.faults.extend(Fault(delay_first_byte=1.0) for _ in range(3))
    try:
        with pytest.raises(openai.APIStatusError) as caught:
            gw.client().chat.completions.create(model="slow-model", messages=[{"role": "user", "content": "x"}])
        assert caught.value.status_code == 504
    finally:
        sim.faults.clear()
    still_serving(gw)


def test_garbage_from_upstream_is_502(gw: Gateway) -> None:
    gw.sim("openai").faults.append(Fault(garbage=True))
    with pytest.raises(openai.APIStatusError) as caught:
        gw.client().chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    assert caught.value.status_code == 502
    still_serving(gw)


def test_unexpected_exception_is_a_500_without_a_trace(gw: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(self: Any, request: Any, body: bytes) -> Any:
        raise RuntimeError("internal detail that must not leak")

    monkeypatch.setattr(OpenAIAdapter, "from_upstream", explode)
    status, headers, body = raw(gw, "POST", "/v2/chat/completions",
                                b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}')
    assert status == 500
    error = assert_openai_error(body)
    assert "internal detail" not in error["message"] and headers["x-request-id"] in error["message"]
    monkeypatch.undo()
    still_serving(gw)


def test_request_id_is_accepted_from_the_client(gw: Gateway) -> None:
    status, headers, _ = raw(gw, "GET", "/v2/models", headers={"x-request-id": "client-chosen-id-42"})
    assert status == 200 and headers["x-request-id"] == "client-chosen-id-42"
    _, headers, _ = raw(gw, "GET", "/v2/models", headers={"x-request-id": "bad id\twith junk"})
    assert headers["x-request-id"] != "bad id\twith junk"


def test_stream_failing_before_first_byte_is_an_http_error(gw: Gateway) -> None:
    gw.sim("openai").faults.extend(Fault(status=500) for _ in range(3))
    try:
        with pytest.raises(openai.InternalServerError):
            gw.client().chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}],
                                                stream=True)
    finally:
        gw.sim("openai").faults.clear()


def test_stream_failing_midway_ends_with_an_error_event(gw: Gateway) -> None:
    gw.sim("openai").faults.append(Fault(drop_after_chunks=3))
    stream = gw.client().chat.completions.create(model="gpt-4o-mini",
                                                 messages=[{"role": "user", "content": "tell me a long story"}],
                                                 stream=True)
    with pytest.raises(openai.APIError) as caught:
        for _ in stream:
            pass
    assert "lost mid-stream" in str(caught.value) or "upstream" in str(caught.value).lower()
    still_serving(gw)
