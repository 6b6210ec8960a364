"""Images in OpenAI requests, for the protocols that take them inline: base64 data
URIs, and the type an image's bytes show (clients often label every image jpeg)."""

from __future__ import annotations

import re

_DATA_URI = re.compile(r"^data:([\w.+-]+/[\w.+-]+)(?:;[^,;]*)*;(?i:base64),(.*)$", re.S)


def parse_data_uri(url: str) -> tuple[str, str] | None:
    """(media type, lower case; base64 data) of a base64 data URI, None for anything else."""
    match = _DATA_URI.match(url)
    return (match.group(1).lower(), match.group(2)) if match else None


def sniff_image_type(image: bytes) -> str | None:
    """The media type the first bytes say, for JPEG, PNG, GIF and WebP."""
    if image.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if image.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if image.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if image[:4] == b"RIFF" and image[8:12] == b"WEBP":
        return "image/webp"
    return None
