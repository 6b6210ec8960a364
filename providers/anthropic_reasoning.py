"""OpenAI `reasoning_effort`, `response_format` and strict tools -> Claude, per model
(`providers.model_rules`), and Claude's thinking blocks carried across turns.

| OpenAI                        | Claude                                                          |
|-------------------------------|-----------------------------------------------------------------|
| `reasoning_effort` none       | no `thinking` (thinking stays off)                              |
| minimal/low/medium/high       | budget models: `thinking {enabled, budget_tokens}` 1024/2048/   |
|                               | 8192/16384, `max_tokens` raised by the budget (capped at the    |
|                               | model's output limit); adaptive models (4.6+): `thinking        |
|                               | {adaptive}` + `output_config.effort` low/low/medium/high        |
|                               | a model that cannot think: 400 naming `reasoning_effort`        |
| `response_format` json_schema | strict on a model with structured outputs: `output_config.format`|
|                               | (grammar-enforced); otherwise a tool whose input is the answer, |
|                               | forced (alone), or offered with the client's tools under        |
|                               | `tool_choice: any`; its input comes back as `content`           |
| `response_format` json_object | the same tool with a free-form object schema                    |
| `tools[].function.strict`     | `strict: true` on models with structured outputs, else dropped  |

With thinking on, Claude refuses `temperature` other than 1, `top_k`, `top_p` below 0.95
and a forced `tool_choice` (manual thinking): a 400 naming the parameter here, or under
manual thinking the answer tool is offered under `tool_choice: auto` and the system
prompt asks for it.

Thinking blocks (with their signatures) and redacted-thinking blocks of an answer are
the turn's opaque state: `{"protocol": "anthropic", "thinking": [{"at": i, "block": ...}]}`
where `at` is the block's place among the answer's blocks. When the client sends that
turn back, they are put back at their places, unchanged. When the state is gone
(expired, or stored in another region) and the conversation continues a tool use,
thinking is left off for that request: Claude refuses a tool-use turn without its
thinking blocks while thinking is on, and accepts it with thinking off.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from providers.base import JSON, invalid_param
from providers.model_rules import EFFORTS, ClaudeRules

PROTOCOL = "anthropic"
BUDGETS = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16384}
ADAPTIVE_EFFORTS = {"minimal": "low", "low": "low", "medium": "medium", "high": "high"}
JSON_OBJECT_TOOL = "json_object"
MIN_BUDGET = 1024


@dataclass(frozen=True, slots=True)
class Thinking:
    config: JSON  # the `thinking` field
    effort: str | None  # output_config.effort
    budget: int  # 0 for adaptive thinking

    @property
    def manual(self) -> bool:
        return self.config.get("type") == "enabled"


def thinking_for(body: Mapping[str, Any], rules: ClaudeRules) -> Thinking | None:
    effort = body.get("reasoning_effort")
    if effort is None or effort == "none":
        if effort is not None and effort not in EFFORTS:
            raise invalid_param("reasoning_effort", f"reasoning_effort must be one of {', '.join(EFFORTS)}")
        return None
    if effort not in EFFORTS:
        raise invalid_param("reasoning_effort", f"reasoning_effort must be one of {', '.join(EFFORTS)}")
    if not rules.thinking:
        raise invalid_param("reasoning_effort", "this Claude model does not reason; leave reasoning_effort out")
    if rules.thinking == "budget":
        budget = BUDGETS[effort]
        return Thinking({"type": "enabled", "budget_tokens": budget}, None, budget)
    return Thinking({"type": "adaptive"}, ADAPTIVE_EFFORTS[effort], 0)


def fit_budget(thinking: Thinking, answer_tokens: int, model_cap: int) -> tuple[Thinking, int]:
    """(thinking, max_tokens): the answer's tokens plus the budget, within the model's cap;
    the budget shrinks to fit, down to the API's minimum of 1024 below max_tokens."""
    if not thinking.manual:
        return thinking, answer_tokens
    total = answer_tokens + thinking.budget
    if model_cap and total > model_cap:
        total = model_cap
    budget = min(thinking.budget, total - 1)
    if budget < MIN_BUDGET:
        raise invalid_param("max_tokens", f"max_tokens leaves no room for a thinking budget of {MIN_BUDGET} tokens")
    return Thinking({"type": "enabled", "budget_tokens": budget}, None, budget), total


def check_sampling(sampling: Mapping[str, Any], rules: ClaudeRules, thinking: Thinking | None) -> None:
    """Claude 4.5+ refuses temperature and top_p together; thinking refuses most sampling."""
    if rules.one_sampler and "temperature" in sampling and "top_p" in sampling:
        raise invalid_param("top_p", "this Claude model takes temperature or top_p, not both; send one "
                                     "(or name the other in the model's drop_params)")
    if thinking is None:
        return
    if sampling.get("temperature", 1) != 1:
        raise invalid_param("temperature", "with reasoning_effort, Claude takes temperature 1 only")
    if "top_k" in sampling:
        raise invalid_param("top_k", "with reasoning_effort, Claude does not take top_k")
    if sampling.get("top_p", 1) < 0.95:
        raise invalid_param("top_p", "with reasoning_effort, Claude takes top_p from 0.95 to 1 only")


# --- structured outputs --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Structured:
    """How `response_format` is asked of Claude: natively (`output_format`) or by an answer tool."""

    output_format: JSON | None = None
    tool: JSON | None = None

    @property
    def tool_name(self) -> str | None:
        return str(self.tool["name"]) if self.tool else None


def structured_for(body: Mapping[str, Any], native: bool) -> Structured:
    response_format = body.get("response_format")
    if response_format is None or response_format == {"type": "text"}:
        return Structured()
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "json_object":
        return Structured(tool={"name": JSON_OBJECT_TOOL, "description": "Answer with this tool: its input is the "
                                "answer, a JSON object.", "input_schema": {"type": "object"}})
    if kind != "json_schema":
        raise invalid_param("response_format", "response_format must be text, json_object or json_schema")
    spec = response_format.get("json_schema")
    spec = spec if isinstance(spec, dict) else {}
    schema = spec.get("schema") or {"type": "object", "properties": {}}
    if not spec.get("name") or not isinstance(schema, dict) or schema.get("type") != "object":
        raise invalid_param("response_format", "response_format json_schema needs a name and an object schema")
    if native and spec.get("strict") is True:
        return Structured(output_format={"type": "json_schema", "schema": schema})
    tool: JSON = {"name": spec["name"], "input_schema": schema}
    tool["description"] = spec.get("description") or "Answer with this tool: its input is the answer."
    return Structured(tool=tool)


def structured_tool_name(body: Mapping[str, Any]) -> str | None:
    """The answer tool's name, as the response side needs it (the native form has none)."""
    response_format = body.get("response_format")
    if not isinstance(response_format, dict):
        return None
    if response_format.get("type") == "json_object":
        return JSON_OBJECT_TOOL
    spec = response_format.get("json_schema")
    if response_format.get("type") == "json_schema" and isinstance(spec, dict) and spec.get("name"):
        return str(spec["name"])
    return None


def answer_tool_fields(structured: Structured, tools: list[JSON], choice: JSON | None,
                       thinking: Thinking | None) -> tuple[JSON, str | None]:
    """(`tools` and `tool_choice`, a system line) for an answer tool, with the client's tools
    if any: the answer tool alone is forced; with client tools the model must call one of
    them or the answer tool (`any`); manual thinking refuses both, so it is asked in words."""
    assert structured.tool is not None
    name = structured.tool_name
    ask = f"When you have the final answer, give it by calling the tool {name}."
    if thinking is not None and thinking.manual:
        return {"tools": [*tools, structured.tool], "tool_choice": {"type": "auto"}}, ask
    if not tools or (choice or {}).get("type") == "none":
        return {"tools": [*tools, structured.tool], "tool_choice": {"type": "tool", "name": name}}, None
    forced: JSON = choice if choice and choice.get("type") == "tool" else {"type": "any"}
    if choice and choice.get("disable_parallel_tool_use"):
        forced = {**forced, "disable_parallel_tool_use": True}
    return {"tools": [*tools, structured.tool], "tool_choice": forced}, ask


# --- thinking blocks across turns ----------------------------------------------------


def thinking_state(blocks: Mapping[int, JSON]) -> JSON | None:
    """The turn's opaque state: its thinking and redacted-thinking blocks, by their places."""
    kept = [{"at": i, "block": b} for i, b in sorted(blocks.items())
            if b.get("type") in ("thinking", "redacted_thinking")]
    return {"protocol": PROTOCOL, "thinking": kept} if kept else None


def with_thinking(blocks: list[JSON], state: JSON | None) -> list[JSON]:
    """An assistant turn's blocks with its thinking blocks put back at their places."""
    if not state or state.get("protocol") != PROTOCOL or not isinstance(state.get("thinking"), list):
        return blocks
    out = list(blocks)
    for entry in state["thinking"]:
        if isinstance(entry, dict) and isinstance(entry.get("block"), dict) and isinstance(entry.get("at"), int):
            out.insert(min(max(entry["at"], 0), len(out)), entry["block"])
    return out


def continues_tool_use_without_thinking(messages: list[JSON]) -> bool:
    """The request answers a tool use whose assistant turn has no thinking block."""
    if len(messages) < 2 or messages[-1]["role"] != "user":
        return False
    if not any(b.get("type") == "tool_result" for b in messages[-1]["content"]):
        return False
    turn = messages[-2]["content"]
    return not any(b.get("type") in ("thinking", "redacted_thinking") for b in turn)
