"""Gemini: PDF file parts, image detail as mediaResolution, failed function calls as an
error, cached tokens in the usage."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from providers.base import ApiRequest, Operation, SSEEvent, StreamState, UpstreamError
from providers.gemini import chat_to_gemini
from providers.gemini_stream import GeminiStreamTranslator, response_to_openai, usage_from_gemini
from providers.openai import ADAPTERS
from providers.settings import ProviderSettings
from providers.simulators.gemini_checks import GeminiError, validate_generate
from providers.simulators.gemini_modern import validate_modern
from tests.conftest import SAMPLES

PDF = base64.b64encode(b"%PDF-1.7\n%%EOF").decode()
PNG = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n png").decode()


def translate(content: list[dict[str, Any]], model: str = "gemini-2.5-flash") -> dict[str, Any]:
    out = chat_to_gemini({"model": "g", "messages": [{"role": "user", "content": content}]}, {}, model)
    validate_generate(out, vertex=False)  # the API's rules, as the simulator keeps them
    validate_modern(out, model)
    return out


def test_a_pdf_file_part_is_inline_data() -> None:
    out = translate([{"type": "file", "file": {"file_data": f"data:application/pdf;base64,{PDF}"}},
                     {"type": "text", "text": "Summarise"}])
    assert out["contents"][0]["parts"][0] == {"inlineData": {"mimeType": "application/pdf", "data": PDF}}


def test_audio_parts_are_inline_data() -> None:
    out = translate([{"type": "input_audio", "input_audio": {"data": "SUQz", "format": "mp3"}}])
    assert out["contents"][0]["parts"] == [{"inlineData": {"mimeType": "audio/mp3", "data": "SUQz"}}]


def image(detail: str | None) -> dict[str, Any]:
    url: dict[str, Any] = {"url": PNG} | ({"detail": detail} if detail else {})
    return {"type": "image_url", "image_url": url}


def test_detail_is_a_per_part_media_resolution_on_gemini_3() -> None:
    out = translate([image("low"), image("high"), image("auto")], "gemini-3-pro-preview")
    levels = [p.get("mediaResolution") for p in out["contents"][0]["parts"]]
    assert levels == [{"level": "MEDIA_RESOLUTION_LOW"}, {"level": "MEDIA_RESOLUTION_HIGH"}, None]
    assert "mediaResolution" not in out.get("generationConfig", {})


@pytest.mark.parametrize(("details", "resolution"), [
    (["low"], "MEDIA_RESOLUTION_LOW"), (["low", "high"], "MEDIA_RESOLUTION_HIGH"), (["auto"], None), ([None], None),
])  # fmt: skip
def test_detail_is_the_requests_media_resolution_before_gemini_3(details: list[str | None], resolution: str) -> None:
    out = translate([image(d) for d in details])
    assert out.get("generationConfig", {}).get("mediaResolution") == resolution
    assert all("mediaResolution" not in p for p in out["contents"][0]["parts"])


def test_the_simulator_refuses_per_part_resolution_before_gemini_3() -> None:
    part = {"inlineData": {"mimeType": "image/png", "data": "iVBO"},
            "mediaResolution": {"level": "MEDIA_RESOLUTION_LOW"}}
    with pytest.raises(GeminiError):
        validate_modern({"contents": [{"role": "user", "parts": [part]}]}, "gemini-2.5-flash")


FAILED = {"candidates": [{"finishReason": "MALFORMED_FUNCTION_CALL", "index": 0}],
          "usageMetadata": {"promptTokenCount": 4474, "totalTokenCount": 4474}}


@pytest.mark.parametrize("reason", ["MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL", "TOO_MANY_TOOL_CALLS"])
def test_a_failed_function_call_is_a_502_naming_it(reason: str) -> None:
    answer = {**FAILED, "candidates": [{"finishReason": reason, "index": 0}]}
    with pytest.raises(UpstreamError) as caught:
        response_to_openai(answer, "gemini", "chatcmpl-x", 1)
    assert (caught.value.status, caught.value.code, caught.value.retryable) == (502, reason.lower(), False)
    assert reason in caught.value.message


def test_a_failed_function_call_in_a_stream_is_the_same_error() -> None:
    translator = GeminiStreamTranslator(StreamState(public_model="gemini", include_usage=True))
    with pytest.raises(UpstreamError) as caught:
        translator.feed(SSEEvent(None, orjson.dumps(FAILED)))
    assert caught.value.code == "malformed_function_call"


def test_cached_content_tokens_are_reported_and_metered() -> None:
    meta = {"promptTokenCount": 2000, "candidatesTokenCount": 5, "cachedContentTokenCount": 1500,
            "totalTokenCount": 2005}
    answer = {"candidates": [{"content": {"parts": [{"text": "hi"}], "role": "model"}, "finishReason": "STOP"}],
              "usageMetadata": meta}
    body, usage = response_to_openai(answer, "gemini", "chatcmpl-x", 1)
    assert usage is not None and (usage.prompt_tokens, usage.cached_tokens) == (2000, 1500)
    assert body["usage"]["prompt_tokens_details"] == {"cached_tokens": 1500}
    assert usage_from_gemini({**meta, "cachedContentTokenCount": 2001}) is None  # more cached than the prompt


def test_openai_cached_tokens_are_metered() -> None:
    adapter = ADAPTERS["openai"](ProviderSettings(name="o", kind="openai", base_url="http://x"))
    request = ApiRequest(Operation.CHAT, {"model": "m", "messages": []}, public_model="m")
    _, usage = adapter.from_upstream(request, (SAMPLES / "openai-chat-cached-tokens.json").read_bytes())
    assert (usage.prompt_tokens, usage.cached_tokens) == (1149, 1024)
