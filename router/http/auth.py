"""Keys: `Authorization: Bearer <key>` -> the caller's entry in the route table.

Keys are stored as SHA-256 digests; the presented key is hashed and looked up, then
compared with `hmac.compare_digest`, so neither lookup nor comparison leaks timing
about a stored key. The key itself is never logged or echoed.

Failed attempts are limited per client address (`FailedAuthLimiter`): once an address
has failed `AUTH_FAILURES_PER_MINUTE` times within a minute, its further wrong keys
are answered 429 with `Retry-After` until the oldest failure is a minute old. A valid
key is always served: many clients share an address behind an Ingress or a NAT, and
one client's typos (or an attacker's guesses) must not lock the others out. What
makes guessing hopeless is the key's entropy; the limiter only makes it slow and
cheap to refuse. The client's address is the peer's, or, when the peer is one of
`server.trusted_proxies`, the nearest untrusted hop of its `X-Forwarded-For`.
The count is kept in the process: a guesser spread over N replicas gets N times the
budget; keeping it in-process means a Redis outage cannot turn into an open door.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
import time
from collections import deque
from collections.abc import Callable

from aiohttp import web

from router.config.schema import KeyConfig, RouteTable
from router.errors import GatewayError

AUTH_FAILURES_PER_MINUTE = 20
WINDOW_SECONDS = 60.0
MAX_TRACKED_ADDRESSES = 100_000  # bounds the memory an attacker with many addresses can make us hold


MAX_FORWARDED_HOPS = 16  # X-Forwarded-For entries looked at, from the right
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _parse_address(text: str) -> Address | None:
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: Address, proxies: tuple[Network, ...]) -> bool:
    return any(address.version == network.version and address in network for network in proxies)


def forwarded_client(peer: Address, forwarded_for: list[str], proxies: tuple[Network, ...]) -> Address:
    """The client behind a chain of trusted proxies: walking X-Forwarded-For from the
    right (the entry our own proxy appended), the first hop that is not a trusted
    proxy. Entries left of it were written by the client and are not believed."""
    client = peer
    hops = [hop for header in forwarded_for for hop in header.split(",")][-MAX_FORWARDED_HOPS:]
    for hop in reversed(hops):
        if not _trusted(client, proxies):
            break
        address = _parse_address(hop)
        if address is None:  # a hop a trusted proxy did not write: stop at the last one believed
            break
        client = address
    return client


def client_address(request: web.Request, proxies: tuple[Network, ...] = ()) -> str:
    """The client's address; IPv6 by its /64, as one host can hold a whole /64."""
    remote = request.remote or "unknown"
    address = _parse_address(remote)
    if address is None:
        return remote
    if proxies:
        address = forwarded_client(address, request.headers.getall("X-Forwarded-For", []), proxies)
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class FailedAuthLimiter:
    """Failed attempts per address in a sliding window."""

    def __init__(self, limit: int = AUTH_FAILURES_PER_MINUTE, window: float = WINDOW_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, address: str, now: float) -> deque[float] | None:
        failures = self._failures.get(address)
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if failures is not None and not failures:
            del self._failures[address]
            return None
        return failures

    def check(self, address: str) -> None:
        """Raise the 429 when `address` has used up its failures."""
        now = self._clock()
        failures = self._recent(address, now)
        if failures is not None and len(failures) >= self.limit:
            retry_after = max(1, math.ceil(failures[0] + self.window - now))
            raise GatewayError(429, f"Too many failed authentication attempts from your address. Retry after "
                                    f"{retry_after} s.", code="too_many_failed_auth_attempts",
                               headers={"Retry-After": str(retry_after)})

    def record_failure(self, address: str) -> None:
        now = self._clock()
        failures = self._recent(address, now)
        if failures is None:
            if len(self._failures) >= MAX_TRACKED_ADDRESSES:
                self._evict(now)
            failures = self._failures[address] = deque(maxlen=self.limit)
        failures.append(now)

    def _evict(self, now: float) -> None:
        for address in list(self._failures):
            self._recent(address, now)
        while len(self._failures) >= MAX_TRACKED_ADDRESSES:  # still full: forget the oldest address
            del self._failures[next(iter(self._failures))]


FAILED_AUTH = web.AppKey("failed_auth", FailedAuthLimiter)


def failed_auth_limiter(app: web.Application) -> FailedAuthLimiter:
    """The application's limiter (one per app, so that test gateways do not share counts)."""
    return app[FAILED_AUTH]


MAX_TOKEN_CHARS = 1024  # far above any real key; a longer one is refused without hashing it


def bearer_token(request: web.Request) -> str | None:
    headers = request.headers.getall("Authorization", [])
    if len(headers) != 1:  # none, or several: proxies differ on which one counts, so none does
        return None
    header = headers[0]
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def _refuse(table: RouteTable, request: web.Request, error: GatewayError) -> GatewayError:
    """A wrong key: the 429 once its address has used up its failures, else `error`, counted."""
    limiter = failed_auth_limiter(request.app)
    address = client_address(request, table.server.trusted_proxies)
    limiter.check(address)
    limiter.record_failure(address)
    return error


def x_api_key(request: web.Request) -> str | None:
    """Anthropic's `x-api-key` header (exactly one, as for Authorization), else a Bearer token."""
    headers = request.headers.getall("x-api-key", [])
    if not headers:
        return bearer_token(request)
    return headers[0].strip() or None if len(headers) == 1 else None


def authenticate(table: RouteTable, request: web.Request, *, api_key_header: bool = False) -> KeyConfig:
    """The caller's key from `Authorization: Bearer`, or also `x-api-key` (`api_key_header`)."""
    token = x_api_key(request) if api_key_header else bearer_token(request)
    if token is None:
        where = "the x-api-key header or " if api_key_header else ""
        raise GatewayError(401, f"You didn't provide an API key. Provide it in {where}the Authorization header "
                                "as 'Authorization: Bearer YOUR_KEY'.", code="missing_api_key")
    digest = _digest(token[:MAX_TOKEN_CHARS + 1])  # a longer token matches no key, whatever its tail
    key = table.keys_by_digest.get(digest) if len(token) <= MAX_TOKEN_CHARS else None
    if key is None or not hmac.compare_digest(key.key_sha256, digest):
        raise _refuse(table, request, GatewayError(401, "Incorrect API key provided.", code="invalid_api_key"))
    return key


def require_admin(table: RouteTable, request: web.Request) -> None:
    if table.admin.key is None:
        raise GatewayError(404, "The admin API is not enabled on this gateway.", code="not_found")
    refused = GatewayError(401, "The admin API needs the admin key.", code="invalid_api_key")
    token = bearer_token(request)
    if token is None:
        raise refused
    if not hmac.compare_digest(_digest(token), _digest(table.admin.key.get())):
        raise _refuse(table, request, refused)
