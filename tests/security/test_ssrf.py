"""The SSRF guard: image URLs a client gives are refused before any connection when
they name a non-public host, refused at connection time when a name resolves to one,
and refused at every redirect that leads to one; size and time are capped.

The fetcher is tested against a loopback image server: only in these tests, a URL
predicate lets the fetcher reach that server (the gateway never gets one), and a fake
resolver stands in for DNS so that no real name is looked up.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import socket
from collections.abc import AsyncIterator, Callable

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from router.errors import GatewayError
from router.upstream.fetch import HostVerdicts, ImageFetcher, PublicOnlyResolver
from router.upstream.ssrf import check_image_url, is_public_address

PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQ"
                       "AAAABJRU5ErkJggg==")
FAKE_DNS = {
    "loopback.example.com": "127.0.0.1",
    "metadata.example.com": "169.254.169.254",
    "private.example.com": "10.1.2.3",
    "v6-loopback.example.com": "::1",
    "v6-mapped.example.com": "::ffff:127.0.0.1",
    "v6-private.example.com": "fd00::1",
    "mixed.example.com": "198.51.100.7,192.168.0.1",  # one bad address spoils the name
    "10.0.0.1.sslip.io": "10.0.0.1",  # wildcard DNS services answer the address the name spells
    "nat64-metadata.example.com": "64:ff9b::a9fe:a9fe",  # 169.254.169.254 through the NAT64 prefix
    "v4-compatible.example.com": "::7f00:1",  # ::127.0.0.1, IPv4-compatible
    "v4-translated.example.com": "::ffff:0:a00:1",  # ::ffff:0:10.0.0.1, SIIT
    "6to4-private.example.com": "2002:c0a8:1::1",  # 6to4 of 192.168.0.1
    "teredo.example.com": "2001:0:4136:e378:8000:63bf:3fff:fdd2",
    "public-v4-loopback-v6.example.com": "93.184.216.34,::1",  # AAAA spoils the A record
}
PUBLIC_DNS = {"images.example.com": "93.184.216.34,2606:2800:220:1:248:1893:25c8:1946"}


class FakeDNS(AbstractResolver):
    def __init__(self) -> None:
        self.asked: list[str] = []

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        self.asked.append(host)
        known = FAKE_DNS.get(host) or PUBLIC_DNS.get(host)
        if known is None:
            raise OSError(f"{host}: unknown to the fake DNS")
        return [ResolveResult(hostname=host, host=address, port=port, family=socket.AF_INET6 if ":" in address
                              else socket.AF_INET, proto=0, flags=0) for address in known.split(",")]

    async def close(self) -> None:
        return None


async def image_server() -> tuple[web.AppRunner, str, list[str]]:
    hits: list[str] = []
    never = asyncio.Event()

    async def handle(request: web.Request) -> web.StreamResponse:
        hits.append(request.path)
        name = request.match_info["name"]
        if name == "ok.png":
            return web.Response(body=PNG, content_type="image/png")
        if name == "page.html":
            return web.Response(text="<html>", content_type="text/html")
        if name == "declared-big.png":
            return web.Response(body=b"\0" * 4096, content_type="image/png")
        if name == "streamed-big.png":
            response = web.StreamResponse(headers={"Content-Type": "image/png"})
            response.enable_chunked_encoding()
            await response.prepare(request)
            for _ in range(8):
                await response.write(b"\0" * 1024)
            await response.write_eof()
            return response
        if name == "slow.png":
            await never.wait()
        if name.startswith("to-"):
            targets = {"to-metadata": "https://169.254.169.254/latest/meta-data/",
                       "to-private-name": "https://private.example.com/a.png",
                       "to-loopback-http": f"http://127.0.0.1:{request.url.port}/ok.png",
                       "to-data": "data:image/png;base64," + base64.b64encode(PNG).decode(),
                       "to-self": str(request.url)}
            raise web.HTTPFound(targets[name])
        raise web.HTTPNotFound()

    app = web.Application()
    app.router.add_get("/{name}", handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}", hits


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, list[str]]]:
    runner, base, hits = await image_server()
    yield base, hits
    await runner.cleanup()


def fetcher(base: str, dns: FakeDNS, *, max_bytes: int = 2048, timeout: float = 2.0,
            allowed: Callable[[str], bool] | None = None) -> ImageFetcher:
    """Only the test server's own first URLs are let through the URL check; redirects face the real guard."""
    allow = allowed or (lambda url: url.startswith(base + "/"))
    return ImageFetcher(max_bytes, timeout, resolver=PublicOnlyResolver(dns), allow_url=allow)


async def refused_reason(fetch: ImageFetcher, url: str) -> str:
    with pytest.raises(GatewayError) as refused:
        await fetch.fetch(url, "messages[0].content[1].image_url.url")
    assert refused.value.status == 400 and refused.value.code == "invalid_image_url"
    assert refused.value.param == "messages[0].content[1].image_url.url"
    return refused.value.message


async def test_an_allowed_image_is_fetched_inline(server: tuple[str, list[str]]) -> None:
    base, hits = server
    fetch = fetcher(base, FakeDNS())
    try:
        image = await fetch.fetch(f"{base}/ok.png", "p")
    finally:
        await fetch.close()
    assert image.media_type == "image/png" and base64.b64decode(image.data_b64) == PNG
    assert hits == ["/ok.png"]


@pytest.mark.parametrize("host", sorted(FAKE_DNS))
async def test_a_name_resolving_to_a_non_public_address_is_refused_before_connecting(host: str) -> None:
    dns = FakeDNS()
    fetch = ImageFetcher(2048, 2.0, resolver=PublicOnlyResolver(dns))
    try:
        reason = await refused_reason(fetch, f"https://{host}/cat.png")
    finally:
        await fetch.close()
    assert "resolves to a non-public address" in reason
    assert dns.asked == [host]


@pytest.mark.parametrize(("target", "why"), [
    ("to-metadata", "not a public address"),
    ("to-private-name", "resolves to a non-public address"),
    ("to-loopback-http", "only https URLs"),
    ("to-data", "redirect may only lead to another https URL"),
    ("to-self", "more than 3 redirects"),
])
async def test_redirects_face_the_guard_at_every_hop(server: tuple[str, list[str]], target: str, why: str) -> None:
    base, hits = server
    start = f"{base}/{target}"
    fetch = fetcher(base, FakeDNS(), allowed=lambda url: url == start)
    try:
        assert why in await refused_reason(fetch, start)
    finally:
        await fetch.close()
    assert "/ok.png" not in hits  # the loopback image behind the redirect was never reached


@pytest.mark.parametrize(("name", "why"), [
    ("declared-big.png", "larger than the limit of 2048 bytes (max_image_bytes)"),
    ("streamed-big.png", "larger than the limit of 2048 bytes (max_image_bytes)"),
    ("page.html", "did not return an image (text/html)"),
    ("missing.png", "answered HTTP 404"),
])
async def test_size_type_and_status_are_checked(server: tuple[str, list[str]], name: str, why: str) -> None:
    base, _ = server
    fetch = fetcher(base, FakeDNS())
    try:
        assert why in await refused_reason(fetch, f"{base}/{name}")
    finally:
        await fetch.close()


async def test_a_slow_image_host_is_cut_off(server: tuple[str, list[str]]) -> None:
    base, _ = server
    fetch = fetcher(base, FakeDNS(), timeout=0.2)
    try:
        assert "longer than 0.2 s" in await refused_reason(fetch, f"{base}/slow.png")
    finally:
        await fetch.close()


@pytest.mark.parametrize("url", [
    "https://127.0.0.1/a.png", "https://127.1/a.png", "https://0x7f000001/a.png", "https://2130706433/a.png",
    "https://0177.0.0.1/a.png", "https://[::1]/a.png", "https://[::ffff:127.0.0.1]/a.png", "https://[::ffff:7f00:1]/a.png",
    "https://169.254.169.254/latest/meta-data/", "https://[fe80::1%25eth0]/a.png", "https://10.0.0.1/a.png",
    "https://172.16.5.4/a.png", "https://192.168.1.1/a.png", "https://100.64.0.1/a.png", "https://0.0.0.0/a.png",
    "https://224.0.0.1/a.png", "https://[fd00::1]/a.png", "https://[2002:7f00:1::]/a.png",
    "https://localhost/a.png", "https://localhost./a.png", "https://LOCALHOST/a.png", "https://api.localhost/a.png",
    "https://metadata.google.internal/a.png", "https://metadata/a.png", "https://printer.local/a.png",
    "https://intranet/a.png", "https://１２７.０.０.１/a.png",
    # IPv6 forms that carry an IPv4 address: compatible, translated, NAT64 (well-known and local-use), 6to4, Teredo
    "https://[::127.0.0.1]/x.png", "https://[::7f00:1]/x.png", "https://[::ffff:0:7f00:1]/x.png",
    "https://[64:ff9b::a9fe:a9fe]/x.png", "https://[64:ff9b::169.254.169.254]/x.png",
    "https://[64:ff9b:1::a9fe:a9fe]/x.png", "https://[2002:a9fe:a9fe::1]/x.png",
    "https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/x.png",
    # cluster-internal names
    "https://kubernetes.default.svc/x.png", "https://kubernetes.default.svc.cluster.local/x.png",
    "https://redis.cache.svc.cluster.local./x.png", "https://vault.corp/x.png", "https://nas.lan/x.png",
    "https://consul.service.consul/x.png", "https://kubernetes/x.png",
    "http://example.com/a.png", "ftp://example.com/a.png", "file:///etc/passwd", "gopher://example.com/",
    "https://example.com\\@127.0.0.1/a.png", "https://exa mple.com/a.png", "https://example.com:99999/a.png",
    "data:text/html;base64,PGh0bWw+", "data:image/png,rawbytes",
])
def test_urls_that_name_non_public_hosts_are_refused_without_any_lookup(url: str) -> None:
    with pytest.raises(GatewayError) as refused:
        check_image_url(url, "messages[0].content[0].image_url.url", 1024)
    assert refused.value.status == 400 and refused.value.code == "invalid_image_url"


def test_public_https_urls_and_image_data_uris_pass() -> None:
    assert check_image_url("https://upload.wikimedia.org/a.jpg", "p", 1024) is True
    assert check_image_url("https://93.184.216.34/a.jpg", "p", 1024) is True
    assert check_image_url("data:image/png;base64," + base64.b64encode(PNG).decode(), "p", 1024) is False


# --- URLs the gateway forwards (the upstream fetches them): their names are resolved here too ---------


class StuckDNS(AbstractResolver):
    """A resolver that never answers."""

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def close(self) -> None:
        return None


def test_embedded_ipv4_forms_are_judged_by_the_ipv4_address_they_carry() -> None:
    assert not is_public_address(ipaddress.ip_address("64:ff9b::a9fe:a9fe"))  # NAT64 of the metadata address
    assert is_public_address(ipaddress.ip_address("64:ff9b::808:808"))  # NAT64 of 8.8.8.8
    assert not is_public_address(ipaddress.ip_address("::7f00:1"))
    assert is_public_address(ipaddress.ip_address("2002:808:808::1"))
    assert not is_public_address(ipaddress.ip_address("2002:a00:1::1"))


@pytest.mark.parametrize("host", sorted(FAKE_DNS))
async def test_a_forwarded_url_whose_name_resolves_to_a_non_public_address_is_refused(host: str) -> None:
    dns = FakeDNS()
    fetch = ImageFetcher(2048, 2.0, resolver=PublicOnlyResolver(dns))
    try:
        with pytest.raises(GatewayError) as refused:
            await fetch.check_forwarded([f"https://{host}/x.png"], "messages")
    finally:
        await fetch.close()
    assert refused.value.status == 400 and refused.value.code == "invalid_image_url"
    assert "non-public address" in refused.value.message
    assert dns.asked == [host]


async def test_a_forwarded_public_url_passes_and_its_verdict_is_kept_briefly() -> None:
    dns = FakeDNS()
    now = [0.0]
    fetch = ImageFetcher(2048, 2.0, resolver=PublicOnlyResolver(dns))
    fetch.verdicts = HostVerdicts(PublicOnlyResolver(dns), ttl=30, clock=lambda: now[0])
    try:
        urls = ["https://images.example.com/a.png", "https://IMAGES.example.com./b.png",
                "data:image/png;base64," + base64.b64encode(PNG).decode(), "https://93.184.216.34/c.png"]
        await fetch.check_forwarded(urls, "messages")
        await fetch.check_forwarded(urls, "messages")
        assert dns.asked == ["images.example.com"]  # one lookup: same name, a data URI and a literal need none
        now[0] = 31.0
        await fetch.check_forwarded(urls, "messages")
        assert dns.asked == ["images.example.com"] * 2  # asked again once the verdict is stale
    finally:
        await fetch.close()


async def test_a_name_that_does_not_resolve_in_time_is_refused() -> None:
    verdicts = HostVerdicts(PublicOnlyResolver(StuckDNS()), timeout=0.05)
    assert await verdicts.refusal("images.example.com") == "the image host could not be resolved within 0.05 s"
    assert await verdicts.refusal("images.example.com") is not None  # the verdict is kept: a retry does not wait
