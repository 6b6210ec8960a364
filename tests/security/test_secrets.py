"""No secret in any log line, metric, response or error: a representative run of the
gateway (successes on every provider, every kind of error, streams, reloads good and
bad, the admin API) with every log record captured at DEBUG, then the captured log,
the /metrics text and every response (headers and body) are searched for every
configured secret (provider keys, client keys, the admin key) and for the SHA-256
digests that identify the client keys."""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from providers.simulators.common import Fault
from router.logs import JsonFormatter
from tests.harness import ADMIN_KEY, KEY_A, KEY_B, UPSTREAM_SECRET, Gateway, table_dict
from tests.security.conftest import gateway_with_file
from tests.security.http import Answer, call

PROVIDER_SECRETS = [UPSTREAM_SECRET, "azure-secret-test", "anthropic-secret-test", "gemini-secret-test"]
SECRETS = [*PROVIDER_SECRETS, KEY_A, KEY_B, ADMIN_KEY]
SEARCHED = SECRETS + [hashlib.sha256(k.encode()).hexdigest() for k in (KEY_A, KEY_B, ADMIN_KEY)]
CHAT_MODELS = ["gpt-4o", "gpt-4o-mini", "Llama-3.1-70B-Instruct", "claude-3-5-sonnet", "gemini-1.5-pro"]


class Everything(logging.Handler):
    """Every record, as the gateway's JSON formatter writes it and with all its attributes and traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.json = JsonFormatter()
        self.plain = logging.Formatter("%(name)s %(levelname)s %(message)s")

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.json.format(record))
        self.lines.append(self.plain.format(record))  # includes the whole traceback, if any
        self.lines.append(repr({k: v for k, v in vars(record).items() if k not in ("exc_info", "msg", "args")}))


@pytest.fixture(scope="module")
def captured() -> Iterator[Everything]:
    handler = Everything()
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


def text_of(answer: Answer) -> str:
    return json.dumps(answer.headers) + "\n" + answer.text


def chat(gw: Gateway, model: str, key: str = KEY_A, **extra: Any) -> Answer:
    body = {"model": model, "messages": [{"role": "user", "content": "hello"}], **extra}
    return call(gw, "POST", "/v2/chat/completions", key, data=orjson.dumps(body),
                headers={"Content-Type": "application/json"})


def successes(gw: Gateway) -> list[Answer]:
    answers = [chat(gw, model, stream=stream) for model in CHAT_MODELS for stream in (False, True)]
    answers.append(chat(gw, "Llama-3.1-70B-Instruct", KEY_B, stream=True, stream_options={"include_usage": True}))
    for model in ("jina-embeddings-v2-base-de", "text-embedding-004"):
        answers.append(call(gw, "POST", "/v2/embeddings", KEY_A, json={"model": model, "input": ["a", "b"]}))
    answers.append(call(gw, "POST", "/v2/completions", KEY_A, json={"model": "Llama-3.1-70B-Instruct",
                                                                    "prompt": "Once"}))
    form = {"model": "whisper-large-v3", "file": io.BytesIO(b"RIFF....WAVE")}
    answers.append(call(gw, "POST", "/v2/audio/transcriptions", KEY_A, data=form))
    for path, key in (("/v2/models", KEY_A), ("/v2/models/gpt-4o", KEY_A), ("/v2/usage", KEY_B),
                      ("/admin/usage", ADMIN_KEY), ("/admin/config", ADMIN_KEY), ("/readyz", None),
                      ("/healthz", None)):
        answers.append(call(gw, "GET", path, key))
    answers.append(call(gw, "POST", "/admin/reload", ADMIN_KEY))
    assert all(a.status == 200 for a in answers), [(a.status, a.text[:200]) for a in answers if a.status != 200]
    return answers


def upstream_failures(gw: Gateway) -> list[Answer]:
    answers = []
    for model, kind in (("gpt-4o", "azure"), ("gpt-4o-mini", "openai"), ("Llama-3.1-70B-Instruct", "openai-compatible"),
                        ("claude-3-5-sonnet", "anthropic"), ("gemini-1.5-pro", "gemini")):
        faults = gw.sim(kind).faults
        for fault in (Fault(status=401), Fault(status=400), Fault(status=429, retry_after=1), Fault(garbage=True)):
            faults.clear()
            faults.extend([fault] * 4)  # retries meet it too
            answers.append(chat(gw, model))
        faults.clear()
        faults.append(Fault(drop_after_chunks=2))
        answers.append(chat(gw, model, stream=True))
        faults.clear()
    assert all(a.status >= 400 or "error" in a.text for a in answers)
    return answers


def client_errors(gw: Gateway, table_file: Path) -> list[Answer]:
    answers = [
        chat(gw, "gpt-4o", "sk-wrong-key"), chat(gw, "gpt-4o", KEY_A, temperature="hot"),
        chat(gw, "no-such-model"), chat(gw, "claude-3-5-sonnet", KEY_B),
        call(gw, "POST", "/v2/chat/completions", KEY_A, data=b'{"model": "gpt-4o", "mess',
             headers={"Content-Type": "application/json"}),
        call(gw, "POST", "/v2/chat/completions", KEY_A, data=b"x" * 200_000,
             headers={"Content-Type": "application/json"}),
        chat(gw, "gemini-1.5-pro", messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://169.254.169.254/latest/meta-data/"}}]}]),
        call(gw, "GET", "/v2/chat/completions", KEY_A), call(gw, "GET", "/nowhere", KEY_A),
        call(gw, "GET", "/admin/config", KEY_A), call(gw, "GET", "/admin/config", ADMIN_KEY + "x"),
        call(gw, "GET", "/v2/usage", KEY_A, params={"from": "yesterday"}),
    ]
    good = table_file.read_text()
    table_file.write_text(good.replace('"kind": "openai"', '"kind": "openai", "bogus": "' + UPSTREAM_SECRET + '"'))
    answers.append(call(gw, "POST", "/admin/reload", ADMIN_KEY))
    assert answers[-1].status == 400
    table_file.write_text(good)
    for attempt in range(22):  # until the failed-auth limit answers 429
        answers.append(chat(gw, "gpt-4o", f"{KEY_A}-guess-{attempt}"))
    assert answers[-1].status == 429
    assert all(a.status >= 400 for a in answers)
    return answers


def test_no_secret_leaks_anywhere(captured: Everything, tmp_path: Path) -> None:
    table = table_dict(server={"request_limits": {"max_body_bytes": 100_000}})
    with gateway_with_file(tmp_path, table) as gw:
        texts = [text_of(a) for a in successes(gw) + upstream_failures(gw)]
        received = [r for kind in ("openai", "azure", "anthropic", "gemini") for r in gw.sim(kind).received]
        texts += [text_of(a) for a in client_errors(gw, tmp_path / "routes.yaml")]
        texts.append(call(gw, "GET", "/metrics").text)
    # The secrets were really in use: the upstreams got the provider keys.
    sent = "\n".join(json.dumps(r.headers) + r.query.get("key", "") for r in received)
    assert all(secret in sent for secret in PROVIDER_SECRETS)
    log = "\n".join(captured.lines)
    assert "route table reload refused" in log and "unexpected error" not in log
    assert log.count('"logger":"llm_router.access"') > 60 and '"key":"team-a"' in log  # the log really was captured
    for where, text in [("the log", log), *(("an answer or /metrics", t) for t in texts)]:
        for secret in SEARCHED:
            assert secret not in text, f"a secret ({secret[:6]}...) in {where}: {text[:2000]}"
