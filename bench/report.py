"""bench/RESULTS.md (and bench/latency.png) from the results of one run."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path
from typing import Any

import gateways
from scenarios import SCENARIOS

BENCH = Path(__file__).resolve().parent
NOISY_CORES = 0.15  # mean CPU of other jobs above which a run is flagged as noisy
ORDER = ("direct", "floor", "llm-router", "llm-router-redis", "litellm", "portkey")


def one_line(r: dict[str, Any]) -> str:
    text = f"{r['rps']:.0f} req/s, p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms"
    if "ttft_p50_ms" in r:
        text += f", ttft p50 {r['ttft_p50_ms']:.2f} ms, chunks {r['chunks_min']}-{r['chunks_max']}"
    if r.get("cpu_ms_per_req") is not None:
        text += f", cpu {r['cpu_ms_per_req']:.3f} ms/req ({r['cores_used']:.2f} cores)"
    if r.get("errors"):
        text += f", ERRORS {r['errors']}"
    return text


def wrk_requests(log: str) -> int | None:
    for line in log.splitlines():
        if line.startswith("BENCH_RESULT "):
            requests: int = json.loads(line[len("BENCH_RESULT "):])["requests"]
            return requests
    return None


def _f(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _other(cores: float | None) -> str:
    return _f(cores) + (" ⚠" if cores is not None and cores > NOISY_CORES else "")


def _row(out: dict[str, Any], target: str, scenario: str) -> dict[str, Any] | None:
    row = out["targets"].get(target, {}).get("scenarios", {}).get(scenario)
    return row if row and "failed" not in row else None


def scenario_table(out: dict[str, Any], name: str, streamed: bool) -> list[str]:
    direct = _row(out, "direct", name)
    head = ["target", "req/s", "p50 ms", "p90 ms", "p99 ms", "added p50", "added p99", "CPU ms/req", "cores used",
            "RSS after MB", "errors", "other load"]
    if streamed:
        head[7] = "CPU ms/stream"
        head += ["TTFT p50", "TTFT p99", "added TTFT p50", "gap p50", "gap p99", "chunks"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for target in ORDER:
        entry = out["targets"].get(target)
        if entry is None:
            continue
        raw = entry.get("scenarios", {}).get(name)
        if raw is None:
            if "unavailable" in entry:
                lines.append(f"| {target} | not available | " + " | ".join([""] * (len(head) - 2)) + " |")
            continue
        if "failed" in raw:
            lines.append(f"| {target} | failed: {raw['failed'][:120].replace('|', '/')} | "
                         + " | ".join([""] * (len(head) - 2)) + " |")
            continue
        added = [raw["p50_ms"] - direct["p50_ms"], raw["p99_ms"] - direct["p99_ms"]] if direct and target != "direct" \
            else [None, None]
        cells = [target, _f(raw["rps"], 0), _f(raw["p50_ms"]), _f(raw["p90_ms"]), _f(raw["p99_ms"]),
                 _f(added[0]), _f(added[1]), _f(raw.get("cpu_ms_per_req"), 3), _f(raw.get("cores_used")),
                 _f(raw.get("rss_after_mb"), 1), str(raw.get("errors", 0)), _other(raw.get("other_cores"))]
        if streamed:
            added_ttft = raw["ttft_p50_ms"] - direct["ttft_p50_ms"] if direct and target != "direct" else None
            cells += [_f(raw["ttft_p50_ms"]), _f(raw["ttft_p99_ms"]), _f(added_ttft), _f(raw["gap_p50_ms"]),
                      _f(raw["gap_p99_ms"]), f"{raw['chunks_min']}–{raw['chunks_max']}"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b not in (None, 0) else None


def _get(out: dict[str, Any], target: str, scenario: str, key: str) -> float | None:
    row = _row(out, target, scenario)
    value = row.get(key) if row else None
    return float(value) if value is not None else None


def targets_table(out: dict[str, Any]) -> list[str]:
    """Issue 9's targets, each as measured here: value, bound, verdict."""

    def g(target: str, scenario: str, key: str) -> float | None:
        return _get(out, target, scenario, key)

    per_core = {t: _ratio(1000.0, g(t, "chat-c64", "cpu_ms_per_req")) for t in ORDER}
    checks: list[tuple[str, float | None, str, bool | str | None]] = []

    def check(what: str, value: float | None, bound: str, ok: bool | str | None) -> None:
        checks.append((what, value, bound, ok if value is not None else None))

    r = _ratio(g("llm-router", "chat-c64", "cpu_ms_per_req"), g("floor", "chat-c64", "cpu_ms_per_req"))
    check("chat c=64: llm-router CPU/request ÷ floor's", r, "≤ 1.5", r is not None and r <= 1.5)
    r = _ratio(per_core["llm-router"], per_core["litellm"])
    check("chat c=64: llm-router requests per CPU-second ÷ LiteLLM's", r, "≥ 25", r is not None and r >= 25)
    r = _ratio(per_core["llm-router"], per_core["portkey"])
    check("chat c=64: llm-router requests per CPU-second ÷ Portkey's", r, "> 1", r is not None and r > 1)
    for key, bound in (("p50_ms", 0.5), ("p99_ms", 1.5)):
        via, direct = g("llm-router", "chat-c1", key), g("direct", "chat-c1", key)
        added = via - direct if via is not None and direct is not None else None
        check(f"chat c=1: added latency {key[:3]} (ms)", added, f"≤ {bound}", added is not None and added <= bound)
    floor_stream = g("floor", "stream-c16", "cpu_ms_per_req")
    r = _ratio(g("llm-router", "stream-c16", "cpu_ms_per_req"), floor_stream)
    check("stream of 50 chunks: llm-router CPU ÷ floor's (passed through)", r, "≤ 1.5", r is not None and r <= 1.5)
    for proto in ("anthropic", "gemini"):
        r = _ratio(g("llm-router", f"{proto}-stream-c16", "cpu_ms_per_req"), floor_stream)
        check(f"stream translated from {proto}: CPU ÷ floor's passthrough stream", r, "≤ 2.5",
              r is not None and r <= 2.5)
    t = g("llm-router", "stream-c1", "ttft_p50_ms")
    d = g("direct", "stream-c1", "ttft_p50_ms")
    added = t - d if t is not None and d is not None else None
    check("stream c=1: added time to first token p50 (ms)", added, "≤ 0.5", added is not None and added <= 0.5)
    r = _ratio(g("llm-router-redis", "chat-c64", "cpu_ms_per_req"), g("floor", "chat-c64", "cpu_ms_per_req"))
    check("chat c=64 with Redis limits and metering on: CPU/request ÷ floor's", r, "≤ 2", r is not None and r <= 2)
    commands = g("llm-router-redis", "chat-c1", "redis_commands_per_req")
    check("… Redis commands per request (INFO commandstats; pipelined commands share a round trip)", commands,
          "1 round trip on the latency path", "commands counted, not round trips: see the code/profile")
    w = out.get("workers", {})
    if "w1" in w and "w2" in w:
        r = w["w2"]["rps"] / w["w1"]["rps"]
        check("two workers on two cores ÷ one worker: throughput", r, "≥ 1.8", r >= 1.8)
        per_core_ratio = (w["w2"]["rps"] / w["w2"]["cores_used"]) / (w["w1"]["rps"] / w["w1"]["cores_used"])
        check("… requests per gateway core, two workers ÷ one", per_core_ratio, "≥ 0.9", per_core_ratio >= 0.9)
    idle = out["targets"].get("llm-router", {}).get("rss_idle_mb")
    check("idle memory of one worker (RSS, MB)", idle, "≤ 60", idle is not None and idle <= 60)
    soak = out.get("soak", {})
    if soak.get("target") == "llm-router" and "rss_idle_after_mb" in soak:
        growth_mb: float = soak["rss_idle_after_mb"] - soak["rss_idle_before_mb"]
        check(f"idle memory growth over a {soak['seconds']} s soak (MB)", growth_mb, "flat (≤ 5)", growth_mb <= 5)
    lines = ["| target (issue 9) | measured | bound | met |", "|---|---|---|---|"]
    for label, measured, limit, ok in checks:
        verdict = "n/a (not measured)" if ok is None else ok if isinstance(ok, str) else "yes" if ok else "**no**"
        lines.append(f"| {label} | {_f(measured)} | {limit} | {verdict} |")
    if any(ok is False for _, _, _, ok in checks):
        lines += ["", "Where a target is not met, [PROFILE.md](PROFILE.md) gives the profile: where the time "
                      "goes and what would close it."]
    context = [(t, per_core[t]) for t in ORDER if per_core.get(t)]
    if context:
        lines += ["", "Requests per CPU-second of the gateway (chat c=64): "
                  + ", ".join(f"{t} {v:.0f}" for t, v in context) + "."]
    return lines


def memory_table(out: dict[str, Any]) -> list[str]:
    lines = ["| target | RSS idle MB | PSS idle MB | RSS after all scenarios MB | PSS after MB |",
             "|---|---|---|---|---|"]
    for target in ORDER:
        e = out["targets"].get(target)
        if e and "rss_idle_mb" in e:
            lines.append(f"| {target} | {_f(e['rss_idle_mb'], 1)} | {_f(e.get('pss_idle_mb'), 1)} | "
                         f"{_f(e.get('rss_after_mb'), 1)} | {_f(e.get('pss_after_mb'), 1)} |")
    return lines


def plot(work: Path, image: Path) -> str | None:
    """The plot (latency.png beside RESULTS.md) with matplotlib from bench/.work's LiteLLM venv;
    its name, or None when impossible."""
    if not gateways.ensure_matplotlib(work):
        return None
    done = subprocess.run([str(gateways.litellm_python(work)), str(BENCH / "plot.py"), str(work / "results.json"),
                           str(image)], capture_output=True, text=True, timeout=120)
    return image.name if done.returncode == 0 else None


METHOD = """\
- One machine, {nproc} cores ({cpu}). The gateway under test runs alone, pinned to core 0
  (`taskset -c 0`); the fake upstream (`bench/fake_upstream.py`, raw asyncio protocol on uvloop,
  cached bodies) and the load generator share core 1. Each gateway is started once, measured on
  every scenario it serves, back to back, then stopped before the next one starts.
- Non-streamed scenarios: `wrk -t1 -cC` with `bench/chat.lua` (JSON POST body, percentiles
  printed by wrk itself). Streams: `bench/loadgen_stream.py` (aiohttp, uvloop), which records the
  time to the first content chunk, the gaps between chunks and the whole stream.
- Every measurement is preceded by {warmup} s of the same load (3 s more when the gateway served
  fewer than 2 requests per connection), after which the gateway is left to finish what the
  warm-up left running. A measured run lasts {duration} s, stretched for wrk up to {max_duration} s so
  that it counts 10 requests per connection on slow gateways.
- CPU: utime+stime (+cutime+cstime) from `/proc/<pid>/stat` of the gateway's whole process tree,
  read right before and right after the measured run. The stream client finishes every stream it
  started, so CPU ÷ streams is exact; wrk stops with one request in flight per connection, on
  average half served, so its CPU is divided by (requests counted + concurrency/2).
- Memory: RSS (and PSS) of the process tree, idle (1 s after start) and after load (once idle).
- The load side (upstream, wrk, stream client) runs under `nice -n -5`, above the gateway, so that
  it is never what limits a gateway. "other load" is the CPU (in cores) that everything else on
  the machine used during the measurement (/proc/stat less the gateway and the load side): when
  it is not near 0, someone else's job shared the machine and that row is noisy.
- The fake upstream answers at once (`--latency-ms {latency}`) and paces stream events
  {interval} ms apart: 50 content chunks, then the finish and usage chunks. Added latency is the
  difference with `direct` (the same client straight to the fake upstream, in the upstream's own
  protocol for the Anthropic and Gemini scenarios).
- Portkey checks no client key (it is handed the upstream's key in `Authorization`); LiteLLM
  and llm-router check a client key (LiteLLM's master key, no database), as does the floor.
"""


def _workers_section(out: dict[str, Any]) -> list[str]:
    w = out.get("workers")
    if not w:
        return ["Not run (`--no-workers`, or llm-router not among the targets)."]
    if "unavailable" in w:
        return [f"llm-router not available: {w['unavailable'].splitlines()[0][:300]}"]
    lines = ["| workers | gateway cores | req/s | p50 ms | p99 ms | CPU ms/req | cores used | req/s per core used |"
             " CPU s per process |", "|---|---|---|---|---|---|---|---|---|"]
    for key in ("w1", "w2"):
        r = w.get(key)
        if r:
            per_process = ", ".join(f"{v:.2f}" for v in r["cpu_by_process_s"].values())
            lines.append(f"| {key[1:]} | {r['cores']} | {r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                         f"{_f(r['cpu_ms_per_req'], 3)} | {r['cores_used']:.2f} | {r['rps'] / r['cores_used']:.0f} | "
                         f"{per_process} |")
    lines += ["", "Chat at concurrency 64. The load generator and the fake upstream stay on core 1 in both runs, so "
              "with two workers one of them shares core 1 with the load. To keep the load side from being starved "
              "(which would slow every request, on both workers), the load side always runs at a higher priority "
              "(`nice -n -5`) than the gateway: it takes what it needs of core 1 and the second worker the rest. On a "
              "two-core machine the raw ratio is therefore bounded by 2 minus the load side's share of a core. The "
              "gateway's own CPU time is measured in both runs, so 'req/s per core used' compares them without the "
              "load side's share; CPU per process (during the measured run, master first) shows that both workers "
              "took work."]
    for key in ("w1", "w2"):
        if key in w and w[key].get("command"):
            lines.append(f"- {key[1:]} worker(s): `{w[key]['command']}`")
    return lines


def _soak_section(out: dict[str, Any]) -> list[str]:
    s = out.get("soak")
    if not s:
        return ["Not run (`--soak 0`)."]
    if "unavailable" in s:
        return [f"{s['target']} not available: {s['unavailable'].splitlines()[0][:300]}"]
    samples = s["samples"]
    rss = [v for _, v in samples]
    return [f"{s['target']}, {s['seconds']} s of wrk with 8 connections ({s.get('requests')} requests), RSS sampled "
            f"every {max(1.0, s['seconds'] / 20):.0f} s: idle before {s['rss_idle_before_mb']:.1f} MB, under load "
            f"{min(rss, default=0):.1f}–{max(rss, default=0):.1f} MB, idle after {s['rss_idle_after_mb']:.1f} MB.",
            "", "Samples (s, MB): " + ", ".join(f"{t:.0f}: {v:.1f}" for t, v in samples)]


def write(out: dict[str, Any], path: Path, work: Path) -> None:
    router = out["targets"].get("llm-router")
    partial = router is None or "unavailable" in router or not router.get("scenarios")
    m, st = out["machine"], out["settings"]
    lines = ["# Benchmark results (issue 9)", ""]
    if partial:
        why = (router or {}).get("unavailable", "not among the targets of this run").splitlines()[0][:300]
        lines += [f"**PARTIAL RUN: llm-router was not measured ({why}).** Its rows and the ratios that need it "
                  "are missing; run `make bench` again once it starts.", ""]
    others = [row["other_cores"] for e in out["targets"].values() for row in e.get("scenarios", {}).values()
              if "other_cores" in row]
    noisy = [o for o in others if o > NOISY_CORES]
    if noisy:
        lines += [f"**NOISY RUN: in {len(noisy)} of {len(others)} measurements other jobs on this machine used more "
                  f"than {NOISY_CORES} cores (marked ⚠ in the column 'other load'; mean over all measurements "
                  f"{sum(others) / len(others):.2f} cores): there the gateway got less than its core and the figures "
                  "are not reliable. Run again on a quiet machine (`--wait-quiet 60` waits for one).**", ""]
    lines += [f"Run {out['started']} – {out['finished']}: `{' '.join(out['argv'])}` (`make bench` runs "
              "`.venv/bin/python bench/run.py`; `--duration`, `--warmup`, `--soak`, `--targets`, `--scenarios` "
              "make it longer or narrower).", "",
              "## Machine and versions", "",
              f"- nproc {m['nproc']}, CPU {m['cpu']}, kernel {m['kernel']}, memory {m['mem_total']}",
              "- " + ", ".join(f"{k} {v}" for k, v in out["versions"].items()), "",
              "## Method", "",
              METHOD.format(nproc=m["nproc"], cpu=m["cpu"], warmup=st["warmup"], duration=st["duration"],
                            max_duration=st["max_duration"],
                            latency=st["latency_ms"], interval=st["chunk_interval_ms"]),
              "## Issue 9's targets, as measured in this run", ""]
    lines += targets_table(out)
    image = plot(work, path.with_name("latency.png"))
    lines += ["", "## Latency against concurrency", ""]
    lines += [f"![latency against concurrency per gateway]({image})"] if image else [
        "(no plot: matplotlib could not be installed into bench/.work/litellm-venv)"]
    for s in SCENARIOS:
        if any(s.name in e.get("scenarios", {}) for e in out["targets"].values()):
            lines += ["", f"## {s.title} (`{s.name}`)", ""] + scenario_table(out, s.name, s.streamed)
    lines += ["", "## Memory", ""] + memory_table(out)
    lines += ["", "## One worker against two (llm-router)", ""] + _workers_section(out)
    lines += ["", "## Memory soak", ""] + _soak_section(out)
    lines += ["", "## Commands", "", f"- upstream: `{out.get('upstream_command', '')}`"]
    for target in ORDER:
        e = out["targets"].get(target, {})
        if e.get("command"):
            lines.append(f"- {target}: `{e['command']}`")
        for name, row in e.get("scenarios", {}).items():
            if target in ("floor", "llm-router") and "command" in row:
                lines.append(f"  - {name}: `{row['command']}`")
    lines += ["", "Raw numbers: bench/.work/results.json (not committed)."]
    # paths relative to the repository: the commands read the same from any clone
    path.write_text("\n".join(lines).replace(str(BENCH.parent) + "/", "") + "\n")
