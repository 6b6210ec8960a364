"""The Gemini simulator's rules for the 2.5 and 3 models, each as the documentation states it:

- Thinking (https://ai.google.dev/gemini-api/docs/thinking): `thinkingBudget` on 2.5 (Pro
  128..32768, cannot be 0; Flash 0..24576; Flash-Lite 0 or 512..24576; -1 dynamic);
  `thinkingLevel` on 3 (Pro low/high, Flash minimal/low/medium/high); not both; models
  before 2.5 do not think. `includeThoughts` returns thought summaries as `thought: true`
  parts; thinking tokens are counted in `usageMetadata.thoughtsTokenCount`.
- Thought signatures (https://ai.google.dev/gemini-api/docs/thought-signatures): Gemini 3
  puts a `thoughtSignature` on the first function call of a turn (and on the last text
  part); every function call turn of the current turn must carry it back, unchanged, or
  the request is a 400; the documented dummy `skip_thought_signature_validator` (or
  `context_engineering_is_the_way_to_go`) is accepted for calls the model did not make.
  Gemini 3 gives function calls an `id`.
- Penalties: the 2.5 and 3 models answer a 400 to a non-zero presencePenalty or
  frequencyPenalty (observed; the generation config reference lists them without saying
  which models take them).
- JSON Schema (https://ai.google.dev/gemini-api/docs/structured-output): `responseJsonSchema`
  and `parametersJsonSchema` on 2.5 and later.
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

from providers.base import JSON, dumps
from providers.simulators.gemini_checks import invalid

_SECRET = b"simulated-gemini-signature-key"
DUMMIES = ("skip_thought_signature_validator", "context_engineering_is_the_way_to_go")
_VERSION = re.compile(r"gemini-(\d+)(?:\.(\d+))?-?(pro|flash-lite|flash)?")


def version(model: str) -> tuple[tuple[int, int], str]:
    match = _VERSION.search(model)
    if match is None:
        return (0, 0), ""
    return (int(match.group(1)), int(match.group(2) or 0)), match.group(3) or ""


def call_signature(call: JSON) -> str:
    digest = hashlib.sha256(_SECRET + str(call.get("name")).encode() + dumps(call.get("args") or {})).digest()
    return base64.b64encode(digest * 2).decode()


def text_signature(text: str) -> str:
    return base64.b64encode(hashlib.sha256(_SECRET + text.encode()).digest()).decode()


def validate_modern(payload: JSON, model: str) -> None:
    ver, tier = version(model)
    config = payload.get("generationConfig") or {}
    if ver >= (2, 5):
        for name in ("presencePenalty", "frequencyPenalty"):
            if config.get(name):
                raise invalid(f"Penalty is not enabled for models/{model}")
    elif "responseJsonSchema" in config or any("parametersJsonSchema" in d for t in payload.get("tools") or []
                                               for d in t.get("functionDeclarations") or []):
        raise invalid(f"JSON Schema (responseJsonSchema, parametersJsonSchema) is not supported by models/{model}")
    _validate_thinking(config.get("thinkingConfig"), ver, tier)
    if ver < (3, 0) and any("mediaResolution" in p for c in payload["contents"] for p in c["parts"]):
        # Per-part media resolution is Gemini 3's ("Media resolution": "Per part (Gemini 3 only)").
        raise invalid(f"Per-part media resolution is not supported by models/{model}")
    if ver >= (3, 0):
        _validate_signatures(payload["contents"])


def _validate_thinking(thinking: Any, ver: tuple[int, int], tier: str) -> None:
    if thinking is None:
        return
    if not isinstance(thinking, dict) or set(thinking) - {"thinkingBudget", "thinkingLevel", "includeThoughts"}:
        raise invalid("Invalid JSON payload received. Unknown name in 'generation_config.thinking_config'.")
    if ver < (2, 5):
        raise invalid("Thinking is not supported for this model.")
    if "thinkingBudget" in thinking and "thinkingLevel" in thinking:
        raise invalid("You cannot use both thinking_level and the legacy thinking_budget parameter.")
    level = thinking.get("thinkingLevel")
    if level is not None:
        levels = ("low", "high") if tier == "pro" else ("minimal", "low", "medium", "high")
        if ver < (3, 0) or str(level).lower() not in levels:
            raise invalid(f"Thinking level {level} is not supported for this model.")
    budget = thinking.get("thinkingBudget")
    if budget is not None and budget != -1:
        low, high = (128, 32768) if tier == "pro" else (0, 24576)
        if not isinstance(budget, int) or not low <= budget <= high or (tier == "flash-lite" and 0 < budget < 512):
            raise invalid(f"The thinking budget {budget} is invalid. Please choose a value between {low} and {high}.")


def _validate_signatures(contents: list[JSON]) -> None:
    """The current turn: everything after the last user turn with text."""
    start = max((i for i, c in enumerate(contents) if c.get("role") == "user"
                 and any("text" in p for p in c["parts"])), default=0)
    position = 0
    for content in contents[start:]:
        calls = [p for p in content["parts"] if "functionCall" in p]
        for n, part in enumerate(calls):
            position += 1
            sig = part.get("thoughtSignature")
            if n == 0 and sig is None:
                raise invalid(
                    "Function call is missing a thought_signature in functionCall parts. This is required for tools "
                    "to work correctly, and missing thought_signature may lead to degraded model performance. "
                    f"Additional data, function call `{part['functionCall'].get('name')}` , position {position}. "
                    "Please refer to https://ai.google.dev/gemini-api/docs/thought-signatures for more details.")
            if sig is not None and sig not in DUMMIES and sig != call_signature(part["functionCall"]):
                raise invalid("Corrupted thought signature.")


def thinks(payload: JSON, model: str) -> bool:
    ver, _ = version(model)
    thinking = (payload.get("generationConfig") or {}).get("thinkingConfig") or {}
    return ver >= (2, 5) and thinking.get("thinkingBudget") != 0


def modernise(parts: list[JSON], payload: JSON, model: str, prompt: str) -> list[JSON]:
    """An answer's parts as the model gives them: a thought summary first when asked for,
    and, on Gemini 3, call ids and the signature on the first call or the last text."""
    ver, _ = version(model)
    thinking = (payload.get("generationConfig") or {}).get("thinkingConfig") or {}
    out = [dict(p) for p in parts]
    if ver >= (3, 0):
        calls = [p for p in out if "functionCall" in p]
        for n, part in enumerate(calls):
            part["functionCall"] = {**part["functionCall"], "id": hashlib.sha256(
                f"{prompt}|{n}".encode()).hexdigest()[:8]}
        if calls:
            calls[0]["thoughtSignature"] = call_signature(calls[0]["functionCall"])
        elif out and "text" in out[-1]:
            out[-1]["thoughtSignature"] = text_signature(out[-1]["text"])
    if thinking.get("includeThoughts") and thinks(payload, model):
        out.insert(0, {"text": f"**Thinking it over**\n\nThe user asks: {prompt[:60]}", "thought": True})
    return out
