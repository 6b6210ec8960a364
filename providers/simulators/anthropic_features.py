"""What the Anthropic simulator does beyond plain messages, as the real API does it:
`anthropic-beta` headers (known features accepted, others a 400), extended thinking
(a thinking block with a signature the simulator checks when it comes back: a changed
text or signature is a 400, as on the API), documents, redacted thinking, and token
counting (`POST /v1/messages/count_tokens`, and `count-tokens:rawPredict` on Vertex).
"""

from __future__ import annotations

import base64
import hmac
from typing import Any

from providers.simulators.anthropic_modern import signature

JSON = dict[str, Any]

# The betas the simulator knows; the API refuses a value it does not know.
KNOWN_BETAS = frozenset({
    "prompt-caching-2024-07-31", "interleaved-thinking-2025-05-14", "fine-grained-tool-streaming-2025-05-14",
    "context-1m-2025-08-07", "token-counting-2024-11-01", "output-128k-2025-02-19", "pdfs-2024-09-25",
    "claude-code-20250219", "token-efficient-tools-2025-02-19", "context-management-2025-06-27",
    "files-api-2025-04-14", "structured-outputs-2025-11-13",
})  # fmt: skip
PDF_MAGIC = b"%PDF-"


class FeatureRejected(Exception):
    pass


def check_betas(header_values: list[str]) -> tuple[str, ...]:
    names = tuple(n.strip() for value in header_values for n in value.split(",") if n.strip())
    unknown = [n for n in names if n not in KNOWN_BETAS]
    if unknown:
        raise FeatureRejected(f"Unexpected value(s) `{', '.join(unknown)}` for the `anthropic-beta` header. Please "
                              "consult our documentation at docs.anthropic.com or try again without the header.")
    return names


def validate_extra_block(block: JSON, role: str, where: str) -> bool:
    """A thinking, redacted-thinking or document block, checked as the API does; False: not one of those."""
    kind = block.get("type")
    if kind == "thinking" and role == "assistant":
        text, sig = block.get("thinking"), block.get("signature")
        if not isinstance(text, str) or not isinstance(sig, str) or not hmac.compare_digest(sig, signature(text)):
            raise FeatureRejected(f"{where}: Invalid `signature` in `thinking` block")
        return True
    if kind == "redacted_thinking" and role == "assistant":
        if not isinstance(block.get("data"), str) or not block["data"]:
            raise FeatureRejected(f"{where}.data: Field required")
        return True
    if kind == "document" and role == "user":
        _validate_document(block.get("source"), where)
        return True
    return False


def _validate_document(source: Any, where: str) -> None:
    kind = source.get("type") if isinstance(source, dict) else None
    if kind == "text":
        if not isinstance(source.get("data"), str):
            raise FeatureRejected(f"{where}.source.data: Field required")
        return
    if kind != "base64" or source.get("media_type") != "application/pdf":
        raise FeatureRejected(f"{where}.source: a document must be base64 application/pdf or text")
    try:
        pdf = base64.b64decode(str(source.get("data", "")), validate=True)
    except ValueError as exc:
        raise FeatureRejected(f"{where}.source.data: invalid base64 data") from exc
    if not pdf.startswith(PDF_MAGIC):
        raise FeatureRejected(f"{where}.source.data: The PDF specified was not valid.")


