"""Keys: guessing is rate limited per address, the admin key guards every /admin route
and nothing else, and a client key sees only its own usage."""

from __future__ import annotations

import pytest

from router.auth import FailedAuthLimiter, client_address
from router.errors import GatewayError
from tests.harness import ADMIN_KEY, KEY_A, KEY_B, Gateway, table_dict
from tests.security.http import call


def test_guessing_keys_is_limited_per_address_and_then_even_the_right_key_waits() -> None:
    with Gateway(table_dict()) as gateway:
        for attempt in range(20):
            answer = call(gateway, "GET", "/v2/models", f"sk-guess-{attempt}")
            assert answer.status == 401, answer.text
        blocked = call(gateway, "GET", "/v2/models", "sk-guess-20")
        assert blocked.status == 429
        assert blocked.json()["error"]["code"] == "too_many_failed_auth_attempts"
        assert 1 <= int(blocked.headers["Retry-After"]) <= 60
        # The right key from the same address waits too: a 429 must not tell a guesser which guess was right.
        assert call(gateway, "GET", "/v2/models", KEY_A).status == 429
        assert call(gateway, "GET", "/admin/config", ADMIN_KEY).status == 429
        # Health needs no key and stays open.
        assert call(gateway, "GET", "/healthz").status == 200


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
