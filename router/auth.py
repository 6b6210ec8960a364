"""Keys: `Authorization: Bearer <key>` -> the caller's entry in the route table.

Keys are stored as SHA-256 digests; the presented key is hashed and looked up, then
compared with `hmac.compare_digest`, so neither lookup nor comparison leaks timing
about a stored key. The key itself is never logged or echoed.
"""

from __future__ import annotations

import hashlib
import hmac

from aiohttp import web

from router.config import KeyConfig, RouteTable
from router.errors import GatewayError


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def authenticate(table: RouteTable, request: web.Request) -> KeyConfig:
    token = bearer_token(request)
    if token is None:
        raise GatewayError(401, "You didn't provide an API key. Provide it in the Authorization header "
                                "as 'Authorization: Bearer YOUR_KEY'.", code="missing_api_key")
    digest = _digest(token)
    key = table.keys_by_digest.get(digest)
    if key is None or not hmac.compare_digest(key.key_sha256, digest):
        raise GatewayError(401, "Incorrect API key provided.", code="invalid_api_key")
    return key


def require_admin(table: RouteTable, request: web.Request) -> None:
    if table.admin.key is None:
        raise GatewayError(404, "The admin API is not enabled on this gateway.", code="not_found")
    token = bearer_token(request)
    expected = _digest(table.admin.key.get())
    if token is None or not hmac.compare_digest(_digest(token), expected):
        raise GatewayError(401, "The admin API needs the admin key.", code="invalid_api_key")
