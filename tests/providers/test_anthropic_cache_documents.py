"""Anthropic prompt caching marks, PDF documents and whitespace stop sequences, from
OpenAI-shaped requests; cache counts on the recorded answers."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from providers.anthropic import ADAPTERS, to_anthropic_request
from providers.anthropic_stream import AnthropicStreamTranslator
from providers.base import ApiRequest, Operation, StreamState, UpstreamError
from providers.settings import ProviderSettings, Secret
from providers.simulators.anthropic_checks import Rejected, validate_request
from tests.conftest import SAMPLES
from tests.streams import translate_stream

EPHEMERAL = {"type": "ephemeral"}
PDF = base64.b64encode(b"%PDF-1.4\n1 0 obj <<>> endobj\n%%EOF").decode()


def translate(body: dict[str, Any]) -> dict[str, Any]:
    request = ApiRequest(Operation.CHAT, {"model": "claude", **body}, public_model="claude")
    out = to_anthropic_request(request, "claude-3-5-sonnet-20241022")
    validate_request(out, vertex=False)  # what the simulator (the API's rules) says of it
    return out


def refused(body: dict[str, Any]) -> UpstreamError:
    with pytest.raises(UpstreamError) as caught:
        translate(body)
    assert caught.value.status == 400 and caught.value.type == "invalid_request_error"
    return caught.value


def weather_tool(**extra: Any) -> dict[str, Any]:
    return {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}, **extra}


def test_cache_control_reaches_every_block_kind() -> None:
    out = translate({
        "tools": [weather_tool(cache_control=EPHEMERAL)],
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": "Long rules", "cache_control": EPHEMERAL}]},
            {"role": "user", "content": [
                {"type": "text", "text": "Read this", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
            ]},
            {"role": "assistant", "content": "Calling", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_1",
             "content": [{"type": "text", "text": "sunny", "cache_control": EPHEMERAL}]},
        ],
    })  # fmt: skip
    assert out["tools"][0]["cache_control"] == EPHEMERAL
    assert out["system"] == [{"type": "text", "text": "Long rules", "cache_control": EPHEMERAL}]
    assert out["messages"][0]["content"][0]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}
    assert out["messages"][2]["content"][0] == {"type": "tool_result", "tool_use_id": "call_1", "content": "sunny",
                                                "cache_control": EPHEMERAL}


def test_a_whole_message_mark_goes_on_its_last_block() -> None:
    out = translate({"messages": [
        {"role": "system", "content": "Long rules", "cache_control": EPHEMERAL},
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
         "cache_control": EPHEMERAL},
    ]})  # fmt: skip
    assert out["system"] == [{"type": "text", "text": "Long rules", "cache_control": EPHEMERAL}]
    assert out["messages"][0]["content"] == [{"type": "text", "text": "a"},
                                             {"type": "text", "text": "b", "cache_control": EPHEMERAL}]


def test_a_fifth_breakpoint_is_the_apis_400_naming_it() -> None:
    parts = [{"type": "text", "text": f"part {k}", "cache_control": EPHEMERAL} for k in range(4)]
    error = refused({"tools": [weather_tool(cache_control=EPHEMERAL)],
                     "messages": [{"role": "user", "content": parts}]})
    # Anthropic's order is tools, system, messages: the fifth mark is the last part's.
    assert error.param == "messages[0].content[3].cache_control"
    assert "A maximum of 4 blocks with cache_control may be provided. Found 5." in error.message


@pytest.mark.parametrize("mark", [{"type": "persistent"}, {"type": "ephemeral", "ttl": "2h"}, "ephemeral"])
def test_a_malformed_mark_is_a_400_naming_it(mark: Any) -> None:
    error = refused({"messages": [{"role": "user", "content": [{"type": "text", "text": "x", "cache_control": mark}]}]})
    assert error.param == "messages[0].content[0].cache_control"


def test_a_pdf_file_part_is_a_document_block() -> None:
    out = translate({"messages": [{"role": "user", "content": [
        {"type": "file", "file": {"file_data": f"data:application/pdf;base64,{PDF}", "filename": "a.pdf"},
         "cache_control": EPHEMERAL},
        {"type": "text", "text": "Summarise"},
    ]}]})  # fmt: skip
    assert out["messages"][0]["content"][0] == {
        "type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": PDF},
        "cache_control": EPHEMERAL}  # fmt: skip


@pytest.mark.parametrize(("file", "param"), [
    ({"file_id": "file-abc"}, "messages[0].content[0].file.file_id"),
    ({"file_data": "data:text/csv;base64,YSxi"}, "messages[0].content[0].file.file_data"),
    ({"file_data": "data:application/pdf;base64,bm90IGEgcGRm"}, "messages[0].content[0].file.file_data"),
])  # fmt: skip
def test_file_parts_it_cannot_send_are_a_400_naming_the_part(file: dict[str, Any], param: str) -> None:
    error = refused({"messages": [{"role": "user", "content": [{"type": "file", "file": file}]}]})
    assert error.param == param


def test_input_audio_is_a_400_naming_the_part() -> None:
    error = refused({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "hi"}, {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}]}]})
    assert error.param == "messages[0].content[1]"


@pytest.mark.parametrize("stop", ["\n", ["END", "\n\n"], [" "], [""]])
def test_whitespace_stop_sequences_are_a_400_naming_stop(stop: Any) -> None:
    error = refused({"messages": [{"role": "user", "content": "hi"}], "stop": stop})
    assert error.param == "stop" and "whitespace" in error.message


def test_the_simulator_refuses_whitespace_stop_sequences_as_the_api_does() -> None:
    with pytest.raises(Rejected, match="non-whitespace"):
        validate_request({"model": "c", "max_tokens": 5, "stop_sequences": ["\n"],
                          "messages": [{"role": "user", "content": "hi"}]}, vertex=False)


def test_stop_with_text_still_reaches_anthropic() -> None:
    out = translate({"messages": [{"role": "user", "content": "hi"}], "stop": ["\nEND", "x"]})
    assert out["stop_sequences"] == ["\nEND", "x"]


# --- cached tokens in the answer and in the usage -------------------------------------


def adapter() -> Any:
    return ADAPTERS["anthropic"](ProviderSettings(name="p", kind="anthropic", api_key=Secret("k")))


def answer(sample: str) -> tuple[dict[str, Any], Any]:
    request = ApiRequest(Operation.CHAT, {"model": "c", "messages": []}, public_model="claude")
    body, usage = adapter().from_upstream(request, (SAMPLES / sample).read_bytes())
    return orjson.loads(body), usage


def test_recorded_cache_write_is_metered() -> None:
    body, usage = answer("anthropic-prompt-cache-write.json")
    assert (usage.prompt_tokens, usage.cached_tokens, usage.cache_write_tokens) == (4 + 1163, 0, 1163)
    assert body["usage"]["prompt_tokens"] == 1167
    assert body["usage"]["prompt_tokens_details"] == {"cached_tokens": 0}


def test_recorded_cache_read_is_reported_and_metered() -> None:
    body, usage = answer("anthropic-prompt-cache-read.json")
    assert (usage.prompt_tokens, usage.cached_tokens, usage.cache_write_tokens) == (1167, 1163, 0)
    assert body["usage"]["prompt_tokens_details"] == {"cached_tokens": 1163}


def test_recorded_pdf_answer() -> None:
    body, usage = answer("anthropic-pdf-document.json")
    assert "Dummy PDF file" in body["choices"][0]["message"]["content"]
    assert (usage.prompt_tokens, usage.completion_tokens) == (1615, 28)


def test_recorded_stream_cache_read() -> None:
    state = StreamState(public_model="claude", include_usage=True)
    chunks = translate_stream(AnthropicStreamTranslator(state), (SAMPLES / "anthropic-stream-prompt-cache-read.sse")
                              .read_bytes(), 11)
    assert chunks[-1]["usage"]["prompt_tokens_details"] == {"cached_tokens": 1165}
    assert state.usage is not None and state.usage.cached_tokens == 1165
    assert state.usage.prompt_tokens == chunks[-1]["usage"]["prompt_tokens"] >= 1165
