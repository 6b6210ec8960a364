"""The local usage spool: JSONL records that Redis could not take yet, fsync'd on write.

Several processes (workers, replicas on one volume) may share one spool path. A
writer appends under an exclusive flock and checks that the file it holds is still
the one at the path; a replayer claims the whole file by renaming it (new writers
then start a fresh file), takes its lock (so a writer still holding the old file
finishes first) and keeps it while it sends the records, deleting the file only
once Redis took them all. A claimed file whose replay failed stays for the next
replay, by this or any other process; records are idempotent by request id, so
sending one twice counts it once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import logging
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson

from router.state.metering import UsageRecord

log = logging.getLogger("llm_router")
CLAIMED = ".claimed-"


def encode(record: UsageRecord) -> bytes:
    return orjson.dumps(dataclasses.asdict(record)) + b"\n"


def decode(line: bytes) -> UsageRecord | None:
    try:
        return UsageRecord(**orjson.loads(line))
    except (orjson.JSONDecodeError, TypeError):
        return None  # a line cut short by a crash mid-write


class Spool:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._counted: dict[Path, tuple[int, int, int]] = {}  # file -> (inode, bytes counted, lines in them)

    def depth(self) -> tuple[int, int]:
        """Records and bytes waiting in the spool (every process's files at this path).
        Lines are counted once: a file that grew is read from where it was counted to."""
        records = size = 0
        counted: dict[Path, tuple[int, int, int]] = {}
        for file in ([self.path] if self.path.exists() else []) + self._claimed():
            try:
                with open(file, "rb") as handle:
                    stat = os.fstat(handle.fileno())
                    inode, done, lines = self._counted.get(file, (stat.st_ino, 0, 0))
                    if inode != stat.st_ino or done > stat.st_size:
                        done, lines = 0, 0
                    handle.seek(done)
                    while chunk := handle.read(1 << 20):
                        lines += chunk.count(b"\n")
                        done += len(chunk)
            except FileNotFoundError:
                continue  # replayed meanwhile
            counted[file] = (stat.st_ino, done, lines)
            records, size = records + lines, size + done
        self._counted = counted
        return records, size

    def append(self, records: list[UsageRecord]) -> None:
        """Write and fsync; blocking (a few ms), so the event loop calls it rarely or in a thread."""
        if not records:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = b"".join(encode(r) for r in records)
        while True:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                if _same_file(fd, self.path):
                    os.write(fd, data)
                    os.fsync(fd)
                    return
            finally:
                os.close(fd)  # closing releases the lock
            # a replayer claimed the file between our open and our lock: write to the new one

    def pending(self) -> bool:
        return self.path.exists() or any(self._claimed())

    def _claimed(self) -> list[Path]:
        return sorted(self.path.parent.glob(self.path.name + CLAIMED + "*")) if self.path.parent.exists() else []

    def claim(self) -> list[Path]:
        """Take the current spool file (if any) and return every claimed file waiting for replay."""
        if self.path.exists():
            target = self.path.with_name(f"{self.path.name}{CLAIMED}{os.getpid()}-{uuid.uuid4().hex[:8]}")
            with contextlib.suppress(FileNotFoundError):  # another process claimed it first
                os.rename(self.path, target)
        return self._claimed()

    @contextmanager
    def replaying(self, claimed: Path) -> Iterator[list[UsageRecord] | None]:
        """The records of a claimed file, locked against other replayers (None: busy or gone).
        The file is deleted when the block ends without an exception."""
        try:
            fd = os.open(claimed, os.O_RDWR)
        except FileNotFoundError:
            yield None
            return
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield None
                return
            if not _same_file(fd, claimed):
                yield None  # replayed and deleted by another process meanwhile
                return
            with os.fdopen(os.dup(fd), "rb") as handle:
                records = [r for r in (decode(line) for line in handle if line.strip()) if r is not None]
            yield records
            os.unlink(claimed)
        finally:
            os.close(fd)


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False
