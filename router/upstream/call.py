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
        # aiohttp writes large raw bytes in one blocking go (and warns): large files go as a stream.
        upload = io.BytesIO(content) if len(content) > LARGE_BODY else content
        form.add_field("file", upload, filename=filename, content_type=content_type)
    return form


def forget_tracebacks(exc: BaseException | None) -> None:
    """Drop the tracebacks of a transport error and of what it wraps. aiohttp and
    aiohappyeyeballs keep the error in a local of a frame of its own traceback (a cycle),
    and frames hold their callers: the cycle would keep our frames, and the request
    body they hold (an upload), until a full garbage collection."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        exc.__traceback__ = None
        wrapped = getattr(exc, "os_error", None)
        if isinstance(wrapped, BaseException):
            forget_tracebacks(wrapped)
        exc = exc.__cause__ or exc.__context__


def transport_error(exc: BaseException) -> UpstreamError:
    forget_tracebacks(exc)
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


async def _read_up_to(response: aiohttp.ClientResponse, cap: int) -> bytearray | None:
    """The whole body in one buffer (sized up front when the length is announced), or
    None once it passes `cap`. Returning None rather than raising keeps the buffer out
    of any traceback: a raised error would hold this frame, and the buffer, alive."""
    announced = response.content_length
    if announced is not None and announced > cap:
        return None
    body = bytearray(announced or 0)
    size = 0
    async for chunk in response.content.iter_any():
        end = size + len(chunk)
        if end > cap:
            return None
        if end <= len(body):
            body[size:end] = chunk
        else:
            body[size:] = chunk  # longer than announced (or not announced): the buffer grows
        size = end
    del body[size:]  # shorter than announced
    return body


async def read_body(response: aiohttp.ClientResponse) -> bytes:
    """A whole (non-stream) answer, at most MAX_RESPONSE_BODY bytes."""
    try:
        body = await _read_up_to(response, MAX_RESPONSE_BODY)
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        raise transport_error(exc) from None
    finally:
        response.release()
    if body is None:
        raise UpstreamError(502, "The upstream answer is larger than the gateway accepts.", retryable=False)
    # The translators take bytes; orjson parses a bytearray alike, so this is the one copy.
    return bytes(body)
