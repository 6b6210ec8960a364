"""Stream load generator: N concurrent clients POST streamed requests for a bounded
time and measure, per stream, the time to the first content chunk, the gaps between
chunks and the whole stream; prints one `BENCH_RESULT {json}` line.

Streams started before the deadline are finished (each bounded by --timeout), so a
gateway's CPU time read after this process exits matches the streams counted.

    python bench/loadgen_stream.py --url http://127.0.0.1:18010/v1/chat/completions \
        --body-file body.json --header 'Authorization: Bearer k' --concurrency 16 --duration 3
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import ClientSession, ClientTimeout, TCPConnector


def is_content(fmt: str, data: bytes) -> bool:
    """Whether one SSE data payload (or Gemini array element) carries generated text."""
    try:
        event: Any = orjson.loads(data)
    except orjson.JSONDecodeError:
        return False
    if not isinstance(event, dict):
        return False
    if fmt == "anthropic":
        return event.get("type") == "content_block_delta"
    if fmt == "gemini":
        parts = ((event.get("candidates") or [{}])[0].get("content") or {}).get("parts") or [{}]
        return bool(parts[0].get("text"))
    choices = event.get("choices") or [{}]
    return bool((choices[0].get("delta") or {}).get("content"))


@dataclass
class Totals:
    durations: list[float] = field(default_factory=list)
    ttfts: list[float] = field(default_factory=list)
    gaps: list[float] = field(default_factory=list)
    content_chunks: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


async def one_stream(session: ClientSession, args: argparse.Namespace, body: bytes, totals: Totals) -> None:
    start = time.perf_counter()
    first: float | None = None
    last = 0.0
    chunks = 0
    gaps: list[float] = []
    async with session.post(args.url, data=body, headers=args.headers) as resp:
        if resp.status != 200:
            totals.errors.append(f"HTTP {resp.status}: {(await resp.read())[:200]!r}")
            return
        async for line in resp.content:
            line = line.strip()
            if line.startswith(b"data:"):
                payload = line[5:].strip()
            elif args.format == "gemini" and line.startswith((b"[{", b"{")):  # Gemini's JSON array form
                payload = line.lstrip(b"[").rstrip(b",]")
            else:
                continue
            now = time.perf_counter()
            content = is_content(args.format, payload)
            if first is None:
                if not content:
                    continue  # role-only or metadata events before the first token
                first = now
            else:
                gaps.append(now - last)
            last = now
            chunks += content
    end = time.perf_counter()
    if first is None:
        totals.errors.append("stream without content")
        return
    totals.durations.append(end - start)
    totals.ttfts.append(first - start)
    totals.gaps.extend(gaps)
    totals.content_chunks.append(chunks)


async def worker(session: ClientSession, args: argparse.Namespace, body: bytes, deadline: float,
                 totals: Totals) -> None:
    while time.perf_counter() < deadline and len(totals.durations) + len(totals.errors) < args.max_requests:
        try:
            await one_stream(session, args, body, totals)
        except (TimeoutError, OSError) as exc:
            totals.errors.append(f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(0.01)  # a refused connection must not spin


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with open(args.body_file, "rb") as f:
        body = f.read()
    totals = Totals()
    connector = TCPConnector(limit=args.concurrency)
    async with ClientSession(connector=connector, timeout=ClientTimeout(total=args.timeout)) as session:
        start = time.perf_counter()
        deadline = start + args.duration
        await asyncio.gather(*(worker(session, args, body, deadline, totals) for _ in range(args.concurrency)))
        elapsed = time.perf_counter() - start
    ms = 1000.0
    return {
        "requests": len(totals.durations), "errors": len(totals.errors), "error_sample": totals.errors[:3],
        "elapsed_s": elapsed, "rps": len(totals.durations) / elapsed,
        "p50_ms": percentile(totals.durations, 50) * ms, "p90_ms": percentile(totals.durations, 90) * ms,
        "p99_ms": percentile(totals.durations, 99) * ms,
        "ttft_p50_ms": percentile(totals.ttfts, 50) * ms, "ttft_p90_ms": percentile(totals.ttfts, 90) * ms,
        "ttft_p99_ms": percentile(totals.ttfts, 99) * ms,
        "gap_p50_ms": percentile(totals.gaps, 50) * ms, "gap_p99_ms": percentile(totals.gaps, 99) * ms,
        "gap_max_ms": max(totals.gaps, default=float("nan")) * ms,
        "chunks_min": min(totals.content_chunks, default=0), "chunks_max": max(totals.content_chunks, default=0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--body-file", required=True)
    parser.add_argument("--header", action="append", default=[], help="'Name: value' (repeatable)")
    parser.add_argument("--format", choices=("openai", "anthropic", "gemini"), default="openai")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds during which streams are started")
    parser.add_argument("--max-requests", type=int, default=100_000)
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds for one whole stream")
    args = parser.parse_args()
    if not args.url.startswith(("http://127.0.0.1", "http://localhost", "http://[::1]")):
        parser.error("loopback URLs only")
    args.headers = {"Content-Type": "application/json"}
    for h in args.header:
        name, _, value = h.partition(":")
        args.headers[name.strip()] = value.strip()
    import uvloop

    result = uvloop.run(run(args))
    print("BENCH_RESULT " + orjson.dumps(result).decode(), flush=True)


if __name__ == "__main__":
    main()
