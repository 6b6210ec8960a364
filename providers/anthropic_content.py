"""OpenAI message content -> Anthropic content blocks: texts, user parts, images and PDF
documents, each with its `cache_control` mark (the table of what becomes of each is in
`providers.anthropic`)."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from providers.anthropic_cache import cache_mark
from providers.base import JSON, ApiRequest, invalid_param
from providers.documents import PDF, pdf_of_file_part
from providers.images import parse_data_uri, sniff_image_type

IMAGE_MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})


def texts_of(content: Any, param: str) -> list[str]:
    """The texts of a string or a list of text parts (empty ones left out: the API refuses them)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [content] if content else []
    if not isinstance(content, list):
        raise invalid_param(param, "content must be a string or a list of parts")
    texts: list[str] = []
    for j, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type") not in ("text", "refusal"):
            raise invalid_param(f"{param}[{j}]", "only text parts are allowed here")
        text = part.get("text") if part["type"] == "text" else part.get("refusal")
        if text:
            texts.append(str(text))
    return texts


def text_blocks(content: Any, param: str) -> list[JSON]:
    """Text blocks of a string or a list of text parts, each with its part's cache mark
    (empty ones left out: the API refuses them)."""
    if isinstance(content, list):
        texts_of(content, param)  # the parts' types, checked
        blocks = []
        for j, part in enumerate(content):
            text = part.get("text") if part["type"] == "text" else part.get("refusal")
            if text:
                blocks.append(_marked({"type": "text", "text": str(text)}, part, f"{param}[{j}]"))
        return blocks
    return [{"type": "text", "text": t} for t in texts_of(content, param)]


def user_blocks(content: Any, request: ApiRequest, inline_urls: bool, i: int) -> list[JSON]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise invalid_param(f"messages[{i}].content", "user content must be a string or a list of parts")
    blocks: list[JSON] = []
    for j, part in enumerate(content):
        param = f"messages[{i}].content[{j}]"
        part_type = part.get("type") if isinstance(part, dict) else None
        if part_type == "text":
            if part.get("text"):
                blocks.append(_marked({"type": "text", "text": str(part["text"])}, part, param))
        elif part_type == "image_url":
            blocks.append(_marked(image_block(part.get("image_url"), request, inline_urls, param), part, param))
        elif part_type == "file":  # a PDF: a document block (docs.claude.com, "PDF support")
            source = {"type": "base64", "media_type": PDF, "data": pdf_of_file_part(part, param)}
            blocks.append(_marked({"type": "document", "source": source}, part, param))
        else:
            raise invalid_param(param, f"content part type {part_type!r} is not supported by Anthropic models")
    return blocks


def _marked(block: JSON, part: Any, param: str) -> JSON:
    mark = cache_mark(part, param)
    if mark is not None:
        block["cache_control"] = mark
    return block


def image_block(image_url: Any, request: ApiRequest, inline_urls: bool, param: str) -> JSON:
    url = image_url.get("url") if isinstance(image_url, dict) else image_url
    if not isinstance(url, str) or not url:
        raise invalid_param(param, "image_url.url is required")
    if url.startswith("data:"):
        parsed = parse_data_uri(url)
        if parsed is None:
            raise invalid_param(param, "an image data URI must be data:<media type>;base64,<data>")
        return base64_image(*parsed, param)
    inline = request.images.get(url)
    if inline is not None:  # fetched by the router (SSRF-guarded) for a variant that cannot take URLs
        return base64_image(inline.media_type.lower(), inline.data_b64, param)
    if not url.startswith("https://"):
        raise invalid_param(param, "an image URL must be https")
    if inline_urls:
        raise invalid_param(param, "the image at this URL could not be fetched")
    return {"type": "image", "source": {"type": "url", "url": url}}


def base64_image(media_type: str, data: str, param: str) -> JSON:
    try:
        image = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise invalid_param(param, "image data is not valid base64") from exc
    # Anthropic refuses an image whose bytes are not of the declared type, where OpenAI
    # looks at the bytes: so do we (clients label every image jpeg, or write image/jpg).
    media_type = sniff_image_type(image) or media_type
    if media_type not in IMAGE_MEDIA_TYPES:
        raise invalid_param(param, f"image type {media_type!r} is not supported (jpeg, png, gif, webp)")
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
