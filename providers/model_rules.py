"""What the current upstream models take and refuse, as data, by upstream model name.

The translators read these rules to turn `reasoning_effort` and `response_format` into
each model's own controls, and to answer a 400 naming a parameter the model would refuse
(before any upstream call) rather than let the upstream answer a 400 the client cannot
read. The route table can drop parameters per model (`drop_params`) before these apply.

Sources (checked 2026; each rule cites its page):
- Claude: https://platform.claude.com/docs/en/about-claude/models/migrating-to-claude-4
  ("use only temperature OR top_p, not both" from Sonnet 4.5 / Haiku 4.5 / Opus 4.1 on);
  https://platform.claude.com/docs/en/build-with-claude/extended-thinking (budget_tokens
  >= 1024 and < max_tokens; Opus 4.6 adaptive only; forced tool_choice refused with
  manual thinking; temperature/top_k refused, top_p >= 0.95 with thinking);
  https://platform.claude.com/docs/en/build-with-claude/effort (`output_config.effort`);
  https://platform.claude.com/docs/en/build-with-claude/structured-outputs (GA for Opus
  4.6, Sonnet 4.6, Sonnet 4.5, Opus 4.5, Haiku 4.5) and, on Vertex AI,
  https://docs.cloud.google.com/vertex-ai/generative-ai/docs/partner-models/claude/structured_outputs
  (Opus 4.7, Sonnet 4.6, Opus 4.6; the 4.5 models "coming soon");
  https://platform.claude.com/docs/en/about-claude/models/migrating-to-claude-4 (Opus 4.6+:
  prefilling the assistant message is not supported).
- Gemini: https://ai.google.dev/gemini-api/docs/thinking (2.5: `thinkingBudget`, 0 turns
  thinking off on Flash and Flash-Lite, 2.5 Pro 128..32768 and cannot turn it off; 3:
  `thinkingLevel`, Pro low/high, Flash minimal/low/medium/high, thinking cannot be off);
  https://ai.google.dev/gemini-api/docs/thought-signatures (Gemini 3 needs the function
  call's signature back); https://ai.google.dev/gemini-api/docs/structured-output
  (`responseJsonSchema` on 2.5 and later; `responseSchema` is the older OpenAPI subset).
- OpenAI reasoning models (o-series, GPT-5 but not gpt-5-chat): sampling parameters refused,
  https://platform.openai.com/docs/guides/reasoning.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

EFFORTS = ("none", "minimal", "low", "medium", "high")


@dataclass(frozen=True, slots=True)
class ClaudeRules:
    thinking: str  # "budget" (thinking.budget_tokens), "adaptive" (adaptive + effort), "both", "" (none)
    one_sampler: bool  # temperature or top_p, not both
    effort: bool  # takes output_config.effort
    structured_outputs: bool  # output_config.format json_schema (on the Claude API)
    structured_outputs_vertex: bool  # ... and on Vertex AI
    no_prefill: bool  # refuses a last assistant message (prefill)


@dataclass(frozen=True, slots=True)
class GeminiRules:
    thinking: str  # "budget" (2.5), "level" (3), "" (none)
    budget_range: tuple[int, int] = (0, 24576)
    can_turn_off: bool = True
    levels: tuple[str, ...] = ()
    json_schema: bool = False  # responseJsonSchema and parametersJsonSchema
    no_penalties: bool = False
    signatures_required: bool = False


_CLAUDE_VERSION = re.compile(r"claude-(?:(opus|sonnet|haiku)-(\d+)(?:-(\d))?(?![\d])|(\d)-(\d)-(sonnet|haiku|opus))")


def claude_rules(model: str) -> ClaudeRules:
    family, major, minor = _claude_version(model)
    version = (major, minor)
    thinking = ""
    if version >= (3, 7) and not (version < (4, 0) and family != "sonnet"):
        thinking = "budget"
    if version >= (4, 6):
        thinking = "adaptive" if family == "opus" else "both"
    structured = version >= (4, 5) and not (family == "opus" and version == (4, 1))
    return ClaudeRules(
        thinking=thinking,
        one_sampler=version >= (4, 5) or (family == "opus" and version == (4, 1)),
        effort=version >= (4, 6),
        structured_outputs=structured,
        structured_outputs_vertex=version >= (4, 6),
        no_prefill=family == "opus" and version >= (4, 6),
    )


def _claude_version(model: str) -> tuple[str, int, int]:
    """(family, major, minor) of a Claude model name, Anthropic's or Vertex's
    (`claude-sonnet-4-5@20250929`); (``, 0, 0) for a name it does not know."""
    match = _CLAUDE_VERSION.search(model.lower())
    if match is None:
        return "", 0, 0
    if match.group(1):
        minor = match.group(3)
        return match.group(1), int(match.group(2)), int(minor) if minor else 0
    return match.group(6), int(match.group(4)), int(match.group(5))


_GEMINI_VERSION = re.compile(r"gemini-(\d+)(?:\.(\d+))?-?(pro|flash-lite|flash)?")


def gemini_rules(model: str) -> GeminiRules:
    match = _GEMINI_VERSION.search(model.lower())
    if match is None:
        return GeminiRules(thinking="")
    major, minor, tier = int(match.group(1)), int(match.group(2) or 0), match.group(3) or ""
    if major >= 3:
        levels = ("low", "high") if tier == "pro" else ("minimal", "low", "medium", "high")
        return GeminiRules(thinking="level", can_turn_off=False, levels=levels, json_schema=True,
                           no_penalties=True, signatures_required=True)
    if (major, minor) >= (2, 5):
        if tier == "pro":
            return GeminiRules(thinking="budget", budget_range=(128, 32768), can_turn_off=False, json_schema=True,
                               no_penalties=True)
        low = 512 if tier == "flash-lite" else 0
        return GeminiRules(thinking="budget", budget_range=(low, 24576), json_schema=True, no_penalties=True)
    return GeminiRules(thinking="")


_OPENAI_REASONING = re.compile(r"(^|[/:-])(o\d+)(-|$)|(^|[/:])gpt-5(?!.*-chat)")
# Sampling parameters OpenAI's reasoning models refuse (at anything but their default).
OPENAI_REASONING_REFUSED = {
    "temperature": (None, 1), "top_p": (None, 1), "presence_penalty": (None, 0), "frequency_penalty": (None, 0),
    "logprobs": (None, False), "top_logprobs": (None, 0), "logit_bias": (None, {}),
}  # fmt: skip


def is_openai_reasoning_model(model: str) -> bool:
    return _OPENAI_REASONING.search(model.lower()) is not None
