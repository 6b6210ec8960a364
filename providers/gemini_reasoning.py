"""OpenAI `reasoning_effort` -> Gemini `thinkingConfig`, and Gemini's thought signatures and
function-call ids carried across turns.

| `reasoning_effort` | Gemini 2.5 (`thinkingBudget`)           | Gemini 3 (`thinkingLevel`)              |
|--------------------|-----------------------------------------|-----------------------------------------|
| none               | 0 (Flash, Flash-Lite); 2.5 Pro: 400     | lowest level (thinking cannot be off):  |
|                    | (it cannot turn thinking off)           | Flash `minimal`, Pro `low`              |
| minimal            | 1024 (Flash-Lite: at least 512)         | Flash `minimal`, Pro `low`              |
| low / medium / high| 2048 / 8192 / 24576 (within the model's | Flash `low`/`medium`/`high`; Pro `low`/ |
|                    | range; 2.5 Pro up to 32768)             | `high`/`high`                           |

Whenever `reasoning_effort` asks for thinking, `includeThoughts: true` is sent too, so the
thought summaries come back as `reasoning_content` (`thought: true` parts).

Opaque state of a model turn: `{"protocol": "gemini", "calls": {<our tool-call id>:
{"id": <Gemini's function-call id>, "thoughtSignature": ...}}, "text_signature": ...}`.
Gemini 3 needs a function call's signature back on the following requests
(https://ai.google.dev/gemini-api/docs/thought-signatures) and, when it gave the call an
id, that id on the call and on its `functionResponse`; a signature on a text part is
recommended back. Each is put back unchanged. When the state is gone (expired, stored in
another region, or a forged id) and the model needs signatures, the function call gets
the dummy signature that page documents for calls the model did not make
(`skip_thought_signature_validator`): the request is accepted, without the model's
earlier reasoning.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from providers.base import JSON, invalid_param
from providers.model_rules import EFFORTS, GeminiRules

PROTOCOL = "gemini"
BUDGETS = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 24576}
PRO_BUDGET_HIGH = 32768
DUMMY_SIGNATURE = "skip_thought_signature_validator"
MAX_KEPT_CHARS = 1 << 20  # the most answer text a recorder holds; past it the turn's state is given up


def thinking_config(body: Mapping[str, Any], rules: GeminiRules) -> JSON | None:
    effort = body.get("reasoning_effort")
    if effort is None:
        return None
    if effort not in EFFORTS:
        raise invalid_param("reasoning_effort", f"reasoning_effort must be one of {', '.join(EFFORTS)}")
    if not rules.thinking:
        if effort == "none":
            return None
        raise invalid_param("reasoning_effort", "this Gemini model does not reason; leave reasoning_effort out")
    if rules.thinking == "level":
        return {"thinkingLevel": _level(effort, rules.levels), "includeThoughts": effort != "none"}
    low, high = rules.budget_range
    if effort == "none":
        if not rules.can_turn_off:
            raise invalid_param("reasoning_effort", "this Gemini model cannot turn thinking off (reasoning_effort "
                                                    "none); ask for minimal")
        return {"thinkingBudget": 0}
    budget = PRO_BUDGET_HIGH if effort == "high" and high >= PRO_BUDGET_HIGH else BUDGETS[effort]
    return {"thinkingBudget": min(max(budget, low), high), "includeThoughts": True}


def _level(effort: str, levels: tuple[str, ...]) -> str:
    wanted = "minimal" if effort == "none" else effort
    order = ("minimal", "low", "medium", "high")
    # The nearest level the model has at or above the one asked for, else its highest.
    for level in order[order.index(wanted):]:
        if level in levels:
            return level
    return levels[-1]


# --- state across turns --------------------------------------------------------------


class TurnRecorder:
    """Collects the opaque state of one answer's parts as they come (whole or streamed)."""

    def __init__(self) -> None:
        self.calls: dict[str, JSON] = {}
        self.text_signature: str | None = None
        self.first_call_id: str | None = None
        self.texts: list[str] = []
        self.kept_chars = 0

    def call(self, call_id: str, part: Mapping[str, Any]) -> None:
        if self.first_call_id is None:
            self.first_call_id = call_id
        kept: JSON = {}
        function_call = part.get("functionCall") or {}
        if isinstance(function_call.get("id"), str):
            kept["id"] = function_call["id"]
        if isinstance(part.get("thoughtSignature"), str):
            kept["thoughtSignature"] = part["thoughtSignature"]
        if kept:
            self.calls[call_id] = kept

    def text(self, part: Mapping[str, Any]) -> None:
        text = str(part.get("text") or "")
        self.kept_chars += len(text)
        if self.kept_chars <= MAX_KEPT_CHARS:
            self.texts.append(text)
        if isinstance(part.get("thoughtSignature"), str) and self.text_signature is None:
            self.text_signature = part["thoughtSignature"]

    def state(self) -> JSON | None:
        if (not self.calls and self.text_signature is None) or self.kept_chars > MAX_KEPT_CHARS:
            return None
        out: JSON = {"protocol": PROTOCOL, "calls": self.calls}
        if self.text_signature is not None:
            out["text_signature"] = self.text_signature
        return out

    def message(self) -> JSON:
        """What the client's copy of this turn will look like, for its `turn_key`."""
        message: JSON = {"content": "".join(self.texts)}
        if self.first_call_id is not None:
            message["tool_calls"] = [{"id": self.first_call_id}]
        return message


def state_of(given: Mapping[str, JSON], key: str | None) -> JSON | None:
    state = given.get(key) if key else None
    return state if isinstance(state, dict) and state.get("protocol") == PROTOCOL else None


def call_state(state: JSON | None, call_id: Any) -> JSON:
    calls = state.get("calls") if state else None
    found = calls.get(call_id) if isinstance(calls, dict) and isinstance(call_id, str) else None
    return found if isinstance(found, dict) else {}


def sign_model_turn(parts: list[JSON], state: JSON | None, signatures_required: bool) -> None:
    """The turn's text signature back on its last text part; and, where the model needs
    signatures, the documented dummy on a turn's first function call that has none."""
    signature = state.get("text_signature") if state else None
    texts = [p for p in parts if "text" in p]
    if isinstance(signature, str):
        if texts:
            texts[-1]["thoughtSignature"] = signature
        else:
            parts.append({"text": "", "thoughtSignature": signature})
    calls = [p for p in parts if "functionCall" in p]
    if signatures_required and calls and not any("thoughtSignature" in p for p in calls):
        calls[0]["thoughtSignature"] = DUMMY_SIGNATURE
