"""`make bench`: every scenario through every target, back to back, in one run.

Targets: direct to the fake upstream, the floor (bench/floor.py), llm-router,
LiteLLM's proxy and Portkey's gateway. The gateway under test runs alone, pinned
to core 0; the fake upstream and the load generators share core 1. Each gateway is
started once, measured on every scenario it serves, then stopped. Writes
bench/.work/results.json, bench/RESULTS.md and bench/latency.png.

    .venv/bin/python bench/run.py                       # a few minutes
    .venv/bin/python bench/run.py --duration 10 --soak 600
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

import gateways
import measure
import procs
import report
from scenarios import SCENARIOS, Scenario, Target, targets

BENCH = Path(__file__).resolve().parent
ALL_TARGETS = ("direct", "floor", "llm-router", "llm-router-redis", "litellm", "portkey")


def machine() -> dict[str, str]:
    model = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    import os

    return {"nproc": str(os.cpu_count()), "cpu": model, "kernel": platform.release(),
            "mem_total": next((line.split(":")[1].strip() for line in Path("/proc/meminfo").read_text().splitlines()
                               if line.startswith("MemTotal")), "?")}


def install(args: argparse.Namespace, work: Path, wanted: list[str]) -> dict[str, str]:
    """Install what the chosen targets need; return {target: why it cannot run}."""
    problems: dict[str, str] = {}
    if error := gateways.ensure_wrk(work):
        sys.exit(f"bench: {error}")
    if args.skip_install:
        return problems
    if "litellm" in wanted and (error := gateways.ensure_litellm(work)):
        problems["litellm"] = error
    if "portkey" in wanted and (error := gateways.ensure_portkey(work)):
        problems["portkey"] = error
    return problems


def run_target(target: Target, scenarios: list[Scenario], args: argparse.Namespace, cfg: measure.Settings,
               ports: dict[str, int], out: dict[str, Any]) -> None:
    """Start one gateway (none for direct), measure every scenario it serves, stop it."""
    entry: dict[str, Any] = out["targets"].setdefault(target.name, {"scenarios": {}})
    gateway: procs.Proc | None = None
    try:
        if target.is_gateway:
            redis_url = f"redis://127.0.0.1:{cfg.redis_port}/0" if cfg.redis_port else None
            spec = gateways.launch(target.name, target.port, ports["upstream"], cfg.work, redis_url=redis_url)
            started = spec if isinstance(spec, str) else gateways.start_gateway(target.name, spec, target.port,
                                                                                 cfg.work)
            if isinstance(started, str):
                entry["unavailable"] = started
                print(f"  {target.name}: NOT AVAILABLE: {started.splitlines()[0][:300]}", flush=True)
                return
            gateway = started
            entry["command"] = " ".join(gateway.popen.args)  # type: ignore[arg-type]
            time.sleep(1.0)  # let start-up work settle before reading idle memory
            entry["rss_idle_mb"] = procs.rss_mb(gateway.pid)
            entry["pss_idle_mb"] = procs.pss_mb(gateway.pid)
        for s in scenarios:
            ep = target.endpoint(s)
            if ep is None:
                continue
            label = f"{target.name}-{s.name}"
            if error := measure.preflight(ep):
                entry["scenarios"][s.name] = {"failed": error}
                print(f"  {label}: FAILED preflight: {error[:200]}", flush=True)
                continue
            try:
                result = measure.measure(ep, s, gateway, cfg, label, count_redis=target.name.endswith("-redis"))
            except (RuntimeError, OSError) as exc:
                entry["scenarios"][s.name] = {"failed": str(exc)[:500]}
                print(f"  {label}: FAILED: {str(exc)[:300]}", flush=True)
                continue
            entry["scenarios"][s.name] = result
            print(f"  {label}: {report.one_line(result)}", flush=True)
        if gateway:
            entry["rss_after_mb"] = procs.rss_mb(gateway.pid)
            entry["pss_after_mb"] = procs.pss_mb(gateway.pid)
    finally:
        if gateway:
            procs.stop(gateway)


def workers_test(args: argparse.Namespace, cfg: measure.Settings, ports: dict[str, int],
                 out: dict[str, Any]) -> None:
    """llm-router with one worker on core 0 against two workers on cores 0-1, same load
    (wrk and the upstream on core 1 both times). The load side runs at a higher priority
    (measure.LOAD_NICENESS) so that the worker sharing its core never starves it: that
    worker gets what the load leaves of core 1. The gateway's own CPU use is recorded so
    that throughput can also be compared per core it actually got."""
    s = next(x for x in SCENARIOS if x.name == "chat-c64")
    result: dict[str, Any] = {}
    out["workers"] = result
    for workers, cores in ((1, "0"), (2, "0,1")):
        spec = gateways.launch("llm-router", ports["llm-router"], ports["upstream"], cfg.work, workers=workers)
        if isinstance(spec, str):
            result["unavailable"] = spec
            return
        started = gateways.start_gateway("llm-router", spec, ports["llm-router"], cfg.work, cores=cores)
        if isinstance(started, str):
            result["unavailable"] = started
            return
        try:
            ep = targets(ports)["llm-router"].endpoint(s)
            assert ep is not None
            time.sleep(1.0)
            row = measure.measure(ep, s, started, cfg, f"llm-router-w{workers}")
            row["cores"] = cores
            row["processes"] = len(procs.tree(started.pid))
            row["command"] = " ".join(started.popen.args)  # type: ignore[arg-type]
            row["rss_idle_mb"] = procs.rss_mb(started.pid)
            result[f"w{workers}"] = row
            print(f"  llm-router --workers {workers} on cores {cores}: {report.one_line(row)}", flush=True)
        finally:
            procs.stop(started)


def soak_test(args: argparse.Namespace, cfg: measure.Settings, ports: dict[str, int], out: dict[str, Any]) -> None:
    """Memory of one gateway over a bounded soak: light load (wrk, 8 connections) for
    --soak seconds with RSS sampled, then idle."""
    name = args.soak_target
    port = ports[name]
    spec = gateways.launch(name, port, ports["upstream"], cfg.work)
    started = spec if isinstance(spec, str) else gateways.start_gateway(name, spec, port, cfg.work)
    if isinstance(started, str):
        out["soak"] = {"target": name, "unavailable": started}
        return
    samples: list[tuple[float, float]] = []
    try:
        time.sleep(1.0)
        idle_before = procs.rss_mb(started.pid)
        s = Scenario("soak", "openai", "chat", 8, "soak")
        ep = targets(ports)[name].endpoint(s)
        assert ep is not None
        body_file = cfg.work / "body-soak.json"
        body_file.write_text(json.dumps(ep.body))
        load = procs.start("wrk-soak", measure.wrk_command(ep, s, args.soak, cfg), None,
                           cfg.work / "wrk-soak.log", env={"BENCH_BODY_FILE": str(body_file), "PATH": "/usr/bin:/bin"})
        try:
            t0 = time.monotonic()
            step = max(1.0, args.soak / 20)
            while load.alive() and time.monotonic() - t0 < args.soak + 30:
                samples.append((round(time.monotonic() - t0, 1), procs.rss_mb(started.pid)))
                time.sleep(step)
        finally:
            procs.stop(load)
        procs.wait_idle(started.pid)
        time.sleep(2.0)
        out["soak"] = {"target": name, "seconds": args.soak, "rss_idle_before_mb": idle_before,
                       "rss_idle_after_mb": procs.rss_mb(started.pid), "samples": samples,
                       "requests": report.wrk_requests(load.log_tail(4000))}
        print(f"  soak {name}: idle {idle_before:.1f} MB -> {out['soak']['rss_idle_after_mb']:.1f} MB "
              f"after {args.soak} s", flush=True)
    finally:
        procs.stop(started)


def start_redis(port: int, work: Path) -> procs.Proc | None:
    """A Redis of the bench's own (no persistence) for llm-router-redis, on the load side's core."""
    if not shutil.which("redis-server"):
        return None
    proc = procs.start("redis", ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                 "--appendonly", "no"], measure.LOAD_CORES, work / "redis.log",
                       niceness=measure.LOAD_NICENESS)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                procs.redis_commands(port)
                return proc
            except OSError:
                time.sleep(0.1)
    except BaseException:
        procs.stop(proc)
        raise
    procs.stop(proc)
    return None


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=int, default=3, help="measured seconds per scenario and target")
    p.add_argument("--warmup", type=int, default=1, help="seconds of load before each measurement")
    p.add_argument("--max-duration", type=int, default=12,
                   help="a wrk run is stretched up to this (seconds) to count 10 requests per connection")
    p.add_argument("--wait-quiet", type=float, default=0.0,
                   help="before each measurement, wait up to this many seconds for other jobs to leave the machine")
    p.add_argument("--soak", type=int, default=60, help="seconds of the memory soak (issue 9: 600); 0 skips it")
    p.add_argument("--soak-target", default="llm-router", choices=("floor", "llm-router", "litellm", "portkey"))
    p.add_argument("--targets", default=",".join(ALL_TARGETS),
                   help="comma-separated subset of " + ",".join(ALL_TARGETS))
    p.add_argument("--scenarios", default=",".join(s.name for s in SCENARIOS), help="comma-separated subset")
    p.add_argument("--no-workers", action="store_true", help="skip the one-vs-two-workers test")
    p.add_argument("--latency-ms", type=float, default=0.0, help="the fake upstream's delay before the first byte")
    p.add_argument("--chunk-interval-ms", type=float, default=1.0, help="the fake upstream's stream pacing")
    p.add_argument("--base-port", type=int, default=18000)
    p.add_argument("--skip-install", action="store_true", help="use what bench/.work already holds")
    p.add_argument("--results", default=str(BENCH / "RESULTS.md"))
    return p.parse_args()


def main() -> None:
    args = parse_args()
    # SIGTERM (e.g. make being stopped) unwinds like Ctrl-C, so every finally stops its processes
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored
    work = BENCH / ".work"
    work.mkdir(exist_ok=True)
    wanted = [t for t in args.targets.split(",") if t]
    unknown = set(wanted) - set(ALL_TARGETS)
    if unknown:
        sys.exit(f"bench: unknown targets {sorted(unknown)}")
    scenarios = [s for s in SCENARIOS if s.name in args.scenarios.split(",")]
    b = args.base_port
    ports = {"upstream": b + 1, "floor": b + 10, "llm-router": b + 20, "litellm": b + 30, "portkey": b + 40,
             "redis": b + 50}
    out: dict[str, Any] = {"started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "machine": machine(),
                           "argv": sys.argv, "settings": vars(args), "targets": {}}
    print("bench: installing what is missing (bench/.work) ...", flush=True)
    problems = install(args, work, wanted)
    out["versions"] = gateways.versions(work)
    upstream_argv = [sys.executable, str(BENCH / "fake_upstream.py"), "--port", str(ports["upstream"]),
                     "--latency-ms", str(args.latency_ms), "--chunk-interval-ms", str(args.chunk_interval_ms)]
    upstream = procs.start("upstream", upstream_argv,
                           measure.LOAD_CORES, work / "upstream.log", env=gateways.clean_env(),
                           niceness=measure.LOAD_NICENESS)
    cfg = measure.Settings(duration=args.duration, warmup=args.warmup, work=work, python=sys.executable,
                           upstream_pid=upstream.pid, max_duration=args.max_duration, wait_quiet=args.wait_quiet)
    redis: procs.Proc | None = None
    try:
        redis = start_redis(ports["redis"], work) if "llm-router-redis" in wanted else None
        if redis:
            cfg = dataclasses.replace(cfg, redis_port=ports["redis"])
        if not procs.wait_http(f"http://127.0.0.1:{ports['upstream']}/health", upstream, 15):
            sys.exit(f"bench: the fake upstream did not start: {upstream.log_tail()}")
        out["upstream_command"] = " ".join(upstream.popen.args)  # type: ignore[arg-type]
        all_targets = targets(ports)
        for name in wanted:
            print(f"bench: {name}", flush=True)
            if name in problems:
                out["targets"][name] = {"unavailable": problems[name], "scenarios": {}}
                print(f"  {name}: NOT AVAILABLE: {problems[name]}", flush=True)
                continue
            run_target(all_targets[name], scenarios, args, cfg, ports, out)
        if not args.no_workers and "llm-router" in wanted:
            print("bench: llm-router, one worker against two", flush=True)
            workers_test(args, cfg, ports, out)
        if args.soak > 0:
            print(f"bench: memory soak of {args.soak_target}, {args.soak} s", flush=True)
            soak_test(args, cfg, ports, out)
    except KeyboardInterrupt:
        print("bench: interrupted; stopping everything", flush=True)
        sys.exit(130)
    finally:
        procs.stop(upstream)
        if redis:
            procs.stop(redis)
    out["finished"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    (work / "results.json").write_text(json.dumps(out, indent=2, default=str))
    report.write(out, Path(args.results), work)
    print(f"bench: wrote {args.results}", flush=True)


if __name__ == "__main__":
    main()
