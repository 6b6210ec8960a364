"""A minimal synchronous HTTP helper over the harness gateway's own loop (aiohttp, no extra client)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from tests.harness import Gateway


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def call(gw: Gateway, method: str, path: str, key: str | None = None, *, headers: dict[str, str] | None = None,
         params: dict[str, str] | None = None, data: Any = None, json: Any = None, timeout: float = 10) -> Answer:
    sent = dict(headers or {})
    if key is not None:
        sent["Authorization"] = f"Bearer {key}"
    if isinstance(data, bytes) and len(data) > 1024 * 1024:
        data = io.BytesIO(data)  # aiohttp warns about large raw bytes bodies

    async def go() -> Answer:
        async with aiohttp.ClientSession() as session, session.request(
                method, gw.url(path), headers=sent, params=params, data=data, json=json,
                timeout=aiohttp.ClientTimeout(total=timeout)) as response:
            return Answer(response.status, dict(response.headers), await response.read())

    return gw.run(go(), timeout + 5)  # type: ignore[no-any-return]
