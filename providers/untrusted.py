"""Values read from an upstream body, checked where they enter: the translators share these.

An upstream is not trusted to send sane numbers or harmless text. Token counts must be
whole, non-negative and below `MAX_TOKEN_COUNT`; positions (choice and tool-call
indexes) below `MAX_INDEX`; logprobs finite and not positive. A usage that fails the
check is treated as missing (`Usage(estimated=True)`): the gateway then counts the
tokens itself, as for an upstream that reports none, and the answer still reaches
the client (a stream's usage comes after its text anyway, so a 502 could not be given
there). Error text is relayed only from the provider's JSON error shape, cut to a
bound, with anything that looks like a credential blanked.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from providers.base import Usage

# Ten times the largest context window on offer (10M tokens): more in one answer is a lie.
MAX_TOKEN_COUNT = 100_000_000
# Choices (n <= 128) and tool calls per message are far fewer; a position beyond this is not one.
MAX_INDEX = 4096
MAX_EMBEDDING_DIMENSIONS = 65536  # the bound on what a client may ask for (router/http/validate.py)
MAX_ERROR_MESSAGE = 500  # characters of an upstream's error message relayed to the client


class OutOfRange(ValueError):
    """A number from an upstream body that is not of the kind or range its field allows."""


def whole(value: Any, high: int, name: str) -> int:
    """`value` as an integer in [0, high]; a whole decimal (`12.0`) counts, as in JSON Schema."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= high:
        raise OutOfRange(f"{name} is not an integer between 0 and {high}: {str(value)[:40]}")
    return value


def token_count(raw: Mapping[str, Any], name: str) -> int:
    """A token count that may be absent (0), never negative, fractional or absurd."""
    value = raw.get(name)
    return 0 if value is None else whole(value, MAX_TOKEN_COUNT, name)


def token_sum(raw: Mapping[str, Any], names: Iterable[str]) -> int:
    return sum(token_count(raw, name) for name in names)


def usage_or_missing(raw: Any, prompt: Iterable[str], completion: Iterable[str], required: str) -> Usage:
    """The usage `raw` reports, or `Usage(estimated=True)` where it is absent or out of range.

    `prompt` and `completion` name the counts added up on each side; `required` must be present."""
    if not isinstance(raw, Mapping) or raw.get(required) is None:
        return Usage(estimated=True)
    try:
        return Usage(token_sum(raw, prompt), token_sum(raw, completion))
    except OutOfRange:
        return Usage(estimated=True)


def index(value: Any, default: int, name: str = "index") -> int:
    """A choice's or tool call's position: absent is `default`."""
    return default if value is None else whole(value, MAX_INDEX, name)


def embedding_length(vector: Any) -> None:
    if isinstance(vector, list) and len(vector) > MAX_EMBEDDING_DIMENSIONS:
        raise OutOfRange(f"an embedding has {len(vector)} dimensions, over {MAX_EMBEDDING_DIMENSIONS}")


def logprob(value: Any) -> float:
    """A log-probability: finite and at most 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value > 0:
        raise OutOfRange(f"logprob is not a finite number <= 0: {str(value)[:40]}")
    return float(value)


def finite(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise OutOfRange(f"{name} is not a finite number: {str(value)[:40]}")
    return float(value)


# --- error text -----------------------------------------------------------------------

# What looks like a credential: provider key prefixes, bearer tokens, JWTs, `key=value`
# pairs naming a secret, and long unbroken runs of hex or base64 (tokens, signatures).
_SECRETS = re.compile(
    r"(?i)\b(?:sk|rk|pk|sess|key|ak|api|xai|gsk|hf|ghp|gho|github_pat|glpat|xox[abpr])[-_][A-Za-z0-9_\-]{8,}"
    r"|\bAIza[0-9A-Za-z_\-]{20,}"
    r"|\bya29\.[0-9A-Za-z_\-.]+"
    r"|\beyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+(?:\.[A-Za-z0-9_\-]*)?"
    r"|(?<=\bbearer )\S+"
    r"|(?<=\bbasic )\S+"
    r"|(?<=[?&;\s\"'{,])(?:[A-Za-z_\-]*(?:key|token|secret|password|passwd|pwd|signature|credential|auth)"
    r"[A-Za-z_\-]*)\s*[=:]\s*[\"']?[^\s\"'&,;}]+"
    r"|\b(?=[A-Za-z_\-+]*\d)[A-Za-z0-9+_\-]{32,}={0,2}"
)
_MARKUP = re.compile(r"(?i)<\s*(?:!doctype|html|head|body|script|pre|div|title)\b|traceback \(most recent call")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


_TOKEN = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


def plain_token(value: Any) -> str | None:
    """An error code, type or param as relayed: a short token that does not look like a secret, or None."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return None
    text = str(value)
    return text if _TOKEN.match(text) and not _SECRETS.search(text) else None


def generic_error_message(status: int) -> str:
    return f"The upstream provider answered HTTP {status}."


def error_message(message: Any, status: int) -> str:
    """An upstream error message fit to show the client: the provider's own words where they
    are plain text, bounded and with credential-looking material blanked; else a generic line."""
    if not isinstance(message, str) or not message.strip() or _MARKUP.search(message):
        return generic_error_message(status)
    text = _CONTROL.sub(" ", message).strip()
    text = _SECRETS.sub("[REDACTED]", text)
    if len(text) > MAX_ERROR_MESSAGE:
        text = text[:MAX_ERROR_MESSAGE].rstrip() + "..."
    return text
