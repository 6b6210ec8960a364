"""Responses API streams: canonical chat chunks in, the Responses event sequence out.

`response.created`, `response.in_progress`, then per output item `output_item.added`,
its deltas (`reasoning_summary_*`, `content_part.added` + `output_text.delta`,
`function_call_arguments.delta`), their `.done` events and `output_item.done`; at the end
`response.completed` (or `.incomplete`) with the whole Response; a failure is an `error`
event then `response.failed`. Every event carries `sequence_number`. Each chunk is
translated as it comes; nothing waits for the end but the final Response object.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from providers.base import JSON, UpstreamError
from router.http.ingress import responses_output as out

Event = tuple[str, JSON]


class _Text:
    """The open message item (or its refusal part)."""

    __slots__ = ("item_id", "index", "parts", "refusal")

    def __init__(self, item_id: str, index: int, refusal: bool = False) -> None:
        self.item_id, self.index, self.parts, self.refusal = item_id, index, [""], refusal


class _Call:
    __slots__ = ("item_id", "index", "call_id", "name", "arguments")

    def __init__(self, item_id: str, index: int, call_id: str, name: str) -> None:
        self.item_id, self.index, self.call_id, self.name, self.arguments = item_id, index, call_id, name, ""


class ResponsesStream:
    """One translated stream. `on_done` gets the final Response object (to be stored)."""

    def __init__(self, response: JSON, on_done: Callable[[JSON], None]) -> None:
        self.response = response
        self.on_done = on_done
        self.sequence = 0
        self.started = False
        self.reasoning: _Text | None = None
        self.text: _Text | None = None
        self.calls: dict[int, _Call] = {}
        self.finish_reason: str | None = None
        self.usage: JSON | None = None

    # -- framing -----------------------------------------------------------------

    def _frame(self, events: list[Event]) -> bytes:
        frames = []
        for kind, fields in events:
            payload = orjson.dumps({"type": kind, "sequence_number": self.sequence, **fields})
            self.sequence += 1
            frames.append(b"event: " + kind.encode() + b"\ndata: " + payload + b"\n\n")
        return b"".join(frames)

    def _start(self, events: list[Event]) -> None:
        if not self.started:
            self.started = True
            snapshot = dict(self.response)
            events.append(("response.created", {"response": snapshot}))
            events.append(("response.in_progress", {"response": snapshot}))

    # -- ClientStream --------------------------------------------------------------

    def chunks(self, payloads: list[bytes]) -> bytes:
        events: list[Event] = []
        self._start(events)
        for payload in payloads:
            self._chunk(orjson.loads(payload), events)
        return self._frame(events)

    def end(self, payloads: list[bytes]) -> bytes:
        events: list[Event] = []
        self._start(events)
        for payload in payloads:
            self._chunk(orjson.loads(payload), events)
        self._close_all(events)
        final = out.finish(self.response, self.finish_reason, self.usage)
        events.append((f"response.{final['status']}", {"response": final}))
        self.on_done(final)
        return self._frame(events)

    def error(self, error: UpstreamError) -> bytes:
        events: list[Event] = []
        self._start(events)
        self._close_all(events)
        code = error.code or error.type
        events.append(("error", {"code": code, "message": error.message, "param": error.param}))
        self.response.update(status="failed", error={"code": code, "message": error.message}, usage=self.usage)
        events.append(("response.failed", {"response": self.response}))
        return self._frame(events)

    # -- chunks --------------------------------------------------------------------

    def _chunk(self, chunk: Any, events: list[Event]) -> None:
        if not isinstance(chunk, dict):
            return
        usage = out.usage_of(chunk.get("usage"))
        if usage is not None:
            self.usage = usage
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = out.obj(choice.get("delta"))
            reasoning = delta.get("reasoning_content")
            if isinstance(reasoning, str) and reasoning:
                self._reasoning_delta(reasoning, events)
            content = delta.get("content")
            if isinstance(content, str) and content:
                self._text_delta(content, events)
            refusal = delta.get("refusal")
            if isinstance(refusal, str) and refusal:
                self._text_delta(refusal, events, refusal=True)
            for call in delta.get("tool_calls") or []:
                if isinstance(call, dict):
                    self._call_delta(call, events)
            if isinstance(choice.get("finish_reason"), str):
                self.finish_reason = choice["finish_reason"]

    def _next_index(self) -> int:
        return len(self.response["output"]) + (self.reasoning is not None) + (self.text is not None) + len(self.calls)

    def _reasoning_delta(self, text: str, events: list[Event]) -> None:
        if self.reasoning is None:
            self._close_all(events)
            self.reasoning = _Text(out.new_id("rs"), self._next_index())
            r = self.reasoning
            events.append(("response.output_item.added", {"output_index": r.index, "item": out.reasoning_item(
                r.item_id, "")}))
            events.append(("response.reasoning_summary_part.added", {
                "item_id": r.item_id, "output_index": r.index, "summary_index": 0,
                "part": {"type": "summary_text", "text": ""}}))
        r = self.reasoning
        r.parts[0] += text
        events.append(("response.reasoning_summary_text.delta", {
            "item_id": r.item_id, "output_index": r.index, "summary_index": 0, "delta": text}))

    def _text_delta(self, text: str, events: list[Event], refusal: bool = False) -> None:
        if self.text is None:
            self._close_all(events)
            self.text = _Text(out.new_id("msg"), self._next_index(), refusal)
            t = self.text
            item = out.message_item(t.item_id, "", "in_progress")
            item["content"] = []
            events.append(("response.output_item.added", {"output_index": t.index, "item": item}))
            part = {"type": "refusal", "refusal": ""} if refusal else {
                "type": "output_text", "text": "", "annotations": [], "logprobs": []}
            events.append(("response.content_part.added", {
                "item_id": t.item_id, "output_index": t.index, "content_index": 0, "part": part}))
        t = self.text
        t.parts[0] += text
        kind = "response.refusal.delta" if refusal else "response.output_text.delta"
        fields: JSON = {"item_id": t.item_id, "output_index": t.index, "content_index": 0, "delta": text}
        if not refusal:
            fields["logprobs"] = []
        events.append((kind, fields))

    def _call_delta(self, call: JSON, events: list[Event]) -> None:
        index = call.get("index", 0)
        index = index if isinstance(index, int) else 0
        function = out.obj(call.get("function"))
        if index not in self.calls:
            self._close_text(events)
            c = _Call(out.new_id("fc"), self._next_index(), str(call.get("id") or out.new_id("call")),
                      str(function.get("name") or ""))
            self.calls[index] = c
            events.append(("response.output_item.added", {"output_index": c.index, "item": out.function_call_item(
                c.item_id, c.call_id, c.name, "", "in_progress")}))
        c = self.calls[index]
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            c.arguments += arguments
            events.append(("response.function_call_arguments.delta", {
                "item_id": c.item_id, "output_index": c.index, "delta": arguments}))

    # -- closing items -------------------------------------------------------------

    def _close_all(self, events: list[Event]) -> None:
        self._close_text(events)
        for c in sorted(self.calls.values(), key=lambda call: call.index):
            events.append(("response.function_call_arguments.done", {
                "item_id": c.item_id, "output_index": c.index, "arguments": c.arguments}))
            self._done_item(c.index, out.function_call_item(c.item_id, c.call_id, c.name, c.arguments), events)
        self.calls = {}

    def _close_text(self, events: list[Event]) -> None:
        r, self.reasoning = self.reasoning, None
        if r is not None:
            part = {"type": "summary_text", "text": r.parts[0]}
            base = {"item_id": r.item_id, "output_index": r.index, "summary_index": 0}
            events.append(("response.reasoning_summary_text.done", {**base, "text": r.parts[0]}))
            events.append(("response.reasoning_summary_part.done", {**base, "part": part}))
            self._done_item(r.index, out.reasoning_item(r.item_id, r.parts[0]), events)
        t, self.text = self.text, None
        if t is not None:
            item = out.message_item(t.item_id, t.parts[0], refusal=t.refusal)
            base = {"item_id": t.item_id, "output_index": t.index, "content_index": 0}
            part = item["content"][0]
            if part["type"] == "output_text":
                events.append(("response.output_text.done", {**base, "text": t.parts[0], "logprobs": []}))
            events.append(("response.content_part.done", {**base, "part": part}))
            self._done_item(t.index, item, events)

    def _done_item(self, index: int, item: JSON, events: list[Event]) -> None:
        self.response["output"].append(item)
        events.append(("response.output_item.done", {"output_index": index, "item": item}))


class PassthroughStream:
    """A native upstream's Responses events, relayed as they are (the adapter rewrote `model`);
    `on_done` gets the Response object of the terminal event."""

    def __init__(self, on_done: Callable[[JSON], None]) -> None:
        self.on_done = on_done
        self.sequence = 0

    def _frame(self, payloads: list[bytes]) -> bytes:
        frames = []
        for payload in payloads:
            event = orjson.loads(payload)
            kind = str(event.get("type"))
            if kind in ("response.completed", "response.incomplete", "response.failed") and isinstance(
                    event.get("response"), dict):
                self.on_done(event["response"])
            self.sequence += 1
            frames.append(b"event: " + kind.encode() + b"\ndata: " + payload + b"\n\n")
        return b"".join(frames)

    def chunks(self, payloads: list[bytes]) -> bytes:
        return self._frame(payloads)

    def end(self, payloads: list[bytes]) -> bytes:
        return self._frame(payloads)

    def error(self, error: UpstreamError) -> bytes:
        payload = orjson.dumps({"type": "error", "sequence_number": self.sequence, "code": error.code or error.type,
                                "message": error.message, "param": error.param})
        return b"event: error\ndata: " + payload + b"\n\n"
