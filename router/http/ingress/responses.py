"""OpenAI's Responses API (`POST {ep}/responses`) as an ingress around the canonical chat form.

A `ResponsesCall` is made per request: it knows the client's Responses body and the
conversation it continues (`previous_response_id`), turns them into the canonical chat
body, and turns the chat answer (or stream) back into the Response object (or the
Responses event sequence). Where the upstream serves the Responses API itself, the
answer is already a Response and is only relayed. The final Response object is kept in
`result`, for the handler to store. Errors are OpenAI's shape.
"""

from __future__ import annotations

import orjson

from providers.base import JSON, ApiRequest
from providers.registry import RESPONSES_PROTOCOL
from router.errors import OPENAI_ERRORS, ErrorShape, GatewayError
from router.http.ingress import responses_output as out
from router.http.ingress.responses_request import built_in_tool, input_items, to_chat
from router.http.ingress.responses_stream import PassthroughStream, ResponsesStream
from router.upstream.relay import ClientStream


class ResponsesIngress:
    """The route's ingress: its protocol and error shape (the per-request work is a `ResponsesCall`)."""

    name = "responses"
    protocol = RESPONSES_PROTOCOL
    errors: ErrorShape = OPENAI_ERRORS

    # A request without stored state (the handler makes a `ResponsesCall` with it instead).
    def to_canonical(self, body: JSON) -> JSON:
        return to_chat(body, [])

    def answer(self, body: bytes, request: ApiRequest) -> bytes:
        return ResponsesCall(request.source or {}, [], None, False).answer(body, request)

    def client_stream(self, request: ApiRequest) -> ClientStream:
        return ResponsesCall(request.source or {}, [], None, False).client_stream(request)


RESPONSES = ResponsesIngress()


class ResponsesCall:
    name = RESPONSES.name
    protocol = RESPONSES.protocol
    errors: ErrorShape = OPENAI_ERRORS

    def __init__(self, body: JSON, history: list[JSON], previous_id: str | None, native_model: bool) -> None:
        self.body = body
        self.history = history
        self.previous_id = previous_id
        # Every target of the requested model serves the Responses API itself: what chat cannot
        # express is theirs to judge, not a 400 here.
        self.native_model = native_model
        self.native_only: tuple[str, str] | None = built_in_tool(body)
        self.input = input_items(body)
        self.response_id = out.new_id("resp")
        self.result: JSON | None = None

    def to_canonical(self, body: JSON) -> JSON:
        try:
            return to_chat(body, self.history)
        except GatewayError as error:
            if not self.native_model or error.param is None:
                raise
            self.native_only = (error.param, error.message)
            # Never sent (only native targets may serve it): the size of the prompt, for the estimate.
            return {"model": body.get("model"), "stream": bool(body.get("stream")),
                    "messages": [{"role": "user", "content": orjson.dumps(body.get("input")).decode()}]}

    def source(self) -> JSON:
        """The client's body as a native upstream gets it: the conversation inlined, since the
        ids of stored responses are the gateway's own."""
        source = {k: v for k, v in self.body.items() if k != "previous_response_id"}
        if self.history:
            source["input"] = [*self.history, *self.input]
        return source

    def _done(self, response: JSON) -> None:
        self.result = response

    def answer(self, body: bytes, request: ApiRequest) -> bytes:
        if request.passthrough:
            data = orjson.loads(body)
            if isinstance(data, dict):
                data["previous_response_id"] = self.previous_id
                self._done(data)
                return orjson.dumps(data)
            return body
        chat = orjson.loads(body)
        base = out.skeleton(self.body, self.response_id, request.public_model, self.previous_id)
        response = out.response_of(chat if isinstance(chat, dict) else {}, base)
        self._done(response)
        return orjson.dumps(response)

    def client_stream(self, request: ApiRequest) -> ClientStream:
        if request.passthrough:
            return PassthroughStream(self._done)
        base = out.skeleton(self.body, self.response_id, request.public_model, self.previous_id)
        return ResponsesStream(base, self._done)
