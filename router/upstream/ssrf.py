"""The SSRF guard: which image URLs a client may hand the gateway.

Only https URLs to public hosts, or `data:` URIs. A host that names loopback,
private, link-local, multicast, reserved or metadata addresses is refused in any
spelling (`127.1`, `0x7f000001`, `2130706433`, `[::ffff:127.0.0.1]`, full-width
digits, `localhost.`), IPv6 forms that carry an IPv4 address included (mapped,
compatible, NAT64, 6to4, Teredo), and so are cluster-internal names (single labels,
`.svc`, `.cluster.local`, `.internal`...), before any connection is made. Every address
a name resolves to is checked too (router/upstream/fetch.py): when the gateway fetches, and
when it forwards a URL to an upstream that will fetch it from inside our network.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import socket
from urllib.parse import urlsplit

from router.errors import GatewayError

_BLOCKED_NAMES = ("localhost", "metadata", "metadata.google.internal", "instance-data")
# Names that only mean something inside a network: Kubernetes services (`kubernetes.default.svc`, `.svc.cluster.local`),
# mDNS, cloud-internal zones, and the conventional private zones (RFC 6762 appendix G).
_BLOCKED_SUFFIXES = (".localhost", ".local", ".internal", ".localdomain", ".home.arpa", ".svc", ".cluster.local",
                     ".svc.cluster", ".lan", ".home", ".corp", ".intranet", ".private", ".consul")
# IPv6 prefixes whose last 32 bits are an IPv4 address the packet ends up at: IPv4-mapped, IPv4-compatible
# (deprecated, still routed by some stacks), IPv4-translated (SIIT) and the NAT64 well-known prefix.
_EMBEDS_IPV4 = tuple(ipaddress.IPv6Network(n) for n in ("::ffff:0:0/96", "::/96", "::ffff:0:0:0/96", "64:ff9b::/96"))
# Local-use NAT64 (RFC 8215) embeds an IPv4 address at a place only its operator knows: never public.
_LOCAL_NAT64 = ipaddress.IPv6Network("64:ff9b:1::/48")
IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")  # what the fetcher accepts


def is_public_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        for network in _EMBEDS_IPV4:
            if address in network:
                return is_public_address(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        if address.sixtofour is not None:
            return is_public_address(address.sixtofour)
        if address.teredo or address in _LOCAL_NAT64:
            return False
    return address.is_global and not address.is_multicast


def is_public_name(host: str) -> bool:
    """Whether a (normalised) host name may name a public host: not a single label, not an internal zone."""
    return host not in _BLOCKED_NAMES and not host.endswith(_BLOCKED_SUFFIXES) and "." in host


def literal_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a host names literally, in any spelling the resolver would accept."""
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        pass
    try:
        # inet_aton takes the legacy forms: 127.1, 0x7f.0.0.1, 0177.0.0.1, 2130706433
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except (OSError, ValueError):
        return None


def normalise_host(host: str) -> str:
    host = host.rstrip(".").lower()
    try:
        return host.encode("idna").decode("ascii")  # full-width digits and dots become ASCII
    except UnicodeError:
        return host


def refused(param: str, why: str) -> GatewayError:
    return GatewayError(400, f"Invalid image URL at '{param}': {why}.", param=param, code="invalid_image_url")


def check_image_url(url: str, param: str, max_image_bytes: int) -> bool:
    """Refuse what may not be fetched or forwarded; True for an https URL, False for a data URI."""
    if url.startswith("data:"):
        header, sep, data = url.partition(",")
        media_type = header[5:].split(";", 1)[0].lower()
        if not sep or ";base64" not in header.lower():
            raise refused(param, "a data URI must be base64-encoded (data:image/png;base64,...)")
        if not media_type.startswith("image/"):
            raise refused(param, f"'{media_type or 'no media type'}' is not an image type")
        if len(data) * 3 // 4 > max_image_bytes:
            raise refused(param, f"the image is larger than the limit of {max_image_bytes} bytes (max_image_bytes)")
        try:
            base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise refused(param, "the data URI is not valid base64") from None
        return False
    if any(c == "\\" or c == "\ufeff" or c.isspace() or ord(c) < 32 for c in url):  # as `[^\s\\]` in the document
        raise refused(param, "the URL contains characters that are not allowed")
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        _ = parts.port
    except ValueError:
        raise refused(param, "the URL cannot be parsed") from None
    if parts.scheme.lower() != "https":
        raise refused(param, "only https URLs or data: URIs are accepted")
    if not host or "%" in host:
        raise refused(param, "the URL has no usable host")
    host = normalise_host(host)
    address = literal_address(host)
    if address is not None:
        if not is_public_address(address):
            raise refused(param, "the host is not a public address")
        return True
    if not is_public_name(host):
        raise refused(param, "the host is not a public name")
    return True

