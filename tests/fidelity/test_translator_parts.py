"""With the openai package against the simulators: cache_control marks on each block kind
reaching Anthropic (and the cache read reported on the next call), PDFs to Claude and to
Gemini, `stop: ["\\n"]` to Claude, and a Gemini function call that fails."""

from __future__ import annotations

import base64
from typing import Any

import openai
import pytest

from tests.harness import Gateway

EPHEMERAL = {"type": "ephemeral"}
PDF = "data:application/pdf;base64," + base64.b64encode(b"%PDF-1.4\n1 0 obj <<>> endobj\n%%EOF").decode()
LONG = " ".join(f"rule{k}" for k in range(1500))  # over the 1024-token minimum the API caches
TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object",
        "properties": {"city": {"type": "string"}}}}, "cache_control": EPHEMERAL}  # fmt: skip


def _cached_chat(gw: Gateway) -> Any:
    messages: list[Any] = [
        {"role": "system", "content": [{"type": "text", "text": LONG, "cache_control": EPHEMERAL}]},
        {"role": "user", "content": [{"type": "file", "file": {"file_data": PDF, "filename": "a.pdf"},
                                      "cache_control": EPHEMERAL},
                                     {"type": "text", "text": "What does it say?", "cache_control": EPHEMERAL}]},
    ]
    return gw.client().chat.completions.create(model="claude-3-5-sonnet", messages=messages, tools=[TOOL])


def test_cache_control_on_each_block_kind_reaches_anthropic_and_is_read_back(gw: Gateway) -> None:
    since = len(gw.sim("anthropic").received)
    first = _cached_chat(gw)
    second = _cached_chat(gw)
    sent = gw.sim("anthropic").received[since].json()
    assert sent["tools"][0]["cache_control"] == EPHEMERAL
    assert sent["system"][0]["cache_control"] == EPHEMERAL
    assert [b.get("cache_control") for b in sent["messages"][0]["content"]] == [EPHEMERAL, EPHEMERAL]
    assert sent["messages"][0]["content"][0]["type"] == "document"
    assert first.usage is not None and second.usage is not None
    assert first.usage.prompt_tokens_details is not None and second.usage.prompt_tokens_details is not None
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    assert second.usage.prompt_tokens_details.cached_tokens >= 1500
    assert second.usage.prompt_tokens == first.usage.prompt_tokens


def test_a_fifth_breakpoint_is_a_400_naming_it(gw: Gateway) -> None:
    parts = [{"type": "text", "text": f"part {k}", "cache_control": EPHEMERAL} for k in range(5)]
    with pytest.raises(openai.BadRequestError) as caught:
        gw.client().chat.completions.create(model="claude-3-5-sonnet",
                                            messages=[{"role": "user", "content": parts}])  # type: ignore[misc]
    assert caught.value.param == "messages[0].content[4].cache_control"


@pytest.mark.parametrize("model", ["claude-3-5-sonnet", "gemini-1.5-pro"])
def test_a_pdf_reaches_claude_and_gemini(gw: Gateway, model: str) -> None:
    content: Any = [{"type": "file", "file": {"file_data": PDF, "filename": "a.pdf"}},
                    {"type": "text", "text": "Summarise the document"}]
    answer = gw.client().chat.completions.create(model=model, messages=[{"role": "user", "content": content}])
    assert answer.choices[0].message.content


def test_a_file_id_is_a_400_naming_it(gw: Gateway) -> None:
    content: Any = [{"type": "file", "file": {"file_id": "file-abc"}}]
    with pytest.raises(openai.BadRequestError) as caught:
        gw.client().chat.completions.create(model="claude-3-5-sonnet", messages=[{"role": "user", "content": content}])
    assert caught.value.param == "messages[0].content[0].file.file_id"


def test_a_newline_stop_to_claude_is_a_400_naming_stop(gw: Gateway) -> None:
    since = len(gw.sim("anthropic").received)
    with pytest.raises(openai.BadRequestError) as caught:
        gw.client().chat.completions.create(model="claude-3-5-sonnet", stop=["\n"],
                                            messages=[{"role": "user", "content": "hi"}])
    assert caught.value.param == "stop" and "whitespace" in caught.value.message
    assert len(gw.sim("anthropic").received) == since  # refused before any upstream call


@pytest.mark.parametrize("stream", [False, True])
def test_a_malformed_gemini_function_call_is_a_502_naming_it(gw: Gateway, stream: bool) -> None:
    client = gw.client().with_options(max_retries=0)
    with pytest.raises(openai.InternalServerError) as caught:
        answer = client.chat.completions.create(
            model="gemini-1.5-pro", stream=stream, tools=[{"type": "function", "function": TOOL["function"]}],
            messages=[{"role": "user", "content": "make a malformed call to get_weather"}])
        if stream:
            list(answer)  # type: ignore[arg-type]
    assert caught.value.status_code == 502
    assert caught.value.code == "malformed_function_call"
