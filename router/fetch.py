"""Fetching client-given image URLs for providers that need images inline.

Every hop is checked by the SSRF guard: the URL (router/ssrf.py), every address its
name resolves to (a resolver that refuses non-public addresses, so DNS cannot point
a public-looking name at 127.0.0.1), and every redirect. Size and time are capped.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import socket
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from providers.base import InlineImage
from router.errors import GatewayError
from router.ssrf import IMAGE_TYPES, check_image_url, is_public_address, refused

MAX_REDIRECTS = 3


class PublicOnlyResolver(AbstractResolver):
    def __init__(self, inner: AbstractResolver | None = None) -> None:
        self._inner = inner or DefaultResolver()

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            if not is_public_address(ipaddress.ip_address(result["host"])):
                raise OSError(f"{host} resolves to a non-public address")
        return results

    async def close(self) -> None:
        await self._inner.close()


class ImageFetcher:
    def __init__(self, max_bytes: int, timeout: float = 10.0, resolver: AbstractResolver | None = None) -> None:
        self.max_bytes = max_bytes
        self.timeout = timeout
        self._resolver = resolver
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(resolver=self._resolver or PublicOnlyResolver(), limit=32)
            self._session = aiohttp.ClientSession(connector=connector, trust_env=False)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def fetch(self, url: str, param: str) -> InlineImage:
        try:
            async with asyncio.timeout(self.timeout):
                return await self._fetch(url, param)
        except TimeoutError:
            raise refused(param, f"fetching the image took longer than {self.timeout:g} s") from None
        except (aiohttp.ClientError, OSError):
            raise refused(param, "the image could not be fetched from a public address") from None

    async def _fetch(self, url: str, param: str) -> InlineImage:
        for _ in range(MAX_REDIRECTS + 1):
            check_image_url(url, param, self.max_bytes)
            async with self._client().get(url, allow_redirects=False) as response:
                if response.status in (301, 302, 303, 307, 308) and "Location" in response.headers:
                    url = str(response.url.join(aiohttp.helpers.URL(response.headers["Location"])))
                    continue
                if response.status != 200:
                    raise refused(param, f"the image URL answered HTTP {response.status}")
                media_type = response.content_type.lower()
                if media_type not in IMAGE_TYPES:
                    raise refused(param, f"the URL did not return an image ({media_type or 'no type'})")
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


__all__: list[Any] = ["ImageFetcher", "PublicOnlyResolver"]
