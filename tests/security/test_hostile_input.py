"""Hand-written hostile requests: each gets the right 4xx in OpenAI's shape, naming the
limit it hit, and the gateway keeps serving a well-behaved client meanwhile."""

from __future__ import annotations

import base64
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
import pytest

from router.gateway import GATEWAY
from router.upstream.fetch import ImageFetcher, PublicOnlyResolver
from tests.harness import KEY_A, Gateway, table_dict
from tests.security.conftest import gateway_with_file
from tests.security.http import Answer, call
from tests.security.test_ssrf import FakeDNS

LIMITS = {"max_body_bytes": 300_000, "max_messages": 8, "max_content_parts": 4, "max_tools": 8,
          "max_image_bytes": 1024, "max_model_id_length": 32, "max_json_depth": 12, "max_file_bytes": 2048,
          "max_header_bytes": 2048}
CHAT = "/v2/chat/completions"


def hello(model: str = "Llama-3.1-70B-Instruct", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hello"}], **extra}


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A gateway with small limits, so each is reached with a small request."""
    with gateway_with_file(tmp_path_factory.mktemp("hostile"), table_dict(server={"request_limits": LIMITS})) as gw:
        gateway = gw.app[GATEWAY]  # type: ignore[index]
        gateway.fetcher = ImageFetcher(LIMITS["max_image_bytes"], 2, resolver=PublicOnlyResolver(FakeDNS()))
        yield gw


def post(gw: Gateway, body: Any, path: str = CHAT, **kwargs: Any) -> Answer:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    return call(gw, "POST", path, KEY_A, data=data, headers={"Content-Type": "application/json",
                                                             **kwargs.pop("headers", {})}, **kwargs)


def assert_refused(answer: Answer, status: int, *words: str) -> dict[str, Any]:
    assert answer.status == status, answer.text
    error: dict[str, Any] = answer.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["type"] == "invalid_request_error"
    for word in words:
        assert word in error["message"], error["message"]
    return error


def deep(levels: int) -> Any:
    node: Any = "x"
    for _ in range(levels):
        node = [node]
    return node


MALFORMED = {
    "truncated JSON": b'{"model": "Llama-3.1-70B-Instruct", "messages": [{"role": "user", "con',
    "empty body": b"",
    "a JSON array": b"[1, 2]",
    "a JSON string": b'"hello"',
    "NaN": b'{"model": "Llama-3.1-70B-Instruct", "messages": [], "temperature": NaN}',
    "invalid UTF-8": b'{"model": "Llama-3.1-70B-Instruct", "messages": [{"role": "user", "content": "\xff\xfe"}]}',
    "a lone surrogate escape": b'{"model": "x\\ud800", "messages": []}',
    "an integer beyond 64 bits": b'{"model": "Llama-3.1-70B-Instruct", "messages": [{"role": "user", '
                                 b'"content": "hi"}], "seed": 123456789012345678901234567890}',
    "a float overflow": b'{"model": "Llama-3.1-70B-Instruct", "messages": [{"role": "user", "content": "hi"}], '
                        b'"temperature": 1e999}',
    "trailing garbage": b'{"model": "Llama-3.1-70B-Instruct"} {"x": 1}',
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_bodies_are_400(small: Gateway, name: str) -> None:
    assert_refused(post(small, MALFORMED[name]), 400)


WRONG_TYPES: dict[str, tuple[dict[str, Any], str]] = {
    "model a number": ({"model": 7, "messages": [{"role": "user", "content": "hi"}]}, "model"),
    "messages an object": (hello(messages={"role": "user"}), "messages"),
    "a message a string": (hello(messages=["hi"]), "messages[0]"),
    "role a number": (hello(messages=[{"role": 1, "content": "hi"}]), "messages[0].role"),
    "content a number": (hello(messages=[{"role": "user", "content": 5}]), "messages[0].content"),
    "a part a string": (hello(messages=[{"role": "user", "content": ["hi"]}]), "messages[0].content[0].type"),
    "a part's text a list": (hello(messages=[{"role": "user", "content": [{"type": "text", "text": []}]}]),
                             "messages[0].content[0].text"),
    "temperature a string": (hello(temperature="hot"), "temperature"),
    "max_tokens a decimal": (hello(max_tokens=5.5), "max_tokens"),
    "max_tokens a boolean": (hello(max_tokens=True), "max_tokens"),
    "max_tokens beyond 64 bits as a decimal": (hello(max_tokens=1e300), "max_tokens"),
    "stream a string": (hello(stream="yes"), "stream"),
    "stop five strings": (hello(stop=["a", "b", "c", "d", "e"]), "stop"),
    "tools an object": (hello(tools={"type": "function"}), "tools"),
    "a tool without a function": (hello(tools=[{"type": "function"}]), "tools[0].function"),
    "a tool name with spaces": (hello(tools=[{"type": "function", "function": {"name": "get weather"}}]),
                                "tools[0].function.name"),
    "tool parameters a list": (hello(tools=[{"type": "function", "function": {"name": "f", "parameters": []}}]),
                               "tools[0].function.parameters"),
    "tool_choice unknown": (hello(tool_choice="sometimes"), "tool_choice"),
    "response_format strict a string": (hello(response_format={"type": "json_schema", "json_schema": {
        "name": "a", "strict": "yes"}}), "response_format.json_schema.strict"),
    "logit_bias out of range": (hello(logit_bias={"50256": 101}), "logit_bias.50256"),
    "a tool call without arguments": (hello(messages=[{"role": "assistant", "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f"}}]}]), "messages[0].tool_calls[0].function.arguments"),
}


@pytest.mark.parametrize("name", list(WRONG_TYPES))
def test_wrong_types_at_every_level_name_the_parameter(small: Gateway, name: str) -> None:
    body, param = WRONG_TYPES[name]
    assert assert_refused(post(small, body), 400)["param"] == param


def test_other_operations_check_their_fields_too(small: Gateway) -> None:
    embedding = {"model": "jina-embeddings-v2-base-de", "input": "a"}
    assert assert_refused(post(small, {**embedding, "user": {}}, "/v2/embeddings"), 400)["param"] == "user"
    assert assert_refused(post(small, {**embedding, "dimensions": 10**9}, "/v2/embeddings"), 400)["param"] == \
        "dimensions"
    completion = {"model": "Llama-3.1-70B-Instruct", "prompt": "a"}
    assert assert_refused(post(small, {**completion, "best_of": 21}, "/v2/completions"), 400)["param"] == "best_of"


def test_a_whole_decimal_is_taken_as_an_integer(small: Gateway) -> None:
    answer = post(small, hello(max_tokens=5.0, n=1.0))
    assert answer.status == 200, answer.text
    assert small.sim("openai-compatible").received[-1].json()["max_tokens"] == 5


LIMIT_CASES: dict[str, tuple[dict[str, Any], int, str]] = {
    "messages": (hello(messages=[{"role": "user", "content": "hi"}] * 9), 400, "max_messages"),
    "content parts": (hello(messages=[{"role": "user", "content": [{"type": "text", "text": "a"}] * 5}]), 400,
                      "max_content_parts"),
    "tools": (hello(tools=[{"type": "function", "function": {"name": f"f{i}"}} for i in range(9)]), 400,
              "max_tools"),
    "thousands of tools": (hello(tools=[{"type": "function", "function": {"name": f"f{i}"}} for i in range(5000)]),
                           400, "max_tools"),
    "model id": (hello(model="m" * 33), 400, "max_model_id_length"),
    "JSON depth": (hello(metadata=deep(20)), 400, "max_json_depth"),
    "image size": (hello(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {
        "url": "data:image/png;base64," + base64.b64encode(b"\0" * 2048).decode()}}]}]), 400, "max_image_bytes"),
    "image URLs": (hello(messages=[{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": f"https://images.example.com/{i}.png"}} for i in range(4)]}] * 5),
        400, "Too many image URLs"),
    "body size": (hello(messages=[{"role": "user", "content": "x" * 400_000}]), 413, "max_body_bytes"),
}


@pytest.mark.parametrize("name", list(LIMIT_CASES))
def test_each_limit_is_enforced_and_named(small: Gateway, name: str) -> None:
    body, status, limit = LIMIT_CASES[name]
    assert_refused(post(small, body), status, limit)


def test_a_compressed_body_is_limited_by_its_decompressed_size(small: Gateway) -> None:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip
    bomb = packer.compress(orjson.dumps(hello(messages=[{"role": "user", "content": "a" * 4_000_000}]))) + \
        packer.flush()
    assert len(bomb) < LIMITS["max_body_bytes"] // 10
    answer = post(small, bomb, headers={"Content-Encoding": "gzip"})
    assert_refused(answer, 413, "max_body_bytes")


def test_deep_nesting_far_past_the_limit_is_a_400_not_a_crash(small: Gateway) -> None:
    raw = b'{"model": "Llama-3.1-70B-Instruct", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert_refused(post(small, raw), 400)


@pytest.mark.parametrize("headers", [{"X-Padding": "p" * 4096}, {f"X-Many-{i}": "x" for i in range(200)}],
                         ids=["one long header", "too many headers"])
def test_oversized_headers_are_refused_and_the_gateway_serves_on(small: Gateway, headers: dict[str, str]) -> None:
    assert post(small, hello(), headers=headers).status == 400
    assert post(small, hello()).status == 200


def test_an_oversized_header_is_answered_in_openai_shape_naming_the_limit(small: Gateway) -> None:
    assert_refused(post(small, hello(), headers={"X-Padding": "p" * 4096}), 400, "max_header_bytes")


def test_a_file_over_the_limit_is_413_and_malformed_forms_are_400(small: Gateway) -> None:
    path = "/v2/audio/transcriptions"
    boundary = "b0undary"

    def form(*parts: bytes) -> bytes:
        return b"".join(b"--" + boundary.encode() + b"\r\n" + p + b"\r\n" for p in parts) + \
            f"--{boundary}--\r\n".encode()

    model = b'Content-Disposition: form-data; name="model"\r\n\r\nwhisper-large-v3'
    big_file = b'Content-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n' + b"\0" * 4096
    multipart = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    assert_refused(call(small, "POST", path, KEY_A, data=form(model, big_file), headers=multipart), 413,
                   "max_file_bytes")
    malformed = {
        "no boundary": (b"--x\r\n", {"Content-Type": "multipart/form-data"}),
        "not multipart": (b"{}", {"Content-Type": "application/json"}),
        "truncated": (form(model)[:-10], multipart),
        "a broken part header": (b"--b0undary\r\nContent-Disposition form-data\r\n\r\nx\r\n--b0undary--\r\n",
                                 multipart),
        "a non-ASCII field name": (form('Content-Disposition: form-data; name="größe"\r\n\r\n1'.encode()),
                                   multipart),
        "a field that is not UTF-8": (form(model, b'Content-Disposition: form-data; name="prompt"\r\n\r\n\xff\xfe'),
                                      multipart),
        "no file": (form(model), multipart),
    }
    for name, (data, headers) in malformed.items():
        answer = call(small, "POST", path, KEY_A, data=data, headers=headers)
        assert answer.status == 400, (name, answer.text)
        assert answer.json()["error"]["message"], name


@pytest.mark.parametrize("url", ["https://127.0.0.1/a.png", "https://169.254.169.254/latest/meta-data/",
                                 "https://10.0.0.7/a.png", "https://[::1]/a.png", "https://localhost/a.png"])
@pytest.mark.parametrize("model", ["gemini-1.5-pro", "Llama-3.1-70B-Instruct"])
def test_image_urls_at_internal_addresses_are_refused_for_every_provider(small: Gateway, url: str,
                                                                         model: str) -> None:
    body = hello(model, messages=[{"role": "user", "content": [{"type": "text", "text": "what is this?"},
                                                                {"type": "image_url", "image_url": {"url": url}}]}])
    error = assert_refused(post(small, body), 400)
    assert error["code"] == "invalid_image_url" and error["param"] == "messages[0].content[1].image_url.url"


@pytest.mark.parametrize("host", ["private.example.com", "10.0.0.1.sslip.io", "nat64-metadata.example.com",
                                  "v4-compatible.example.com"])
@pytest.mark.parametrize("model", ["gemini-1.5-pro", "Llama-3.1-70B-Instruct"])
def test_a_name_that_resolves_to_a_private_address_is_refused_whoever_fetches_it(small: Gateway, host: str,
                                                                                 model: str) -> None:
    # Gemini's images are fetched by the gateway; vLLM fetches them itself, from inside our network.
    received = len(small.sim("openai-compatible").received)
    body = hello(model, messages=[{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": f"https://{host}/cat.png"}}]}])
    error = assert_refused(post(small, body), 400, "non-public address")
    assert error["code"] == "invalid_image_url"
    assert len(small.sim("openai-compatible").received) == received


def test_a_forwarded_url_to_a_public_name_reaches_the_upstream(small: Gateway) -> None:
    url = "https://images.example.com/cat.png"
    body = hello(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}])
    answer = post(small, body)
    assert answer.status == 200, answer.text
    assert url in small.sim("openai-compatible").received[-1].body.decode()


def test_a_multi_megabyte_message_within_the_limits_is_served(gateway: Gateway) -> None:
    answer = post(gateway, hello(messages=[{"role": "user", "content": "word " * 600_000}]))
    assert answer.status == 200, answer.text[:300]


def test_hostile_requests_do_not_hold_up_a_well_behaved_client(small: Gateway) -> None:
    hostile = [MALFORMED["truncated JSON"], orjson.dumps(LIMIT_CASES["thousands of tools"][0]),
               b'{"x": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", MALFORMED["invalid UTF-8"]] * 5
    with ThreadPoolExecutor(8) as pool:
        refused = [pool.submit(post, small, body) for body in hostile]
        served = [pool.submit(post, small, hello()) for _ in range(5)]
        assert all(f.result(timeout=20).status == 400 for f in refused)
        assert all(f.result(timeout=20).status == 200 for f in served)


CORRUPT_ENCODINGS: dict[str, tuple[str, bytes, int, str | None]] = {
    "corrupt gzip": ("gzip", b"\x1f\x8b\x08\x00" + b"not gzip at all" * 10, 400, "bad_request_body"),
    "truncated gzip": ("gzip", zlib.compressobj(9, zlib.DEFLATED, 31).compress(b"{}" * 1000)[:20], 400, None),
    "corrupt deflate": ("deflate", b"zzzz", 400, "bad_content_encoding"),
    "brotli": ("br", b"\x8b\x03\x80{}\x03", 400, "bad_content_encoding"),
    "zstd": ("zstd", b"(\xb5/\xfd\x00\x00\x11\x00\x00{}", 400, "bad_content_encoding"),
    "an unknown coding": ("x-custom", b"{}", 415, "unsupported_content_encoding"),
    "stacked codings": ("gzip, gzip", b"{}", 415, "unsupported_content_encoding"),
}


@pytest.mark.parametrize("name", list(CORRUPT_ENCODINGS))
def test_a_corrupt_or_unsupported_content_encoding_is_a_4xx_without_a_traceback(
        small: Gateway, name: str, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> None:
    """Before: a corrupt gzip body was a 500 with a traceback, br/zstd made aiohttp print
    plain-text tracebacks outside the JSON log."""
    coding, data, status, code = CORRUPT_ENCODINGS[name]
    caplog.set_level("DEBUG")
    for path in (CHAT, "/v2/audio/transcriptions"):
        content_type = "application/json" if path == CHAT else "multipart/form-data; boundary=b0undary"
        answer = post(small, data, path, headers={"Content-Encoding": coding, "Content-Type": content_type})
        assert answer.status == status, (path, answer.text)
        error = answer.json()["error"]
        assert set(error) == {"message", "type", "param", "code"} and code in (None, error["code"])
    assert post(small, hello()).status == 200
    assert not [r for r in caplog.records if r.exc_info or r.levelname in ("ERROR", "CRITICAL")]
    assert "Traceback" not in capfd.readouterr().err
