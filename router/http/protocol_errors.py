"""HTTP-level errors in OpenAI's shape.

aiohttp's HTTP parser answers a malformed request (an oversized header or request
line, too many headers, a bad request line) itself, in text/plain, before any
middleware runs. Its `RequestHandler.handle_error` is the one place all of these
pass through, so that is where the gateway answers them in OpenAI's JSON instead.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web, web_protocol
from aiohttp.http_exceptions import BadHttpMessage, ContentEncodingError, LineTooLong

from router.errors import error_body

log = logging.getLogger("llm_router")

_original_handle_error = web_protocol.RequestHandler.handle_error


def _message(status: int, exc: BaseException | None) -> tuple[str, str]:
    if status >= 500:
        return "The gateway failed to handle this request.", "internal_error"
    if isinstance(exc, LineTooLong) or (exc is not None and "Too many headers" in str(exc)):
        return ("A request header, the request line or the number of headers is over the limit "
                "(max_header_bytes).", "request_header_too_large")
    if isinstance(exc, ContentEncodingError):
        return ("The request body's Content-Encoding is not supported or does not decode; send it as identity, "
                "gzip or deflate.", "bad_content_encoding")
    if isinstance(exc, BadHttpMessage):
        return "The request is not valid HTTP.", "bad_http_request"
    return "The request could not be read.", "bad_request"


def handle_error(self: web_protocol.RequestHandler, request: Any, status: int = 500,
                 exc: BaseException | None = None, message: str | None = None) -> web.StreamResponse:
    if status >= 500:
        # The original logs the error and refuses when the response has started; keep that.
        _original_handle_error(self, request, status, exc, message)
    else:
        # A client's malformed request: one JSON log line, not aiohttp's plain-text traceback.
        if request.writer.output_size > 0:
            raise ConnectionError("the response has started; no error answer can follow")
        log.info("malformed request", extra={"fields": {"status": status, "error": type(exc).__name__
                                                        if exc is not None else None}})
    text, code = _message(status, exc)
    kind = "server_error" if status >= 500 else "invalid_request_error"
    response = web.Response(status=status, body=error_body(text, kind, None, code), content_type="application/json",
                            headers={"Server": "llm-router"})  # no aiohttp version for scanners
    response.force_close()
    return response


def install() -> None:
    web_protocol.RequestHandler.handle_error = handle_error  # type: ignore[method-assign]
