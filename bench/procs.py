"""Processes for the bench: start pinned to cores, wait until they answer, read
their CPU time and memory from /proc (summed over the process tree, so workers
and children count), and always end them."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    started: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, chars: int = 1500) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def priority_prefix(niceness: int) -> list[str]:
    """`nice -n N` where it can take effect (a negative N needs root), else nothing."""
    if niceness == 0 or (niceness < 0 and os.geteuid() != 0):
        return []
    return ["nice", "-n", str(niceness)]


def start(name: str, argv: list[str], cores: str | None, log: Path, env: dict[str, str] | None = None,
          cwd: Path | None = None, niceness: int = 0) -> Proc:
    """Start argv (under `taskset -c cores` when given) in its own process group."""
    command = priority_prefix(niceness) + (["taskset", "-c", cores] if cores else []) + argv
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        popen = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 env=env, cwd=cwd, start_new_session=True)
    return Proc(name, popen, log)


def stop(proc: Proc, grace: float = 5.0) -> None:
    """SIGTERM the process group, then SIGKILL whatever is left after `grace` seconds."""
    if proc.popen.returncode is not None and not _group_alive(proc.pid):
        return
    _signal_group(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None and not _group_alive(proc.pid):
            return
        time.sleep(0.05)
    _signal_group(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.popen.wait(timeout=5)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def wait_http(url: str, proc: Proc, timeout: float, need_ok: bool = False) -> bool:
    """Poll url until it answers (any HTTP status, or 2xx with need_ok), the process dies
    or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            return False
        try:
            with urllib.request.urlopen(url, timeout=1.0):
                return True
        except urllib.error.HTTPError:
            if not need_ok:
                return True
            time.sleep(0.1)
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    return False


def redis_commands(port: int) -> int:
    """Commands a Redis server has run so far (INFO commandstats, summed over commands)."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"INFO commandstats\r\n")
        data = b""
        while not data.startswith(b"$") or b"\r\n" not in data or len(data) < _bulk_end(data):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    total = 0
    for line in data.decode(errors="replace").splitlines():
        if line.startswith("cmdstat_") and not line.startswith("cmdstat_info:"):
            total += int(line.split("calls=")[1].split(",")[0])
    return total


def _bulk_end(data: bytes) -> int:
    head, _, _ = data.partition(b"\r\n")
    return len(head) + 2 + int(head[1:]) + 2


# --- /proc accounting -----------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm may hold spaces and parentheses: split after the last ')'
    return raw[raw.rindex(")") + 2:].split()


def tree(root: int) -> list[int]:
    """root and every descendant, from the ppid of each process in /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields:
                children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def cpu_seconds(root: int) -> float:
    """utime+stime of the tree, plus cutime+cstime of children already reaped."""
    ticks = 0
    for pid in tree(root):
        fields = _stat_fields(pid)
        if fields:  # fields[11..14] are utime, stime, cutime, cstime (stat fields 14-17)
            ticks += sum(int(x) for x in fields[11:15])
    return ticks / CLK_TCK


def rss_mb(root: int) -> float:
    """Resident memory of the tree in MB (RSS summed: counts shared pages once per process)."""
    total_kb = 0
    for pid in tree(root):
        try:
            total_kb += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_KB
        except (OSError, IndexError, ValueError):
            continue
    return total_kb / 1024


def pss_mb(root: int) -> float:
    """Proportional memory of the tree in MB (shared pages split between processes)."""
    total_kb = 0
    for pid in tree(root):
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total_kb += int(line.split()[1])
        except (OSError, ValueError):
            continue
    return total_kb / 1024


def per_process_cpu(root: int) -> dict[int, float]:
    out = {}
    for pid in tree(root):
        fields = _stat_fields(pid)
        if fields:
            out[pid] = sum(int(x) for x in fields[11:13]) / CLK_TCK
    return out


def wait_idle(root: int, quiet_seconds: float = 0.3, timeout: float = 15.0) -> None:
    """Wait until the tree has burnt (almost) no CPU for quiet_seconds: in-flight work is done."""
    deadline = time.monotonic() + timeout
    last = cpu_seconds(root)
    while time.monotonic() < deadline:
        time.sleep(quiet_seconds)
        now = cpu_seconds(root)
        if now - last <= 0.02 * quiet_seconds * 10:
            return
        last = now


def system_busy_seconds() -> float:
    """CPU time spent by everything on the machine (all cores), from /proc/stat."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK
