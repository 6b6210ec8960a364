"""Fetching client-given image URLs for providers that need images inline.

Every hop is checked by the SSRF guard: the URL (router/upstream/ssrf.py: https only, no
non-public literal address or internal name), every address its name resolves to
(`PublicOnlyResolver`: DNS cannot point a public-looking name at 127.0.0.1, and the
connection goes to exactly the addresses checked, so re-resolving cannot swap them),
and every redirect (followed by hand, each target checked again). Size and time are
capped: `max_bytes` of body (Content-Length first, then as it streams, never
decompressed), `timeout` seconds for the whole fetch, redirects included.

URLs the gateway forwards to an upstream that fetches them itself (vLLM, OpenAI) are
checked the same way before they leave (`check_forwarded`): every address the host
name resolves to must be public. The lookup is bounded (`DNS_TIMEOUT`) and its verdict
kept for `VERDICT_TTL` seconds (at most `MAX_VERDICTS` names), so a busy image host
costs one lookup, not one a request. A name that does not resolve in time is refused:
the guard fails closed.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import socket
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from providers.base import InlineImage
from router.errors import GatewayError
from router.upstream.ssrf import (
    IMAGE_TYPES,
    check_image_url,
    is_public_address,
    literal_address,
    normalise_host,
    refused,
)

MAX_REDIRECTS = 3
DNS_TIMEOUT = 2.0  # seconds for one host's lookup
VERDICT_TTL = 30.0  # seconds a host's verdict is kept: short, so DNS changes are seen soon
MAX_VERDICTS = 4096
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_REDIRECTS = (301, 302, 303, 307, 308)


class NonPublicAddress(OSError):
    """A name resolved to an address the gateway may not connect to."""


class PublicOnlyResolver(AbstractResolver):
    """Resolves with `inner`, refusing the whole name if any address is not allowed."""

    def __init__(self, inner: AbstractResolver | None = None,
                 allow: Callable[[IPAddress], bool] = is_public_address) -> None:
        self._inner = inner or DefaultResolver()
        self._allow = allow

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            if not self._allow(ipaddress.ip_address(result["host"].split("%", 1)[0])):
                raise NonPublicAddress(f"{host} resolves to a non-public address")
        return results

    async def close(self) -> None:
        await self._inner.close()


class HostVerdicts:
    """Whether a host name resolves only to public addresses: asked of DNS at most once per
    `ttl`, every address family, within `timeout`. The verdict is why it is refused, or None."""

    def __init__(self, resolver: AbstractResolver, timeout: float = DNS_TIMEOUT, ttl: float = VERDICT_TTL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._resolver = resolver
        self._timeout = timeout
        self._ttl = ttl
        self._clock = clock
        self._verdicts: OrderedDict[str, tuple[float, str | None]] = OrderedDict()

    async def refusal(self, host: str) -> str | None:
        now = self._clock()
        cached = self._verdicts.get(host)
        if cached is not None and cached[0] > now:
            return cached[1]
        verdict = await self._lookup(host)
        self._verdicts[host] = (now + self._ttl, verdict)
        self._verdicts.move_to_end(host)
        while len(self._verdicts) > MAX_VERDICTS:
            self._verdicts.popitem(last=False)
        return verdict

    async def _lookup(self, host: str) -> str | None:
        try:
            async with asyncio.timeout(self._timeout):
                results = await self._resolver.resolve(host, 443, socket.AF_UNSPEC)
        except NonPublicAddress:
            return "the image host resolves to a non-public address"
        except TimeoutError:
            return f"the image host could not be resolved within {self._timeout:g} s"
        except OSError:
            return "the image host could not be resolved"
        if not results:
            return "the image host could not be resolved"
        for result in results:  # whatever the resolver: the addresses themselves decide
            if not is_public_address(ipaddress.ip_address(result["host"].split("%", 1)[0])):
                return "the image host resolves to a non-public address"
        return None


class ImageFetcher:
    """`resolver` and `allow_url` exist for tests only (a fake DNS, a loopback image server):
    the gateway builds this with neither, so every URL goes through the SSRF guard."""

    def __init__(self, max_bytes: int, timeout: float = 10.0, resolver: AbstractResolver | None = None,
                 allow_url: Callable[[str], bool] | None = None) -> None:
        self.max_bytes = max_bytes
        self.timeout = timeout
        self._resolver = resolver
        self._allow_url = allow_url
        self._session: aiohttp.ClientSession | None = None
        self.verdicts: HostVerdicts | None = None  # made at first use, with the fetcher's resolver

    def _resolver_in_use(self) -> AbstractResolver:
        if self._resolver is None:  # made in the loop, at first use: aiohttp's resolver wants a running loop
            self._resolver = PublicOnlyResolver()
        return self._resolver

    async def check_forwarded(self, urls: Iterable[str], param: str) -> None:
        """Refuse URLs an upstream would fetch whose host resolves to a non-public address.
        The URLs passed `check_image_url` already (scheme, literal addresses, internal names)."""
        hosts = {normalise_host(urlsplit(url).hostname or "") for url in urls if not url.startswith("data:")}
        names = [host for host in hosts if literal_address(host) is None]
        if self.verdicts is None:
            self.verdicts = HostVerdicts(self._resolver_in_use())
        verdicts = self.verdicts
        for refusal in await asyncio.gather(*(verdicts.refusal(host) for host in names)):
            if refusal is not None:
                raise refused(param, refusal)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(resolver=self._resolver_in_use(), limit=32)
            # No proxy from the environment (it would connect for us, unchecked); no decompression (a small
            # gzip body must not expand past the cap before we count it).
            self._session = aiohttp.ClientSession(connector=connector, trust_env=False, auto_decompress=False,
                                                  headers={"Accept-Encoding": "identity"})
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._resolver is not None:
            await self._resolver.close()

    async def fetch(self, url: str, param: str) -> InlineImage:
        try:
            async with asyncio.timeout(self.timeout):
                return await self._fetch(url, param)
        except TimeoutError:
            raise refused(param, f"fetching the image took longer than {self.timeout:g} s") from None
        except (aiohttp.ClientError, OSError) as exc:
            if isinstance(exc, NonPublicAddress) or isinstance(exc.__cause__, NonPublicAddress):
                raise refused(param, "the image host resolves to a non-public address") from None
            raise refused(param, "the image could not be fetched from a public address") from None

    def _check(self, url: str, param: str) -> None:
        if self._allow_url is not None and self._allow_url(url):
            return
        if not check_image_url(url, param, self.max_bytes):  # a data: URI is no place to fetch from
            raise refused(param, "a redirect may only lead to another https URL")

    async def _fetch(self, url: str, param: str) -> InlineImage:
        for _ in range(MAX_REDIRECTS + 1):
            self._check(url, param)
            async with self._client().get(url, allow_redirects=False) as response:
                if response.status in _REDIRECTS and "Location" in response.headers:
                    url = str(response.url.join(URL(response.headers["Location"])))
                    continue
                if response.status != 200:
                    raise refused(param, f"the image URL answered HTTP {response.status}")
                media_type = response.content_type.lower()
                if media_type not in IMAGE_TYPES:
                    raise refused(param, f"the URL did not return an image ({media_type[:60] or 'no type'})")
                data = await _read_capped(response, self.max_bytes, param)
                return InlineImage(media_type, base64.b64encode(data).decode("ascii"))
        raise refused(param, f"more than {MAX_REDIRECTS} redirects")


async def _read_capped(response: aiohttp.ClientResponse, limit: int, param: str) -> bytes:
    if response.content_length is not None and response.content_length > limit:
        raise _too_large(param, limit)
    parts: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(65536):
        size += len(chunk)
        if size > limit:
            raise _too_large(param, limit)
        parts.append(chunk)
    return b"".join(parts)


def _too_large(param: str, limit: int) -> GatewayError:
    return refused(param, f"the image is larger than the limit of {limit} bytes (max_image_bytes)")


__all__ = ["HostVerdicts", "ImageFetcher", "NonPublicAddress", "PublicOnlyResolver"]
