"""Reading a request's body under the route table's bounds: JSON (its Content-Encoding
checked, its size capped by aiohttp's client_max_size) and the multipart form of the
audio endpoints, part by part. Any body that cannot be read is a 4xx, never a 500."""

from __future__ import annotations

from aiohttp import hdrs, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.multipart import BodyPartReader
from aiohttp.web_protocol import RequestPayloadError

from providers.base import ApiRequest, Operation
from router.config.schema import RequestLimits
from router.errors import GatewayError
from router.http import validate

MAX_FORM_PARTS = 64  # transcription forms have a handful of short fields
MAX_FORM_FIELD_BYTES = 64 * 1024


async def read_json(request: web.Request, limits: RequestLimits) -> ApiRequest:
    _check_content_encoding(request)
    try:
        raw = await request.read()  # aiohttp stops at client_max_size (max_body_bytes), decompressed
    except RequestPayloadError:
        raise _unreadable_body(request) from None
    return ApiRequest(Operation.CHAT, validate.parse_body(raw, limits), "")


def _unreadable_body(request: web.Request) -> GatewayError:
    """A corrupt gzip/deflate body, or one that ended before its Content-Length. The rest
    of it cannot be read either: marked ended, so that aiohttp does not try to drain it
    after the answer (and log a traceback), and the connection closes after the answer."""
    request.content.feed_eof()
    return GatewayError(400, "The request body could not be read: it is truncated or its Content-Encoding does "
                             "not decode.", param="body", code="bad_request_body", headers={"Connection": "close"})


_DECODED_ENCODINGS = frozenset({"", "identity", "gzip", "x-gzip", "deflate"})


def _check_content_encoding(request: web.Request) -> None:
    """aiohttp decodes gzip and deflate; any other coding would reach the parser still encoded."""
    coding = request.headers.get(hdrs.CONTENT_ENCODING, "").strip().lower()
    if coding not in _DECODED_ENCODINGS:
        raise GatewayError(415, f"The Content-Encoding {coding[:32]!r} is not supported; send the body as "
                                "identity, gzip or deflate.", code="unsupported_content_encoding")


async def _read_part(part: BodyPartReader, cap: int) -> bytes | None:
    """The part's (decoded) bytes, or None when they pass `cap`: the caller raises then,
    from a frame that does not hold the buffer (an exception raised here would keep it
    alive through its traceback until a full garbage collection)."""
    data = bytearray()
    while chunk := await part.read_chunk(65536):
        if len(data) + len(chunk) > cap:
            return None
        data += chunk
    return bytes(part.decode(bytes(data)))


def _file_too_large(limits: RequestLimits) -> GatewayError:
    return GatewayError(413, f"The file is larger than the limit of {limits.max_file_bytes} bytes (max_file_bytes).",
                        param="file", code="file_too_large")


async def read_multipart(request: web.Request, limits: RequestLimits) -> ApiRequest:
    """The transcription form, read part by part under caps; any malformed form is a 400, never a 500."""
    if not request.content_type.startswith("multipart/form-data"):
        raise validate.bad("file", "Transcriptions take multipart/form-data with a 'file' and a 'model'.")
    _check_content_encoding(request)
    try:
        form = await _read_form_parts(request, limits)
    except RequestPayloadError:
        raise _unreadable_body(request) from None
    except (ValueError, LookupError, AssertionError, RuntimeError, HttpProcessingError) as exc:
        # No boundary, broken part headers, a truncated body, an unknown charset, bytes that are not text.
        raise validate.bad("body", f"The multipart/form-data body could not be read ({type(exc).__name__}).") \
            from None
    fields, upload = form
    names = [name for name, _ in fields if not name.endswith("[]")]
    repeated = next((name for i, name in enumerate(names) if name in names[:i]), None)
    if repeated is not None:  # one value each, except array fields (`timestamp_granularities[]`)
        raise validate.bad(repeated, f"The form field '{repeated}' is given more than once.")
    if upload is None:
        raise validate.bad("file", "Missing required parameter: 'file'.")
    return ApiRequest(Operation.TRANSCRIPTION, dict(fields), "",
                      form=tuple((k, v) for k, v in fields if k != "model"), file=upload)


async def _read_form_parts(request: web.Request, limits: RequestLimits) \
        -> tuple[list[tuple[str, str]], tuple[str, bytes, str] | None]:
    """The form's fields in order (a name may repeat: `timestamp_granularities[]`) and its file."""
    fields: list[tuple[str, str]] = []
    upload: tuple[str, bytes, str] | None = None
    reader = await request.multipart()
    count = 0
    async for part in reader:
        count += 1
        if count > MAX_FORM_PARTS or not isinstance(part, BodyPartReader):
            raise validate.bad("body", f"The form has nested or more than {MAX_FORM_PARTS} parts.")
        name = part.name or ""
        if not validate.FORM_FIELD_NAME.match(name):
            raise validate.bad("body", f"Invalid form field name {name[:64]!r}: expected 1 to 64 letters, digits "
                                       "or _.[]-.")
        if part.filename is not None:
            content = await _read_part(part, limits.max_file_bytes)
            if content is None:
                raise _file_too_large(limits)
            upload = (part.filename[:MAX_FORM_FIELD_BYTES], content,
                      part.headers.get("Content-Type", "application/octet-stream")[:256])
            continue
        raw = await _read_part(part, MAX_FORM_FIELD_BYTES)
        if raw is None:
            raise validate.bad(name, f"The form field '{name[:64]}' is longer than {MAX_FORM_FIELD_BYTES} bytes.")
        fields.append((name, raw.decode(part.get_charset(default="utf-8"))))
    return fields, upload
