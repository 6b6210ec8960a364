"""Backpressure: at most `max_concurrency` upstream requests in flight per provider,
up to `max_queue` more waiting for a slot, and a 503 beyond that, so that a slow
provider holds its own slots and queue and nobody else's."""

from __future__ import annotations

import asyncio
from collections import deque

from providers.base import UpstreamError


class Overloaded(UpstreamError):
    """The provider's slots and queue are full, or the wait for a slot ran past the
    request's deadline. Not the provider's fault: no retry, no cooldown; the next
    target may serve."""

    def __init__(self, provider: str, reason: str) -> None:
        super().__init__(503, f"The gateway is at its limit of concurrent requests to provider '{provider}' "
                              f"({reason}); try again shortly.", type="server_error",
                         code="provider_overloaded", retryable=False, retry_after=1.0)


class ProviderGate:
    """The slots of one provider. `acquire` either returns holding a slot or raises
    `Overloaded`; every acquire is matched by one `release`. A freed slot is handed
    to the longest waiter, so the queue is first come, first served. (A counter, not
    asyncio.Semaphore: the free-slot test runs on every request, and the semaphore's
    `locked()` walks its waiters.)"""

    def __init__(self, provider: str, max_concurrency: int, max_queue: int) -> None:
        self.provider = provider
        self.max_concurrency = max_concurrency
        self.max_queue = max_queue
        self.in_flight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def acquire(self, timeout: float) -> None:
        if self.in_flight < self.max_concurrency and not self._waiters:
            self.in_flight += 1
            return
        if len(self._waiters) >= self.max_queue:
            raise Overloaded(self.provider, f"{self.max_concurrency} in flight, {len(self._waiters)} queued")
        handed = asyncio.get_running_loop().create_future()
        self._waiters.append(handed)
        try:
            async with asyncio.timeout(max(0.0, timeout)):
                await handed
        except BaseException as exc:
            if handed.done() and not handed.cancelled():
                self.release()  # the slot arrived as the wait ended: pass it on
            elif handed in self._waiters:  # a release may already have passed over it
                self._waiters.remove(handed)
            if isinstance(exc, TimeoutError):
                raise Overloaded(self.provider, "no slot freed up before the request's deadline") from None
            raise

    def release(self) -> None:
        while self._waiters:
            handed = self._waiters.popleft()
            if not handed.done():
                handed.set_result(None)  # the slot goes straight to the waiter: in_flight stays
                return
        self.in_flight -= 1


class Gates:
    """One gate per provider, kept across table reloads while its limits are unchanged
    (requests in flight release into the gate they acquired)."""

    def __init__(self) -> None:
        self._gates: dict[str, ProviderGate] = {}

    def for_provider(self, provider: str, max_concurrency: int, max_queue: int) -> ProviderGate:
        gate = self._gates.get(provider)
        if gate is None or (gate.max_concurrency, gate.max_queue) != (max_concurrency, max_queue):
            gate = self._gates[provider] = ProviderGate(provider, max_concurrency, max_queue)
        return gate
