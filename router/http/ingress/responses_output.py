"""The Response object of OpenAI's Responses API, built from a canonical chat answer.

The request's settings are echoed the way OpenAI echoes them (and, where OpenAI leaves
a field out, as the Open Responses schema requires it: numeric `temperature`/`top_p`,
`presence_penalty`, `frequency_penalty`, `top_logprobs`, `service_tier`...).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from providers.base import JSON

MAX_TOKENS = 1 << 40


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}{uuid.uuid4().hex[:16]}"


def obj(value: Any) -> JSON:
    return value if isinstance(value, dict) else {}


def _count(value: Any) -> int:
    """A token count from an upstream, range-checked (anything else counts as 0)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TOKENS:
        return 0
    return value


def _number(value: Any, default: float) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else default


def _tool_echo(tool: Any) -> Any:
    if isinstance(tool, dict) and tool.get("type") == "function":
        return {"type": "function", "name": tool.get("name"), "description": tool.get("description"),
                "parameters": tool.get("parameters"), "strict": bool(tool.get("strict", True))}
    return tool


def skeleton(request: JSON, response_id: str, model: str, previous_id: str | None) -> JSON:
    """The Response object before any output: what `response.created` carries."""
    text = obj(request.get("text"))
    reasoning = obj(request.get("reasoning"))
    return {
        "id": response_id, "object": "response", "created_at": int(time.time()), "completed_at": None,
        "status": "in_progress",
        "background": False, "error": None, "incomplete_details": None,
        "instructions": request.get("instructions"), "max_output_tokens": request.get("max_output_tokens"),
        "max_tool_calls": request.get("max_tool_calls"), "model": model, "output": [],
        "parallel_tool_calls": request.get("parallel_tool_calls", True) is not False,
        "previous_response_id": previous_id, "prompt_cache_key": request.get("prompt_cache_key"),
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "safety_identifier": request.get("safety_identifier"), "service_tier": "default",
        "store": request.get("store", True) is not False,
        "temperature": _number(request.get("temperature"), 1.0), "top_p": _number(request.get("top_p"), 1.0),
        "presence_penalty": _number(request.get("presence_penalty"), 0.0),
        "frequency_penalty": _number(request.get("frequency_penalty"), 0.0),
        "text": {"format": text.get("format") or {"type": "text"}, "verbosity": text.get("verbosity", "medium")},
        "tool_choice": request.get("tool_choice", "auto"),
        "tools": [_tool_echo(t) for t in request.get("tools") or []],
        "top_logprobs": int(_number(request.get("top_logprobs"), 0)),
        "truncation": request.get("truncation", "disabled"), "usage": None, "user": request.get("user"),
        "metadata": request.get("metadata") or {},
    }


def usage_of(raw: Any) -> JSON | None:
    """Chat `usage` as Responses `usage`."""
    if not isinstance(raw, dict):
        return None
    prompt, completion = _count(raw.get("prompt_tokens")), _count(raw.get("completion_tokens"))
    prompt_details = raw.get("prompt_tokens_details")
    completion_details = raw.get("completion_tokens_details")
    cached = _count(prompt_details.get("cached_tokens")) if isinstance(prompt_details, dict) else 0
    reasoning = _count(completion_details.get("reasoning_tokens")) if isinstance(completion_details, dict) else 0
    return {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": cached},
            "output_tokens": completion, "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": prompt + completion}


INCOMPLETE_REASONS = {"length": "max_output_tokens", "content_filter": "content_filter"}


def finish(response: JSON, finish_reason: str | None, usage: JSON | None) -> JSON:
    """Set the final `status`, `incomplete_details` and `usage`."""
    reason = INCOMPLETE_REASONS.get(finish_reason or "")
    response["status"] = "incomplete" if reason else "completed"
    response["completed_at"] = int(time.time())
    response["incomplete_details"] = {"reason": reason} if reason else None
    response["usage"] = usage
    return response


def message_item(item_id: str, text: str, status: str = "completed", refusal: bool = False) -> JSON:
    part: JSON = ({"type": "refusal", "refusal": text} if refusal
                  else {"type": "output_text", "text": text, "annotations": [], "logprobs": []})
    return {"id": item_id, "type": "message", "status": status, "role": "assistant", "content": [part]}


def reasoning_item(item_id: str, summary: str, extra: JSON | None = None) -> JSON:
    item: JSON = {"id": item_id, "type": "reasoning",
                  "summary": [{"type": "summary_text", "text": summary}] if summary else []}
    if extra:
        item.update(extra)
    return item


def function_call_item(item_id: str, call_id: str, name: str, arguments: str, status: str = "completed") -> JSON:
    return {"id": item_id, "type": "function_call", "status": status, "arguments": arguments, "call_id": call_id,
            "name": name}


def output_of(message: JSON) -> list[JSON]:
    """A chat answer's message as output items: reasoning, then the text (or refusal), then tool calls."""
    items: list[JSON] = []
    reasoning = message.get("reasoning_content")
    if isinstance(reasoning, str) and reasoning:
        items.append(reasoning_item(new_id("rs"), reasoning))
    content = message.get("content")
    if isinstance(content, str) and content:
        items.append(message_item(new_id("msg"), content))
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal:
        items.append(message_item(new_id("msg"), refusal, refusal=True))
    for call in message.get("tool_calls") or []:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            continue
        items.append(function_call_item(new_id("fc"), str(call.get("id") or new_id("call")),
                                        str(function.get("name") or ""), str(function.get("arguments") or "")))
    return items


def response_of(chat: JSON, base: JSON) -> JSON:
    """A whole chat.completion answer as the Response object `base` (a skeleton) becomes."""
    choices = chat.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    message = obj(choice.get("message"))
    base["output"] = output_of(message)
    return finish(base, choice.get("finish_reason"), usage_of(chat.get("usage")))
