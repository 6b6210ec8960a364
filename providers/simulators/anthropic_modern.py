"""The Anthropic simulator's rules for current Claude models, each as the documentation states it:

- Extended thinking (https://platform.claude.com/docs/en/build-with-claude/extended-thinking):
  `thinking {type: enabled, budget_tokens}` with budget_tokens >= 1024 and < max_tokens;
  with thinking, temperature only 1, no top_k, top_p from 0.95, and no tool_choice that
  forces tool use (manual mode); "thinking blocks must be passed back, unmodified, on the
  turn that continues a tool use", or the request is refused; a changed thinking text or
  signature is refused. `thinking {type: adaptive}` and `output_config.effort` on the 4.6
  models (https://platform.claude.com/docs/en/build-with-claude/adaptive-thinking).
- Sampling (https://platform.claude.com/docs/en/about-claude/models/migrating-to-claude-4):
  Claude Sonnet/Haiku 4.5, Opus 4.1 and later take temperature or top_p, not both.
- Prefill (same page, Opus 4.6): a last assistant message is refused.
- Structured outputs (https://platform.claude.com/docs/en/build-with-claude/structured-outputs):
  `output_config.format {type: json_schema, schema}` on Sonnet 4.5, Opus 4.5, Haiku 4.5 and
  the 4.6 models (on Vertex AI the 4.6 models); every object needs `additionalProperties:
  false`; the answer is one text block holding JSON of that schema.

Signatures here are a keyed hash of the thinking text, so a changed text is detected.
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

import orjson

from providers.simulators.schema_instance import schema_instance

JSON = dict[str, Any]
_SECRET = b"simulated-claude-signature-key"
_VERSION = re.compile(r"claude-(?:(opus|sonnet|haiku)-(\d+)(?:-(\d))?(?!\d)|(\d)-(\d)-(sonnet|haiku|opus))")


class ModernRejected(Exception):
    pass


def version(model: str) -> tuple[str, tuple[int, int]]:
    match = _VERSION.search(model.lower())
    if match is None:
        return "", (0, 0)
    if match.group(1):
        return match.group(1), (int(match.group(2)), int(match.group(3) or 0))
    return match.group(6), (int(match.group(4)), int(match.group(5)))


def signature(thinking: str) -> str:
    return base64.b64encode(hashlib.sha256(_SECRET + thinking.encode()).digest() * 3).decode()


def thinking_on(body: JSON) -> bool:
    thinking = body.get("thinking")
    return isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")


def validate_modern(body: JSON, model: str, vertex: bool) -> None:
    family, ver = version(model)
    one_sampler = ver >= (4, 5) or (family == "opus" and ver == (4, 1))
    if one_sampler and body.get("temperature") is not None and body.get("top_p") is not None:
        raise ModernRejected("`temperature` and `top_p` cannot both be specified for this model. "
                             "Please use only one.")
    messages = body.get("messages") or []
    if family == "opus" and ver >= (4, 6) and messages and messages[-1].get("role") == "assistant":
        raise ModernRejected("Prefilling assistant messages is not supported for this model.")
    _validate_thinking(body, ver)
    _validate_output_config(body, family, ver, vertex)
    _validate_thinking_blocks(messages, thinking_on(body))


def _validate_thinking(body: JSON, ver: tuple[int, int]) -> None:
    thinking = body.get("thinking")
    if thinking is None:
        return
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    if kind == "disabled":
        return
    if kind == "adaptive" and ver < (4, 6):
        raise ModernRejected("thinking.type: adaptive thinking is not supported on this model")
    if kind == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or budget < 1024:
            raise ModernRejected("thinking.enabled.budget_tokens: Input should be greater than or equal to 1024")
        if budget >= body["max_tokens"]:
            raise ModernRejected("`max_tokens` must be greater than `thinking.budget_tokens`.")
        choice = body.get("tool_choice") or {}
        if choice.get("type") in ("any", "tool"):
            raise ModernRejected("Thinking may not be enabled when tool_choice forces tool use.")
    elif kind != "adaptive":
        raise ModernRejected("thinking: Input tag does not match any of the expected tags: 'enabled', 'disabled', "
                             "'adaptive'")
    if body.get("temperature", 1) != 1:
        raise ModernRejected("`temperature` may only be set to 1 when thinking is enabled.")
    if body.get("top_k") is not None:
        raise ModernRejected("`top_k` may not be set when thinking is enabled.")
    if body.get("top_p", 1) < 0.95:
        raise ModernRejected("`top_p` must be greater than or equal to 0.95 when thinking is enabled.")


def _validate_output_config(body: JSON, family: str, ver: tuple[int, int], vertex: bool) -> None:
    config = body.get("output_config")
    if config is None:
        return
    if not isinstance(config, dict) or set(config) - {"format", "effort"}:
        raise ModernRejected("output_config: Extra inputs are not permitted")
    if "effort" in config and (ver < (4, 6) or config["effort"] not in ("low", "medium", "high", "max")):
        raise ModernRejected("output_config.effort: not supported for this model")
    form = config.get("format")
    if form is None:
        return
    supported = ver >= (4, 6) if vertex else ver >= (4, 5) and not (family == "opus" and ver == (4, 1))
    if not supported:
        raise ModernRejected("output_config.format: structured outputs are not supported for this model")
    if not isinstance(form, dict) or form.get("type") != "json_schema" or not isinstance(form.get("schema"), dict):
        raise ModernRejected("output_config.format: expected {type: json_schema, schema}")
    _require_closed_objects(form["schema"], "output_config.format.schema")


def _require_closed_objects(schema: Any, where: str) -> None:
    if isinstance(schema, dict):
        if schema.get("type") == "object" and schema.get("additionalProperties") is not False:
            raise ModernRejected(f"{where}: For 'object' type, 'additionalProperties' must be explicitly set to false")
        for key, value in schema.items():
            if key in ("properties", "$defs", "definitions") and isinstance(value, dict):
                for name, sub in value.items():
                    _require_closed_objects(sub, f"{where}.{key}.{name}")
            elif key in ("items", "anyOf", "allOf", "oneOf"):
                for sub in value if isinstance(value, list) else [value]:
                    _require_closed_objects(sub, f"{where}.{key}")


def _validate_thinking_blocks(messages: list[JSON], thinking: bool) -> None:
    for i, message in enumerate(messages):
        content = message.get("content")
        for j, block in enumerate(content if isinstance(content, list) else []):
            if block.get("type") == "thinking" and block.get("signature") != signature(str(block.get("thinking"))):
                raise ModernRejected(f"messages.{i}.content.{j}: Invalid `signature` in `thinking` block")
    if not thinking or len(messages) < 2:
        return
    last, turn = messages[-1], messages[-2]
    results = isinstance(last.get("content"), list) and any(b.get("type") == "tool_result" for b in last["content"])
    content = turn.get("content")
    blocks: list[JSON] = content if isinstance(content, list) else []
    tool_turn = results and turn.get("role") == "assistant" and any(b.get("type") == "tool_use" for b in blocks)
    if tool_turn and blocks[0].get("type") not in ("thinking", "redacted_thinking"):
        raise ModernRejected(
            f"messages.{len(messages) - 2}.content.0.type: Expected `thinking` or `redacted_thinking`, but "
            f"found `{blocks[0].get('type')}`. When `thinking` is enabled, a final `assistant` message must "
            "start with a thinking block (preceeding the lastmost set of `tool_use` and `tool_result` blocks).")


def thinking_block(prompt: str) -> JSON:
    text = f"The user asks: {prompt[:80]}. Let me work out the answer step by step."
    return {"type": "thinking", "thinking": text, "signature": signature(text)}


def structured_text(body: JSON) -> str | None:
    form = (body.get("output_config") or {}).get("format")
    if not isinstance(form, dict):
        return None
    return orjson.dumps(schema_instance(form["schema"])).decode()
