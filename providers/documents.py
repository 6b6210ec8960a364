"""OpenAI `file` content parts (`{"type": "file", "file": {"file_data", "filename"}}` or
`{"file_id"}`), for the protocols that take documents inline: Anthropic (a `document`
block) and Gemini (`inlineData`). Both take PDFs (Anthropic: docs.claude.com "PDF
support", base64 `application/pdf` sources; Gemini: ai.google.dev "Document
understanding", `inline_data` with `mime_type: application/pdf`)."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from providers.base import invalid_param
from providers.images import parse_data_uri

PDF = "application/pdf"
_PDF_MAGIC = b"%PDF-"


def pdf_of_file_part(part: Any, param: str) -> str:
    """The base64 data of a `file` part holding a PDF; a 400 naming the part for anything
    else: a `file_id` (the gateway has no Files API to read it from), a type other than
    PDF, data that is not base64 or not a PDF (both APIs refuse those too)."""
    file = part.get("file") if isinstance(part, dict) else None
    if not isinstance(file, dict):
        raise invalid_param(f"{param}.file", "a file part needs a `file` object with `file_data`")
    if file.get("file_id") is not None and file.get("file_data") is None:
        raise invalid_param(f"{param}.file.file_id", "file_id is not supported: the gateway has no Files API; "
                                                     "send the file inline as `file_data` (a base64 data URI)")
    data = file.get("file_data")
    if not isinstance(data, str) or not data:
        raise invalid_param(f"{param}.file.file_data", "file_data must be a base64 data URI "
                                                       "(data:application/pdf;base64,...)")
    parsed = parse_data_uri(data)
    media_type, encoded = parsed if parsed else (PDF, data)  # bare base64, as some clients send it
    if media_type != PDF:
        raise invalid_param(f"{param}.file.file_data", f"files of type {media_type!r} are not supported; "
                                                       "send a PDF (application/pdf)")
    try:
        pdf = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        pdf = b""
    if not pdf.startswith(_PDF_MAGIC):
        raise invalid_param(f"{param}.file.file_data", "file_data is not a base64 PDF")
    return encoded
