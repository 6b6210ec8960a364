"""The thin HTTP layer around the translators: send an `UpstreamCall` over the
provider's pooled session and turn transport failures into `UpstreamError`s."""

from __future__ import annotations

import asyncio
import io

import aiohttp

from providers.base import Adapter, ApiRequest, UpstreamCall, UpstreamError

MAX_ERROR_BODY = 64 * 1024
MAX_RESPONSE_BODY = 64 * 1024 * 1024  # an upstream answer larger than this is not trusted
LARGE_BODY = 1024 * 1024  # request bodies above this are streamed from a buffer


def _form(call: UpstreamCall, request: ApiRequest) -> aiohttp.FormData:
    form = aiohttp.FormData()
    for name, value in call.fields:
        form.add_field(name, value)
    if request.file:
        filename, content, content_type = request.file
        form.add_field("file", content, filename=filename, content_type=content_type)
    return form


def transport_error(exc: BaseException) -> UpstreamError:
    if isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return UpstreamError(504, "The upstream provider did not answer in time.", type="timeout",
                             code="upstream_timeout", retryable=True)
    return UpstreamError(502, "The upstream provider could not be reached.", type="upstream_error",
                         code="upstream_unreachable", retryable=True)


async def open_response(session: aiohttp.ClientSession, call: UpstreamCall, request: ApiRequest,
                        adapter: Adapter, timeout: aiohttp.ClientTimeout) -> aiohttp.ClientResponse:
    """POST the call; return the open 2xx response, or raise the normalised error."""
    data: aiohttp.FormData | bytes | io.BytesIO | None = _form(call, request) if call.multipart else call.body
    if isinstance(data, bytes) and len(data) > LARGE_BODY:
        data = io.BytesIO(data)  # aiohttp writes large raw bytes in one blocking go (and warns)
    try:
        response = await session.post(call.url, data=data, headers=call.headers, timeout=timeout)
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        raise transport_error(exc) from None
    if response.status >= 400 or response.status < 200:
        try:
            body = await _read_capped(response, MAX_ERROR_BODY)
        except (TimeoutError, aiohttp.ClientError, OSError):
            body = b""
        finally:
            response.release()
        raise adapter.parse_error(response.status, response.headers, body)
    return response


async def _read_capped(response: aiohttp.ClientResponse, cap: int) -> bytes:
    """The body, or its first `cap` bytes and one more where it is longer."""
    if response.content_length is not None and response.content_length <= cap:
        return await response.read()
    parts: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_any():
        parts.append(chunk)
        size += len(chunk)
        if size > cap:
            break
    return b"".join(parts)[: cap + 1]


async def read_body(response: aiohttp.ClientResponse) -> bytes:
    too_large = UpstreamError(502, "The upstream answer is larger than the gateway accepts.", retryable=False)
    try:
        if response.content_length is not None and response.content_length > MAX_RESPONSE_BODY:
            raise too_large
        body = await _read_capped(response, MAX_RESPONSE_BODY)
        if len(body) > MAX_RESPONSE_BODY:
            raise too_large
        return body
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        raise transport_error(exc) from None
    finally:
        response.release()
