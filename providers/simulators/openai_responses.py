"""The simulated OpenAI Responses API (`POST /v1/responses`, Azure's `/openai/responses`).

The answer is planned like a chat answer (the same tool calls, structured output and
text); this module turns the Responses request into that chat-like request and the
planned answer into a Response object or the event sequence of the recorded samples
(`response.created`, `.in_progress`, per item `output_item.added`, the reasoning summary,
content part and text or argument deltas, their `.done` events, `output_item.done`, then
`response.completed` or `.incomplete`), each event with its `sequence_number`.
"""

from __future__ import annotations

import base64
import time
import uuid
from typing import Any

from providers.simulators.common import split_words

Event = tuple[str, dict[str, Any]]


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}{uuid.uuid4().hex[:16]}"


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and "text" in p)
    return ""


def chat_request(body: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The chat-like request and messages the shared answer planner takes."""
    raw = body.get("input")
    items = [{"role": "user", "content": raw}] if isinstance(raw, str) else raw if isinstance(raw, list) else []
    messages: list[dict[str, Any]] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        kind = item.get("type", "message")
        if kind == "message":
            messages.append({"role": item.get("role"), "content": _text(item.get("content"))})
        elif kind == "function_call_output":
            messages.append({"role": "tool", "content": _text(item.get("output"))})
        elif kind == "function_call":
            messages.append({"role": "assistant", "content": None})
    tools = [{"type": "function", "function": t} for t in body.get("tools") or []
             if isinstance(t, dict) and t.get("type") == "function"]
    chat: dict[str, Any] = {"tools": tools, "parallel_tool_calls": body.get("parallel_tool_calls")}
    choice = body.get("tool_choice")
    chat["tool_choice"] = {"function": {"name": choice.get("name")}} if isinstance(choice, dict) else choice
    fmt = (body.get("text") or {}).get("format") if isinstance(body.get("text"), dict) else None
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        chat["response_format"] = {"type": "json_schema", "json_schema": {"schema": fmt.get("schema")}}
    elif isinstance(fmt, dict) and fmt.get("type") == "json_object":
        chat["response_format"] = {"type": "json_object"}
    if body.get("max_output_tokens") is not None:
        chat["max_completion_tokens"] = body["max_output_tokens"]
    return chat, messages


def _reasoning(body: dict[str, Any]) -> dict[str, Any] | None:
    """A reasoning item where reasoning is asked for: a summary when one is, and the opaque
    state when `include` asks for `reasoning.encrypted_content`."""
    reasoning = body.get("reasoning")
    if not isinstance(reasoning, dict) or reasoning.get("effort") in (None, "none"):
        return None
    item: dict[str, Any] = {"id": _id("rs"), "type": "reasoning", "summary": []}
    if "reasoning.encrypted_content" in (body.get("include") or []):
        item["encrypted_content"] = "gAAAAA" + base64.urlsafe_b64encode(uuid.uuid4().bytes * 4).decode()
    if reasoning.get("summary"):
        item["summary"] = [{"type": "summary_text", "text": "**Thinking it over**\n\nThe simulator considered it."}]
    return item


def response_object(body: dict[str, Any], model: str, text: str, calls: list[dict[str, Any]], finish: str,
                    usage: dict[str, int]) -> dict[str, Any]:
    reasoning = _reasoning(body)
    output: list[dict[str, Any]] = [reasoning] if reasoning else []
    if text:
        output.append({"id": _id("msg"), "type": "message", "status": "completed", "role": "assistant", "content": [
            {"type": "output_text", "annotations": [], "logprobs": [], "text": text}]})
    output.extend({"id": _id("fc"), "type": "function_call", "status": "completed",
                   "arguments": c["function"]["arguments"], "call_id": c["id"], "name": c["function"]["name"]}
                  for c in calls)
    reasoning_tokens = 16 if reasoning else 0
    incomplete = finish == "length"
    return {
        "id": _id("resp"), "object": "response", "created_at": int(time.time()),
        "status": "incomplete" if incomplete else "completed", "background": False, "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
        "instructions": body.get("instructions"), "max_output_tokens": body.get("max_output_tokens"),
        "max_tool_calls": None, "model": model, "output": output,
        "parallel_tool_calls": body.get("parallel_tool_calls") is not False,
        "previous_response_id": body.get("previous_response_id"), "prompt_cache_key": None,
        "reasoning": {"effort": (body.get("reasoning") or {}).get("effort"),
                      "summary": (body.get("reasoning") or {}).get("summary")},
        "safety_identifier": None, "service_tier": "default", "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0), "text": body.get("text") or {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"), "tools": body.get("tools") or [], "top_logprobs": 0,
        "top_p": body.get("top_p", 1.0), "truncation": "disabled",
        "usage": {"input_tokens": usage["prompt_tokens"], "input_tokens_details": {"cached_tokens": 0},
                  "output_tokens": usage["completion_tokens"] + reasoning_tokens,
                  "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
                  "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"] + reasoning_tokens},
        "user": None, "metadata": body.get("metadata") or {},
    }


def _item_events(index: int, item: dict[str, Any]) -> list[Event]:
    base = {"item_id": item["id"], "output_index": index}
    if item["type"] == "reasoning":
        events: list[Event] = [("response.output_item.added", {"output_index": index, "item": {**item, "summary": []}})]
        for s, part in enumerate(item["summary"]):
            events.append(("response.reasoning_summary_part.added", {
                **base, "summary_index": s, "part": {"type": "summary_text", "text": ""}}))
            events.extend(("response.reasoning_summary_text.delta", {**base, "summary_index": s, "delta": piece})
                          for piece in split_words(part["text"]))
            events.append(("response.reasoning_summary_text.done", {**base, "summary_index": s, "text": part["text"]}))
            events.append(("response.reasoning_summary_part.done", {**base, "summary_index": s, "part": part}))
    elif item["type"] == "message":
        part = item["content"][0]
        events = [("response.output_item.added", {"output_index": index, "item": {
            **item, "status": "in_progress", "content": []}}),
            ("response.content_part.added", {**base, "content_index": 0, "part": {**part, "text": ""}})]
        events.extend(("response.output_text.delta", {**base, "content_index": 0, "delta": piece, "logprobs": []})
                      for piece in split_words(part["text"]))
        events.append(("response.output_text.done", {**base, "content_index": 0, "text": part["text"],
                                                      "logprobs": []}))
        events.append(("response.content_part.done", {**base, "content_index": 0, "part": part}))
    else:
        args = item["arguments"]
        events = [("response.output_item.added", {"output_index": index, "item": {
            **item, "status": "in_progress", "arguments": ""}})]
        events.extend(("response.function_call_arguments.delta", {**base, "delta": args[j:j + 8]})
                      for j in range(0, len(args), 8))
        events.append(("response.function_call_arguments.done", {**base, "arguments": args}))
    events.append(("response.output_item.done", {"output_index": index, "item": item}))
    return events


def stream_events(response: dict[str, Any]) -> list[Event]:
    """The Response as the event sequence of a stream (without sequence numbers yet)."""
    begun = {**response, "status": "in_progress", "output": [], "usage": None, "incomplete_details": None}
    events: list[Event] = [("response.created", {"response": begun}), ("response.in_progress", {"response": begun})]
    for index, item in enumerate(response["output"]):
        events.extend(_item_events(index, item))
    events.append((f"response.{response['status']}", {"response": response}))
    return events
