"""Vertex AI credentials: where the bearer token comes from.

In order of preference: `api_key` (a static bearer token), `token_file` (read at build,
re-read when its mtime changes, checked at most every `TOKEN_FILE_CHECK_SECONDS`),
`token_command` (run without a shell by `refresh()`, which the router may call at start
and periodically; a stale token also triggers a background refresh from `current()`,
and a call made before any token exists answers a retryable 503). A simulated provider
(`llm-router demo`) gets a placeholder and never runs a command.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import time

from providers.base import UpstreamError
from providers.settings import ProviderSettings

TOKEN_FILE_CHECK_SECONDS = 5.0
TOKEN_COMMAND_MAX_AGE_SECONDS = 45 * 60  # Google access tokens live an hour
TOKEN_COMMAND_TIMEOUT_SECONDS = 30.0
TOKEN_COMMAND_RETRY_SECONDS = 10.0  # a failing command is not re-run more often

log = logging.getLogger(__name__)


class StaticCredential:
    """A bearer token given in the table (`api_key`)."""

    def __init__(self, value: str) -> None:
        self._value = value

    def current(self) -> str:
        return self._value

    async def refresh(self) -> None:
        return None


class TokenFileCredential:
    """A bearer token kept in a file that something else (a sidecar, a cron job)
    rewrites: read at build, re-read when its mtime changes, stat'ed at most every
    TOKEN_FILE_CHECK_SECONDS so that the request path almost never touches the disk."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._token = ""
        self._mtime = -1.0
        self._checked = float("-inf")
        self._reload()

    def current(self) -> str:
        now = time.monotonic()
        if now - self._checked >= TOKEN_FILE_CHECK_SECONDS:
            self._reload()
        if not self._token:
            raise UpstreamError(503, "The Vertex AI token file is missing or empty", type="server_error")
        return self._token

    async def refresh(self) -> None:
        self._reload()

    def _reload(self) -> None:
        self._checked = time.monotonic()
        try:
            mtime = os.stat(self._path).st_mtime
            if mtime != self._mtime:
                with open(self._path, encoding="utf-8") as handle:
                    self._token = handle.read().strip()
                self._mtime = mtime
        except OSError:
            self._token, self._mtime = "", -1.0


class TokenCommandCredential:
    """A bearer token printed by a command (e.g. `gcloud auth print-access-token`),
    run without a shell by `refresh()`; a stale token starts a background refresh and
    is used until the new one arrives (Google tokens outlive our max age by 15 min)."""

    def __init__(self, command: str) -> None:
        self._argv = shlex.split(command)
        self._token = ""
        self._fetched = float("-inf")
        self._running: asyncio.Task[None] | None = None
        self._attempted = float("-inf")

    def current(self) -> str:
        if time.monotonic() - self._fetched >= TOKEN_COMMAND_MAX_AGE_SECONDS:
            self._refresh_in_background()
        if not self._token:
            raise UpstreamError(
                503, "The Vertex AI token is being fetched", type="server_error", retryable=True, retry_after=1.0
            )
        return self._token

    def _refresh_in_background(self) -> None:
        running = self._running is not None and not self._running.done()
        if running or time.monotonic() - self._attempted < TOKEN_COMMAND_RETRY_SECONDS:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # not serving yet: the first request will start it
        self._start().add_done_callback(_log_refresh_failure)

    def _start(self) -> asyncio.Task[None]:
        if self._running is None or self._running.done():
            self._attempted = time.monotonic()
            self._running = asyncio.get_running_loop().create_task(self._fetch())
        return self._running

    async def refresh(self) -> None:
        """Run the command now, or wait for the run already under way."""
        await asyncio.shield(self._start())

    async def _fetch(self) -> None:
        process = await asyncio.create_subprocess_exec(
            *self._argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
        )
        try:
            out, _ = await asyncio.wait_for(process.communicate(), TOKEN_COMMAND_TIMEOUT_SECONDS)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise UpstreamError(503, "The Vertex AI token_command timed out", type="server_error") from None
        token = out.decode("utf-8", "replace").strip()
        if process.returncode != 0 or not token:
            raise UpstreamError(503, f"The Vertex AI token_command failed ({process.returncode})", type="server_error")
        self._token, self._fetched = token, time.monotonic()


def _log_refresh_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("Vertex AI token refresh failed: %s", task.exception())


Credential = StaticCredential | TokenFileCredential | TokenCommandCredential


def credential_for(config: ProviderSettings) -> Credential | None:
    """The provider's credential, or None when it has none (a keyless gateway)."""
    if config.api_key is not None and config.api_key.get():
        return StaticCredential(config.api_key.get())
    if config.simulated:  # `llm-router demo`: never run a real token command against a simulator
        return StaticCredential("simulator-key")
    if config.token_file:
        return TokenFileCredential(config.token_file)
    if config.token_command:
        return TokenCommandCredential(config.token_command)
    return None
