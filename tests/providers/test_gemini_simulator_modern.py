"""The Gemini simulator refuses what the 2.5 and 3 models refuse (providers/simulators/gemini_modern.py)."""

from __future__ import annotations

from typing import Any

import pytest

from providers.simulators.gemini import answer_for
from providers.simulators.gemini_checks import GeminiError
from providers.simulators.gemini_modern import validate_modern

USER = {"role": "user", "parts": [{"text": "What is the weather in Paris?"}]}
TOOLS = [{"functionDeclarations": [{"name": "get_weather", "parametersJsonSchema": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]}]


def payload(**extra: Any) -> dict[str, Any]:
    return {"contents": [USER], **extra}


@pytest.mark.parametrize(("extra", "model", "words"), [
    ({"generationConfig": {"presencePenalty": 0.5}}, "gemini-2.5-flash", "Penalty"),
    ({"generationConfig": {"thinkingConfig": {"thinkingBudget": 0}}}, "gemini-2.5-pro", "budget"),
    ({"generationConfig": {"thinkingConfig": {"thinkingLevel": "medium"}}}, "gemini-3-pro-preview", "level"),
    ({"generationConfig": {"thinkingConfig": {"thinkingLevel": "low"}}}, "gemini-2.5-flash", "level"),
    ({"generationConfig": {"thinkingConfig": {"thinkingBudget": 1024, "thinkingLevel": "low"}}},
     "gemini-3-flash-preview", "both"),
    ({"generationConfig": {"thinkingConfig": {"thinkingBudget": 1024}}}, "gemini-2.0-flash", "not supported"),
    ({"generationConfig": {"responseMimeType": "application/json", "responseJsonSchema": {"type": "object"}}},
     "gemini-2.0-flash", "JSON Schema"),
])
def test_refused_as_documented(extra: dict[str, Any], model: str, words: str) -> None:
    with pytest.raises(GeminiError) as caught:
        validate_modern(payload(**extra), model)
    assert words in caught.value.message


def test_gemini_3_signs_its_calls_and_wants_the_signature_back() -> None:
    first = answer_for(payload(tools=TOOLS), "gemini-3-pro-preview")
    [call] = first.parts
    assert call["thoughtSignature"] and call["functionCall"]["id"]
    response = {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "id": call["functionCall"]["id"],
                                                                "response": {"temp": 21}}}]}
    validate_modern(payload(tools=TOOLS, contents=[USER, {"role": "model", "parts": [call]}, response]),
                    "gemini-3-pro-preview")
    unsigned = {"functionCall": call["functionCall"]}
    with pytest.raises(GeminiError, match="missing a thought_signature"):
        validate_modern(payload(contents=[USER, {"role": "model", "parts": [unsigned]}, response]),
                        "gemini-3-pro-preview")
    forged = {**call, "thoughtSignature": "AAAA"}
    with pytest.raises(GeminiError, match="Corrupted"):
        validate_modern(payload(contents=[USER, {"role": "model", "parts": [forged]}, response]),
                        "gemini-3-pro-preview")
    dummy = {**call, "thoughtSignature": "skip_thought_signature_validator"}
    validate_modern(payload(contents=[USER, {"role": "model", "parts": [dummy]}, response]), "gemini-3-pro-preview")
    validate_modern(payload(contents=[USER, {"role": "model", "parts": [unsigned]}, response]), "gemini-2.5-flash")


def test_thinking_models_count_thoughts_and_summarise_when_asked() -> None:
    config = {"thinkingConfig": {"thinkingBudget": 1024, "includeThoughts": True}}
    answer = answer_for(payload(generationConfig=config), "gemini-2.5-flash")
    assert answer.parts[0]["thought"] is True
    assert answer.response()["usageMetadata"]["thoughtsTokenCount"] > 0
    off = answer_for(payload(generationConfig={"thinkingConfig": {"thinkingBudget": 0}}), "gemini-2.5-flash")
    assert "thoughtsTokenCount" not in off.response()["usageMetadata"]
