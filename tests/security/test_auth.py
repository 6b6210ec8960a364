"""Keys: guessing is rate limited per address, the admin key guards every /admin route
and nothing else, and a client key sees only its own usage."""

from __future__ import annotations

import ipaddress
import socket

import orjson
import pytest

from router.config.schema import ConfigError, parse
from router.errors import GatewayError
from router.http.auth import FailedAuthLimiter, client_address, forwarded_client
from tests.harness import ADMIN_KEY, KEY_A, KEY_B, Gateway, table_dict
from tests.security.http import call


def test_wrong_keys_are_throttled_per_address_and_valid_keys_from_it_still_pass() -> None:
    with Gateway(table_dict()) as gateway:
        for attempt in range(20):
            answer = call(gateway, "GET", "/v2/models", f"sk-guess-{attempt}")
            assert answer.status == 401, answer.text
        for attempt in range(20, 25):
            blocked = call(gateway, "GET", "/v2/models", f"sk-guess-{attempt}")
            assert blocked.status == 429
            assert blocked.json()["error"]["code"] == "too_many_failed_auth_attempts"
            assert 1 <= int(blocked.headers["Retry-After"]) <= 60
        assert call(gateway, "GET", "/admin/config", "sk-admin-guess").status == 429
        # Other clients behind the same address (an Ingress, a NAT) are not locked out by them.
        assert call(gateway, "GET", "/v2/models", KEY_A).status == 200
        assert call(gateway, "GET", "/v2/models", KEY_B).status == 200
        assert call(gateway, "GET", "/admin/config", ADMIN_KEY).status == 200
        assert call(gateway, "GET", "/healthz").status == 200


def test_forwarded_for_counts_per_client_behind_a_trusted_proxy() -> None:
    table = table_dict(server={"trusted_proxies": ["127.0.0.0/8", "::1/128"]})
    with Gateway(table) as gateway:
        for attempt in range(20):
            answer = call(gateway, "GET", "/v2/models", f"sk-guess-{attempt}",
                          headers={"X-Forwarded-For": "203.0.113.5"})
            assert answer.status == 401
        assert call(gateway, "GET", "/v2/models", "sk-guess", headers={"X-Forwarded-For": "203.0.113.5"}).status == 429
        # What the client put left of its own address is not believed: still 203.0.113.5.
        spoofed = {"X-Forwarded-For": "198.51.100.9, 203.0.113.5"}
        assert call(gateway, "GET", "/v2/models", "sk-guess", headers=spoofed).status == 429
        # Another client behind the same proxy has its own count.
        assert call(gateway, "GET", "/v2/models", "sk-guess", headers={"X-Forwarded-For": "203.0.113.6"}).status == 401


def test_forwarded_for_from_an_untrusted_peer_is_ignored() -> None:
    with Gateway(table_dict()) as gateway:  # no trusted_proxies: the peer is the client
        for attempt in range(20):
            spoofed = {"X-Forwarded-For": f"198.51.100.{attempt}"}
            assert call(gateway, "GET", "/v2/models", f"sk-guess-{attempt}", headers=spoofed).status == 401
        fresh = {"X-Forwarded-For": "198.51.100.200"}
        assert call(gateway, "GET", "/v2/models", "sk-guess", headers=fresh).status == 429


def test_the_client_behind_trusted_proxies_is_the_nearest_untrusted_hop() -> None:
    proxies = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("2001:db8:ffff::/48"))
    peer = ipaddress.ip_address("10.1.2.3")
    untrusted = ipaddress.ip_address("192.0.2.50")
    assert forwarded_client(peer, ["203.0.113.5"], proxies) == ipaddress.ip_address("203.0.113.5")
    assert forwarded_client(peer, ["198.51.100.1, 203.0.113.5, 10.0.0.7"], proxies) == \
        ipaddress.ip_address("203.0.113.5")
    assert forwarded_client(peer, ["198.51.100.1", "203.0.113.5"], proxies) == ipaddress.ip_address("203.0.113.5")
    assert forwarded_client(untrusted, ["203.0.113.5"], proxies) == untrusted
    assert forwarded_client(peer, ["not-an-address"], proxies) == peer
    assert forwarded_client(peer, ["::ffff:203.0.113.5"], proxies) == ipaddress.ip_address("203.0.113.5")
    assert forwarded_client(peer, [], proxies) == peer


def test_trusted_proxies_are_validated_at_load() -> None:
    with pytest.raises(ConfigError) as refused:
        parse(table_dict(server={"trusted_proxies": ["10.0.0.0/8", "10.0.0.1/8", "ingress"]}))
    assert [e for e in refused.value.errors if "server.trusted_proxies[1]" in e]
    assert [e for e in refused.value.errors if "server.trusted_proxies[2]" in e]
    table = parse(table_dict(server={"trusted_proxies": ["10.0.0.0/8", "fd00::/8"]}))
    assert [str(n) for n in table.server.trusted_proxies] == ["10.0.0.0/8", "fd00::/8"]


def test_the_limiter_forgets_failures_after_the_window() -> None:
    now = [1000.0]
    limiter = FailedAuthLimiter(limit=3, window=60, clock=lambda: now[0])
    for _ in range(3):
        limiter.check("203.0.113.7")
        limiter.record_failure("203.0.113.7")
    with pytest.raises(GatewayError) as refused:
        limiter.check("203.0.113.7")
    assert refused.value.status == 429 and refused.value.headers["Retry-After"] == "60"
    limiter.check("203.0.113.8")  # another address is not affected
    now[0] += 30
    with pytest.raises(GatewayError) as still:
        limiter.check("203.0.113.7")
    assert still.value.headers["Retry-After"] == "30"
    now[0] += 30.001
    limiter.check("203.0.113.7")


def test_ipv6_addresses_count_per_64_and_mapped_ipv4_as_ipv4() -> None:
    class Peer:
        def __init__(self, remote: str) -> None:
            self.remote = remote

    assert client_address(Peer("2001:db8:1:2::5")) == client_address(Peer("2001:db8:1:2:ffff::1"))  # type: ignore[arg-type]
    assert client_address(Peer("2001:db8:1:3::5")) != client_address(Peer("2001:db8:1:2::5"))  # type: ignore[arg-type]
    assert client_address(Peer("::ffff:192.0.2.1")) == "192.0.2.1"  # type: ignore[arg-type]


def admin_routes(gw: Gateway) -> list[tuple[str, str]]:
    assert gw.app is not None
    routes = [(route.method, route.resource.canonical) for route in gw.app.router.routes()
              if route.resource is not None and route.resource.canonical.startswith("/admin")
              and route.method != "HEAD"]
    assert len(routes) >= 3
    return routes


def test_every_admin_route_takes_the_admin_key_and_only_it(gw: Gateway) -> None:
    for method, path in admin_routes(gw):
        for key in (None, KEY_A, KEY_B, "sk-nonsense"):
            answer = call(gw, method, path, key)
            assert answer.status == 401, (method, path, key, answer.text)
            assert answer.json()["error"]["code"] == "invalid_api_key"
        assert call(gw, method, path, headers={"Authorization": ADMIN_KEY}).status == 401  # not as a bearer token
        assert call(gw, method, path, ADMIN_KEY).status == 200, (method, path)


def test_the_admin_key_is_not_a_client_key(gw: Gateway) -> None:
    assert call(gw, "GET", "/v2/models", ADMIN_KEY).status == 401


def test_an_unknown_admin_path_is_not_found_whatever_the_key(gw: Gateway) -> None:
    for key in (None, ADMIN_KEY):
        assert call(gw, "GET", "/admin/keys", key).status == 404


def test_a_client_reads_only_its_own_usage(gw: Gateway) -> None:
    gw.client(KEY_A).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    gw.client(KEY_B).chat.completions.create(model="Llama-3.1-70B-Instruct",
                                             messages=[{"role": "user", "content": "hi"}])
    for key, name, other in ((KEY_A, "team-a", "team-b"), (KEY_B, "team-b", "team-a")):
        for query in ({}, {"key": other}, {"key": name}):
            rows = call(gw, "GET", "/v2/usage", key, params=query).json()["data"]
            assert rows and {row["key"] for row in rows} == {name}, (name, query, rows)
    everyone = call(gw, "GET", "/admin/usage", ADMIN_KEY).json()["data"]
    assert {"team-a", "team-b"} <= {row["key"] for row in everyone}


def _raw(gw: Gateway, head: bytes) -> tuple[int, bytes, bytes]:
    """One request written byte for byte (what no well-behaved client would send): status, headers, body."""
    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as sock:
        sock.sendall(head + b"\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head_part, _, body = data.partition(b"\r\n\r\n")
    return int(head_part.split(b" ", 2)[1]), head_part, body


@pytest.mark.parametrize("authorization", [
    "Bearer sk-\u00e4\u00f6\u00fc-\u4e2d\u6587".encode(),  # UTF-8 beyond ASCII
    b"Bearer sk-\xff\xfe\x80",  # not UTF-8 at all
    b"Bearer " + b"k" * 8000,  # long, under the header limit: refused without hashing it whole
    b"Bearer " + KEY_A.encode() + b"\x0b",  # a valid key with a trailing control character
], ids=["utf8", "not-utf8", "long", "control-char"])
def test_hostile_keys_are_a_clean_401_without_echo(gw: Gateway, authorization: bytes) -> None:
    for path in (b"/v2/models", b"/admin/config"):
        status, head, body = _raw(gw, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                  b"Authorization: " + authorization + b"\r\n")
        assert status in (400, 401), (path, head, body)
        assert orjson.loads(body)["error"]["code"] in ("invalid_api_key", "bad_http_request"), body
        assert authorization[7:40] not in body and authorization[7:40] not in head


def test_a_huge_authorization_header_is_a_json_400(gw: Gateway) -> None:
    status, head, body = _raw(gw, b"GET /v2/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                              b"Authorization: Bearer " + b"k" * 100_000 + b"\r\n")
    assert status == 400 and orjson.loads(body)["error"]["code"] == "request_header_too_large"
    assert b"Server: llm-router\r\n" in head


def test_two_authorization_headers_authenticate_nobody(gw: Gateway) -> None:
    for first, second in ((KEY_A, "sk-other"), ("sk-other", KEY_A), (KEY_A, KEY_A)):
        status, _, body = _raw(gw, b"GET /v2/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                               b"Authorization: Bearer " + first.encode() + b"\r\n"
                               b"Authorization: Bearer " + second.encode() + b"\r\n")
        assert status == 401, body
    status, _, _ = _raw(gw, b"GET /admin/config HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                        b"Authorization: Bearer " + ADMIN_KEY.encode() + b"\r\n"
                        b"Authorization: Bearer " + ADMIN_KEY.encode() + b"\r\n")
    assert status == 401


def test_a_crlf_in_a_header_value_injects_nothing_into_the_answer(gw: Gateway) -> None:
    status, head, _ = _raw(gw, b"GET /v2/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                           b"X-Request-Id: abc\rSet-Cookie: x=1\r\nAuthorization: Bearer " + KEY_A.encode() + b"\r\n")
    assert status in (200, 400)
    assert b"Set-Cookie" not in head


def test_the_server_header_names_no_library_or_version(gw: Gateway) -> None:
    for method, path, key in (("GET", "/v2/models", KEY_A), ("GET", "/v2/models", "sk-wrong"),
                              ("GET", "/nowhere", None), ("GET", "/metrics", None), ("GET", "/healthz", None),
                              ("GET", "/admin/config", ADMIN_KEY)):
        answer = call(gw, method, path, key)
        assert answer.headers.get("Server") == "llm-router", (path, answer.headers)
    stream = call(gw, "POST", "/v2/chat/completions", KEY_A, json={
        "model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "hi"}]})
    assert stream.status == 200 and stream.headers.get("Server") == "llm-router"
