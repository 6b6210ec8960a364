"""One measurement: a scenario through a target, with the gateway's CPU time and
memory read from /proc around the load generator's run."""

from __future__ import annotations

import json
import math
import resource
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import procs
from scenarios import Endpoint, Scenario

BENCH = Path(__file__).resolve().parent
LOAD_CORES = "1"
# The load side (fake upstream, wrk, stream client) runs at a higher priority than the
# gateway, so that a gateway worker sharing its core never starves it (workers test).
LOAD_NICENESS = -5
MIN_REQUESTS_PER_CONNECTION = 10
QUIET_CORES = 0.15  # the machine counts as quiet below this many busy cores


@dataclass(frozen=True)
class Settings:
    duration: int  # seconds of measured load per scenario and target
    warmup: int  # seconds of load before, not counted
    work: Path  # bench/.work
    python: str  # the interpreter that runs the stream load generator
    upstream_pid: int = 0  # to tell the load side's CPU from the rest of the machine's
    max_duration: int = 12  # the longest a wrk run may be stretched to (slow gateways)
    wait_quiet: float = 0.0  # seconds to wait, before each measurement, for others' jobs to end
    redis_port: int = 0  # a Redis server whose commands per request are counted, when set
    load_cores: str = LOAD_CORES


def preflight(ep: Endpoint, timeout: float = 30.0) -> str | None:
    """One request, read whole: None when it answers 200 with a body, else what went wrong."""
    data = json.dumps(ep.body).encode()
    req = urllib.request.Request(ep.url, data=data, method="POST",
                                 headers={"Content-Type": "application/json", **ep.headers})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body = resp.read()
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}: {exc.read()[:300].decode(errors='replace')}"
    except (urllib.error.URLError, OSError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None if body else "empty body"


def _result_line(output: str) -> dict[str, Any]:
    for line in output.splitlines():
        if line.startswith("BENCH_RESULT "):
            parsed: dict[str, Any] = json.loads(line[len("BENCH_RESULT "):])
            return parsed
    raise RuntimeError(f"no BENCH_RESULT line in load generator output:\n{output[-1500:]}")


def wrk_command(ep: Endpoint, s: Scenario, seconds: int, cfg: Settings) -> list[str]:
    command = [*procs.priority_prefix(LOAD_NICENESS), "taskset", "-c", cfg.load_cores, "wrk", "-t1",
               f"-c{s.concurrency}", f"-d{seconds}s", "--timeout", "30s", "-s", str(BENCH / "chat.lua")]
    for name, value in ep.headers.items():
        command += ["-H", f"{name}: {value}"]
    return command + [ep.url]


def stream_command(ep: Endpoint, s: Scenario, seconds: int, cfg: Settings, body_file: Path) -> list[str]:
    command = [*procs.priority_prefix(LOAD_NICENESS), "taskset", "-c", cfg.load_cores, cfg.python,
               str(BENCH / "loadgen_stream.py"), "--url", ep.url,
               "--body-file", str(body_file), "--format", ep.stream_format,
               "--concurrency", str(s.concurrency), "--duration", str(seconds)]
    for name, value in ep.headers.items():
        command += ["--header", f"{name}: {value}"]
    return command


def _run(command: list[str], env_body: Path, timeout: float) -> dict[str, Any]:
    env = {"BENCH_BODY_FILE": str(env_body), "PATH": "/usr/local/bin:/usr/bin:/bin"}
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as exc:  # subprocess.run has killed it
        raise RuntimeError(f"load generator still running after {timeout:.0f} s (machine overloaded?)") from exc
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:8])} exited {done.returncode}: {done.stderr[-1500:]}")
    return _result_line(done.stdout)


def _normalise_wrk(raw: dict[str, Any], elapsed: float) -> dict[str, Any]:
    errors = sum(raw[k] for k in ("errors_connect", "errors_read", "errors_write", "errors_status",
                                  "errors_timeout"))
    seconds = raw["duration_us"] / 1e6
    return {"requests": raw["requests"], "errors": errors, "elapsed_s": seconds or elapsed,
            "rps": raw["requests"] / (seconds or elapsed), "p50_ms": raw["p50_us"] / 1000,
            "p90_ms": raw["p90_us"] / 1000, "p99_ms": raw["p99_us"] / 1000, "raw": raw}


def measure(ep: Endpoint, s: Scenario, gateway: procs.Proc | None, cfg: Settings, label: str,
            count_redis: bool = False) -> dict[str, Any]:
    """Warm up, let the gateway finish what the warm-up left, then run the load
    generator once with the gateway's CPU time read right before and right after it.
    The stream client finishes every stream it started, so its count is exact; wrk
    stops with one request in flight per connection, on average half served, so its
    CPU time is shared by the requests it counted plus concurrency/2."""
    body_file = cfg.work / f"body-{label}.json"
    body_file.write_text(json.dumps(ep.body))

    def build(seconds: int) -> list[str]:
        return stream_command(ep, s, seconds, cfg, body_file) if s.streamed else wrk_command(ep, s, seconds, cfg)

    duration = cfg.duration
    wait_quiet(cfg)
    if cfg.warmup > 0:
        warm = _run(build(cfg.warmup), body_file, timeout=cfg.warmup + 60)
        if warm["requests"] < 2 * s.concurrency:  # a slow gateway: not in steady state yet
            warm = _run(build(max(3, cfg.warmup)), body_file, timeout=max(3, cfg.warmup) + 60)
            warm_seconds = max(3, cfg.warmup)
        else:
            warm_seconds = cfg.warmup
        if not s.streamed:
            duration = wrk_seconds(cfg, s.concurrency, warm["requests"] / warm_seconds)
    if gateway:
        procs.wait_idle(gateway.pid)
    other_before = _load_side_seconds(cfg)
    busy_before = procs.system_busy_seconds()
    redis_before = procs.redis_commands(cfg.redis_port) if count_redis else 0
    cpu_before = procs.cpu_seconds(gateway.pid) if gateway else 0.0
    per_process_before = procs.per_process_cpu(gateway.pid) if gateway else {}
    started = time.monotonic()
    raw = _run(build(duration), body_file, timeout=duration + 90)
    elapsed = time.monotonic() - started
    cpu_after = procs.cpu_seconds(gateway.pid) if gateway else 0.0
    per_process_after = procs.per_process_cpu(gateway.pid) if gateway else {}
    busy = procs.system_busy_seconds() - busy_before
    redis_after = procs.redis_commands(cfg.redis_port) if count_redis else 0
    load_side = _load_side_seconds(cfg) - other_before
    result = raw if s.streamed else _normalise_wrk(raw, elapsed)
    result["command"] = " ".join(_quote(a) for a in build(duration))
    # whatever else ran on the machine meanwhile (other users' jobs): a noisy neighbour shows here
    result["load_side_cores"] = load_side / elapsed
    result["other_cores"] = max(0.0, busy - load_side - (cpu_after - cpu_before)) / elapsed
    if gateway:
        cpu = cpu_after - cpu_before
        result["cpu_s"] = cpu
        result["cores_used"] = cpu / elapsed
        served = result["requests"] + (0 if s.streamed else s.concurrency / 2)
        result["cpu_ms_per_req"] = 1000 * cpu / served if result["requests"] else None
        result["cpu_by_process_s"] = {pid: round(t - per_process_before.get(pid, 0.0), 3)
                                      for pid, t in per_process_after.items()}
        if count_redis and result["requests"]:
            result["redis_commands_per_req"] = (redis_after - redis_before) / served
        procs.wait_idle(gateway.pid)
        result["rss_after_mb"] = procs.rss_mb(gateway.pid)
    return result


def wrk_seconds(cfg: Settings, concurrency: int, warm_rps: float) -> int:
    """Long enough for MIN_REQUESTS_PER_CONNECTION requests per connection, within
    [duration, max_duration]: with wrk, the requests cut at the end of the run are
    an error of about concurrency/2 requests on the CPU per request, which must stay
    small against the requests counted (it matters for the slow gateways)."""
    wanted = MIN_REQUESTS_PER_CONNECTION * concurrency / max(warm_rps, 1e-3)
    return int(min(cfg.max_duration, max(cfg.duration, math.ceil(wanted))))


def wait_quiet(cfg: Settings) -> None:
    """Up to cfg.wait_quiet seconds for the rest of the machine to go (nearly) idle."""
    deadline = time.monotonic() + cfg.wait_quiet
    while time.monotonic() < deadline:
        before = procs.system_busy_seconds()
        time.sleep(0.5)
        if (procs.system_busy_seconds() - before) / 0.5 < QUIET_CORES:
            return


def _load_side_seconds(cfg: Settings) -> float:
    """CPU of the upstream, of this process and of the load generators it has waited for."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    upstream = procs.cpu_seconds(cfg.upstream_pid) if cfg.upstream_pid else 0.0
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime + upstream


def _quote(arg: str) -> str:
    return f"'{arg}'" if any(c in arg for c in " :{}\"") else arg


def python_for_load() -> str:
    return sys.executable
