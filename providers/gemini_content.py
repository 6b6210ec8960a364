"""OpenAI message content -> Gemini parts: texts, images, PDFs and audio of user turns
(what becomes of each is listed in `providers.gemini`).

`image_url.detail` is OpenAI's say in how many tokens an image costs; Gemini's is
`mediaResolution` (ai.google.dev, "Media resolution"): per part on Gemini 3
(`{"level": "MEDIA_RESOLUTION_LOW" | "MEDIA_RESOLUTION_HIGH"}`), for the whole request
elsewhere (`generationConfig.mediaResolution`, the highest detail asked of any image).
`auto` is the model's default: nothing is sent."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from providers.base import JSON, InlineImage, invalid_param
from providers.documents import PDF, pdf_of_file_part
from providers.images import parse_data_uri

RESOLUTIONS = {"low": "MEDIA_RESOLUTION_LOW", "high": "MEDIA_RESOLUTION_HIGH"}

_AUDIO_TYPES = {"wav": "audio/wav", "mp3": "audio/mp3"}
_IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/webp", "image/heic", "image/heif"})


def text_parts(content: Any, param: str) -> list[JSON]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    if isinstance(content, list):
        parts = []
        for j, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") not in ("text", "refusal"):
                raise invalid_param(f"{param}[{j}]", f"'{param}[{j}]' must be a text part here")
            text = part.get("text", part.get("refusal"))
            if not isinstance(text, str):
                raise invalid_param(f"{param}[{j}]", f"'{param}[{j}]' has no text")
            if text:
                parts.append({"text": text})
        return parts
    raise invalid_param(param, f"'{param}' must be a string or a list of parts")


def user_parts(content: Any, param: str, images: Mapping[str, InlineImage], per_part_media: bool = False
               ) -> list[JSON]:
    if not isinstance(content, list):
        return text_parts(content, param)
    parts: list[JSON] = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            inline = image_part(url, f"{param}[{j}].image_url.url", images)
            level = RESOLUTIONS.get(str(image.get("detail"))) if isinstance(image, dict) else None
            if per_part_media and level:
                inline["mediaResolution"] = {"level": level}
            parts.append(inline)
        elif kind == "file":  # a PDF (ai.google.dev, "Document understanding": inline_data application/pdf)
            parts.append({"inlineData": {"mimeType": PDF, "data": pdf_of_file_part(part, f"{param}[{j}]")}})
        elif kind == "input_audio":
            audio = part.get("input_audio") or {}
            mime = _AUDIO_TYPES.get(str(audio.get("format")))
            if mime is None or not isinstance(audio.get("data"), str):
                raise invalid_param(f"{param}[{j}].input_audio",
                                    "input_audio needs base64 'data' and format wav or mp3")
            parts.append({"inlineData": {"mimeType": mime, "data": audio["data"]}})
        elif kind == "text" and isinstance(part.get("text"), str):
            if part["text"]:
                parts.append({"text": part["text"]})
        else:
            raise invalid_param(f"{param}[{j}]", f"content part type {kind!r} is not supported for Gemini models")
    return parts


def image_part(url: Any, param: str, images: Mapping[str, InlineImage]) -> JSON:
    if not isinstance(url, str):
        raise invalid_param(param, f"'{param}' must be a string")
    parsed = parse_data_uri(url)
    if parsed:
        mime_type, data = parsed
    elif url.startswith("data:"):
        raise invalid_param(param, f"'{param}' is a data URI but not data:<media type>;base64,<data>")
    elif url in images:
        mime_type, data = images[url].media_type, images[url].data_b64
    else:
        raise invalid_param(param, f"'{param}' must be an https URL the gateway can fetch, or a base64 data URI")
    if mime_type not in _IMAGE_TYPES:  # Gemini would refuse it; say so before the round trip
        raise invalid_param(param, f"'{param}' is {mime_type}; Gemini takes {', '.join(sorted(_IMAGE_TYPES))}")
    return {"inlineData": {"mimeType": mime_type, "data": data}}


def request_media_resolution(messages: Any) -> str | None:
    """`generationConfig.mediaResolution` for models without per-part resolution: the
    highest detail any image asks for (a low-detail image read in high costs tokens, a
    high-detail one read in low loses what the client asked to see)."""
    details = {
        part["image_url"].get("detail")
        for message in (messages if isinstance(messages, list) else [])
        if isinstance(message, dict) and isinstance(message.get("content"), list)
        for part in message["content"]
        if isinstance(part, dict) and isinstance(part.get("image_url"), dict)
    }
    for detail in ("high", "low"):
        if detail in details:
            return RESOLUTIONS[detail]
    return None
