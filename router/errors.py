"""Errors: the gateway's own failures, and the shape a client protocol answers them in."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import orjson
from aiohttp import web

_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 403: "invalid_request_error",
          404: "invalid_request_error", 405: "invalid_request_error", 413: "invalid_request_error",
          429: "rate_limit_error"}


class GatewayError(Exception):
    """A failure the gateway itself decided on (bad input, auth, limits, no route)."""

    def __init__(self, status: int, message: str, *, type: str | None = None, param: str | None = None,
                 code: str | None = None, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type or _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
        self.param = param
        self.code = code
        self.headers = dict(headers or {})

    def body(self) -> bytes:
        return error_body(self.message, self.type, self.param, self.code)


def error_body(message: str, type: str, param: str | None = None, code: str | None = None) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": type, "param": param, "code": code}})


def error_response(status: int, message: str, *, type: str | None = None, param: str | None = None,
                   code: str | None = None, headers: Mapping[str, str] | None = None) -> web.Response:
    error = GatewayError(status, message, type=type, param=param, code=code, headers=headers)
    return web.Response(status=status, body=error.body(), content_type="application/json", headers=error.headers)


class ErrorShape(Protocol):
    """How a client protocol answers a failure: its own JSON shape, with its own statuses."""

    def error_response(self, status: int, message: str, *, type: str | None = None, param: str | None = None,
                       code: str | None = None, headers: Mapping[str, str] | None = None) -> web.Response: ...


class OpenAIErrors:
    """`{"error": {"message", "type", "param", "code"}}`: the OpenAI API's errors, and the
    gateway's for everything outside an ingress protocol (404s, probes, admin)."""

    __slots__ = ()

    def error_response(self, status: int, message: str, *, type: str | None = None, param: str | None = None,
                       code: str | None = None, headers: Mapping[str, str] | None = None) -> web.Response:
        return error_response(status, message, type=type, param=param, code=code, headers=headers)


OPENAI_ERRORS = OpenAIErrors()
