"""The log of a request: one JSON line with the fields ops need, the request id the
client sent (and got back), and never a key, a prompt or a completion. The admin
view of the running table: every secret redacted, the version shown."""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from router.config.schema import parse
from router.http.admin import _redacted
from router.logs import JsonFormatter
from tests.harness import ADMIN_KEY, KEY_A, KEY_B, UPSTREAM_SECRET, Gateway, table_dict
from tests.ops.support import http

PROMPT = "Tell me about the confidential merger codenamed BLUEHERON-4711"
SECRETS = [KEY_A, KEY_B, ADMIN_KEY, UPSTREAM_SECRET, "azure-secret-test", "anthropic-secret-test", "gemini-secret-test"]


@pytest.fixture(scope="module")
def gw() -> Iterator[Gateway]:
    with Gateway(table_dict()) as gateway:
        yield gateway


@pytest.fixture()
def log_lines() -> Iterator[io.StringIO]:
    """Everything the gateway logs during the test, formatted as in production."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("llm_router")
    saved = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved)


def _entries(stream: io.StringIO) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_a_request_logs_one_line_with_its_fields_and_no_key_prompt_or_completion(
        gw: Gateway, log_lines: io.StringIO) -> None:
    client = gw.client()
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": PROMPT}],
        extra_headers={"x-request-id": "client-req-42"})
    assert raw.headers["x-request-id"] == "client-req-42"
    answer = raw.parse().choices[0].message.content
    chunks = list(client.chat.completions.create(
        model="claude-3-5-sonnet", messages=[{"role": "user", "content": PROMPT}], stream=True,
        stream_options={"include_usage": True}, extra_headers={"x-request-id": "client-req-43"}))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    client.embeddings.create(model="jina-embeddings-v2-base-de", input=PROMPT)
    status, headers, _ = http("POST", gw.url("/v2/chat/completions"), b'{"model": "gpt-4o-mini", "messages": 7}',
                              {"Authorization": f"Bearer {KEY_A}", "Content-Type": "application/json",
                               "x-request-id": "not a valid id"})
    assert status == 400 and headers["x-request-id"] != "not a valid id"  # replaced by one of ours

    entries = _entries(log_lines)
    requests = {e["request_id"]: e for e in entries if e["message"] == "request"}
    plain = requests["client-req-42"]
    assert plain | {"key": "team-a", "endpoint": "/v2", "model": "gpt-4o-mini", "provider": "openai",
                    "target": "gpt-4o-mini-2024-07-18", "status": 200, "stream": False, "attempts": 1} == plain
    assert plain["prompt_tokens"] > 0 and plain["completion_tokens"] > 0
    assert plain["duration_ms"] >= plain["overhead_ms"] >= 0 and plain["ttft_ms"] is None
    stream = requests["client-req-43"]
    assert stream["stream"] is True and stream["provider"] == "anthropic" and stream["ttft_ms"] > 0
    assert stream["completion_tokens"] > 0
    assert headers["x-request-id"] in requests and requests[headers["x-request-id"]]["status"] == 400
    assert len(requests) == 4

    text = log_lines.getvalue()
    assert answer and answer not in text and streamed not in text
    for secret in [*SECRETS, PROMPT, "BLUEHERON"]:
        assert secret not in text, f"{secret!r} is in the log"


def test_a_refused_reload_logs_its_errors_and_no_secret(gw: Gateway, log_lines: io.StringIO) -> None:
    status, _, body = http("POST", gw.url("/admin/reload"), headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert status == 400  # the harness' file name does not exist: refused, with the reason
    refused = [e for e in _entries(log_lines) if e["message"].startswith("route table reload refused")]
    assert len(refused) == 1 and refused[0]["errors"] == orjson.loads(body)["errors"]
    assert refused[0]["level"] == "error" and refused[0]["trigger"] == "api"
    for secret in SECRETS:
        assert secret not in log_lines.getvalue()


def test_admin_config_shows_the_version_and_redacts_every_secret(gw: Gateway) -> None:
    status, _, body = http("GET", gw.url("/admin/config"), headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert status == 200
    shown = orjson.loads(body)
    assert gw.table is not None and shown["version"] == gw.table.version
    assert shown["config"]["providers"]["openai"]["api_key"] == "[REDACTED]"
    assert shown["config"]["admin"]["key"] == "[REDACTED]"
    assert [k["name"] for k in shown["config"]["keys"]] == ["team-a", "team-b"]
    digests = [hashlib.sha256(key.encode()).hexdigest() for key in (KEY_A, KEY_B, ADMIN_KEY)]
    for secret in [*SECRETS, *digests]:
        assert secret not in body.decode(), f"{secret!r} is in /admin/config"
    assert http("GET", gw.url("/admin/config"), headers={"Authorization": f"Bearer {KEY_A}"})[0] in (401, 403)


def test_redaction_covers_redis_passwords_url_credentials_and_key_digests() -> None:
    data = table_dict(state={"redis_url": "rediss://:hunter2-redis@redis.internal:6380/0"})
    data["providers"]["local"]["base_url"] = "http://svc-user:hunter3-basic@llama.internal:8000/v1"
    data["keys"][1] = {"name": "team-b", "key_sha256": hashlib.sha256(b"sk-hashed").hexdigest(),
                       "models": ["Llama-3.1-70B-Instruct"]}
    shown = orjson.dumps(_redacted(parse(data))).decode()
    for secret in ["hunter2-redis", "hunter3-basic", hashlib.sha256(b"sk-hashed").hexdigest(), KEY_A, ADMIN_KEY,
                   UPSTREAM_SECRET]:
        assert secret not in shown, secret
    assert "http://svc-user:[REDACTED]@llama.internal:8000/v1" in shown


def test_debug_content_logs_the_bodies_and_still_no_key(log_lines: io.StringIO) -> None:
    with Gateway(table_dict(logging={"debug_content": True})) as gw:
        reply = gw.client().chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": PROMPT}],
            extra_headers={"x-request-id": "debug-req-1"})
    line = next(e for e in _entries(log_lines) if e.get("request_id") == "debug-req-1" and e["message"] == "request")
    assert PROMPT in line["request_body"]
    assert reply.choices[0].message.content and reply.choices[0].message.content in line["response_body"]
    for secret in SECRETS:
        assert secret not in log_lines.getvalue()
