"""Backpressure: at most `max_concurrency` upstream requests in flight per provider,
up to `max_queue` more waiting for a slot, and a 503 beyond that, so that a slow
provider holds its own slots and queue and nobody else's."""

from __future__ import annotations

import asyncio

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
    `Overloaded`; every acquire is matched by one `release`."""

    def __init__(self, provider: str, max_concurrency: int, max_queue: int) -> None:
        self.provider = provider
        self.max_concurrency = max_concurrency
        self.max_queue = max_queue
        self._slots = asyncio.Semaphore(max_concurrency)
        self.waiting = 0

    async def acquire(self, timeout: float) -> None:
        if not self._slots.locked():
            await self._slots.acquire()  # a free slot: returns at once
            return
        if self.waiting >= self.max_queue:
            raise Overloaded(self.provider, f"{self.max_concurrency} in flight, {self.waiting} queued")
        self.waiting += 1
        try:
            async with asyncio.timeout(max(0.0, timeout)):
                await self._slots.acquire()
        except TimeoutError:
            raise Overloaded(self.provider, "no slot freed up before the request's deadline") from None
        finally:
            self.waiting -= 1

    def release(self) -> None:
        self._slots.release()


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
