"""What every simulator shares: the record of what it received, scripted faults, and
the deterministic text and token counts it answers with."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from providers.simulators.schema_instance import schema_instance


@dataclass(frozen=True, slots=True)
class Fault:
    """One scripted misbehaviour, consumed by the next request that matches `path`."""

    status: int | None = None  # answer this status with the protocol's error body
    retry_after: float | None = None  # with a `retry-after` header
    delay_first_byte: float = 0.0  # seconds before the response starts
    delay_between_chunks: float = 0.0  # seconds between stream chunks
    drop_before_response: bool = False  # close the connection without answering
    drop_after_chunks: int | None = None  # close a stream after this many chunks
    garbage: bool = False  # a body that is not the protocol
    endless: bool = False  # a stream that never ends
    no_usage: bool = False  # leave out the usage report the protocol normally carries
    path: str | None = None  # only requests whose path contains this


@dataclass(frozen=True, slots=True)
class Received:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class SimulatorState:
    received: list[Received] = field(default_factory=list)
    faults: deque[Fault] = field(default_factory=deque)
    # Set when a client closed a stream before it ended (disconnect tests).
    disconnects: int = 0
    stream_delay: float = 0.0  # default pacing between chunks
    # When set, a stream holds its second chunk until the event is set (from any thread):
    # a client can only set it after receiving the first chunk, which proves no buffering.
    hold_after_first_chunk: threading.Event | None = None

    def next_fault(self, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.path is None or fault.path in path:
                self.faults.remove(fault)
                return fault
        return None


SIMULATOR_STATE = web.AppKey("simulator_state", SimulatorState)


async def record(request: web.Request) -> tuple[SimulatorState, Fault | None, bytes]:
    """Record the request and return the fault scripted for it, if any."""
    state = request.app[SIMULATOR_STATE]
    body = await request.read()
    state.received.append(Received(request.method, request.path, dict(request.query), dict(request.headers), body))
    fault = state.next_fault(request.path)
    if fault and fault.delay_first_byte:
        await asyncio.sleep(fault.delay_first_byte)
    if fault and fault.drop_before_response:
        transport = request.transport
        if transport is not None:
            transport.close()
        raise asyncio.CancelledError
    return state, fault, body


_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def count_tokens(text: str) -> int:
    """A deterministic stand-in for a tokenizer: words and punctuation marks."""
    return len(_WORD.findall(text))


def reply_text(prompt: str, limit: int | None = None) -> str:
    """The simulated answer: deterministic, says it is simulated, and honours max tokens."""
    words = ("This is a simulated answer from llm-router's simulator. You said: " + prompt.strip()).split()
    if limit is not None:
        words = words[: max(1, limit)]
    return " ".join(words)


def split_words(text: str) -> list[str]:
    """Stream pieces: each word with its leading space, as real tokens come."""
    parts = text.split(" ")
    return [parts[0]] + [" " + p for p in parts[1:]]


def tool_arguments(schema: Any) -> dict[str, Any]:
    """Arguments valid for a tool's parameter schema (`schema_instance`); with nothing
    required, its first property is filled, as a model asked to call the tool would."""
    if not isinstance(schema, dict):
        return {}
    properties = schema.get("properties")
    if not schema.get("required") and isinstance(properties, dict) and properties:
        schema = {**schema, "required": list(properties)[:1]}
    arguments = schema_instance(schema)
    return arguments if isinstance(arguments, dict) else {}


async def wait_for_release(state: SimulatorState, timeout: float = 5.0) -> None:
    gate = state.hold_after_first_chunk
    if gate is None:
        return
    loop = asyncio.get_running_loop()
    if not await loop.run_in_executor(None, gate.wait, timeout):
        raise TimeoutError("the client never received the first chunk")


async def endless_body(request: web.Request, state: SimulatorState, fault: Fault) -> web.StreamResponse:
    """A JSON answer that never ends: whitespace, forever, until the client leaves."""
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    try:
        while True:
            await response.write(b" ")
            await asyncio.sleep(fault.delay_between_chunks or state.stream_delay or 0.01)
    except ConnectionError:  # the client went away
        state.disconnects += 1
    return response


def new_state_app(**kwargs: Any) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[SIMULATOR_STATE] = SimulatorState(**kwargs)
    return app
