"""Reload the route table when its file changes (`serve --watch`).

Kubernetes updates a mounted ConfigMap by writing a new timestamped directory and
swapping the `..data` symlink to it: the file's own path never changes, inotify on
it sees nothing, and the old content stays readable under the old target. So the
watcher polls, once a second, what the path resolves to, that file's mtime and size,
and a hash of its content (mtimes are coarse; an edit within the same second must
count). The stat and the read run in a thread, off the event loop; only a change
reloads, on the loop, through the same `Reloader` as SIGHUP and the admin API.
Each worker process watches on its own, so `--workers N` needs no coordination.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from router.config.reload import RELOADER
from router.config.schema import ConfigError

log = logging.getLogger("llm_router")
POLL_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Fingerprint:
    resolved: str
    mtime_ns: int
    size: int
    sha256: str


def fingerprint(path: Path) -> Fingerprint | None:
    """What the file is now; None while it cannot be read (mid-swap, deleted)."""
    try:
        resolved = os.path.realpath(path)
        with open(resolved, "rb") as file:
            stat = os.fstat(file.fileno())
            content = file.read()
    except OSError:
        return None
    return Fingerprint(resolved, stat.st_mtime_ns, stat.st_size, hashlib.sha256(content).hexdigest())


class FileWatcher:
    """Calls `on_change` on the loop whenever the file's fingerprint changes."""

    def __init__(self, path: Path, on_change: Callable[[], None], interval: float = POLL_SECONDS) -> None:
        self.path = path
        self.on_change = on_change
        self.interval = interval
        self.seen: Fingerprint | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.seen = await asyncio.to_thread(fingerprint, self.path)
        self._task = asyncio.get_running_loop().create_task(self._poll(), name=f"watch {self.path}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            now = await asyncio.to_thread(fingerprint, self.path)
            if now is None or now == self.seen:
                continue  # unreadable for a moment: keep serving, look again next time
            # Seen before reloading: a broken file is refused once, not every second.
            self.seen = now
            try:
                self.on_change()
            except Exception:  # the watcher must outlive any reload problem
                log.exception("reload after a file change failed")


def table_watcher(interval: float = POLL_SECONDS) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup context watching the app's route table file while the app runs."""

    async def watching(app: web.Application) -> AsyncIterator[None]:
        path = app[RELOADER].path
        watcher = FileWatcher(path, lambda: reload_after_change(app), interval)
        await watcher.start()
        log.info("watching the route table file", extra={"fields": {"file": str(path), "interval_s": interval}})
        try:
            yield
        finally:
            await watcher.stop()

    return watching


def reload_after_change(app: web.Application) -> None:
    with contextlib.suppress(ConfigError):  # logged and counted by the reloader; the running table stays
        app[RELOADER].reload("file")
