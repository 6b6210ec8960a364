"""llm-router serve | check | demo (the command line is contract)."""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import secrets
import signal
import sys
from dataclasses import dataclass

from aiohttp import web

from router import logs, metrics
from router.app import create_app, metrics_handler
from router.config.schema import ConfigError, RouteTable, load
from router.config.watch import table_watcher
from router.demo import simulated, start_simulators
from router.http.middleware import name_the_server
from router.server import bound_port, run, run_workers, serve_app

log = logging.getLogger("llm_router")
DEFAULT_CONFIG = "routes.yaml"


def _load_or_exit(path: str) -> RouteTable:
    try:
        return load(path)
    except ConfigError as exc:
        print(f"{path}: the route table is not valid ({len(exc.errors)} error(s)):", file=sys.stderr)
        for error in exc.errors:
            print(f"  {error}", file=sys.stderr)
        raise SystemExit(1) from None


def check(args: argparse.Namespace) -> int:
    try:
        table = load(args.config)
    except ConfigError as exc:
        for error in exc.errors:
            print(error)
        return 1
    print(f"{args.config}: ok (version {table.version}; {len(table.providers)} providers, "
          f"{len(table.models)} models, {len(table.keys)} keys)")
    return 0


@dataclass(frozen=True, slots=True)
class ServeOptions:
    config: str
    host: str | None
    port: int | None
    reuse_port: bool
    metrics_port: int | None = None  # /metrics there instead of on the client port
    watch: bool = False


def _serve_process(options: ServeOptions) -> None:
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until the loop's handler is in place
    table = _load_or_exit(options.config)
    logs.setup(table.logging.level)
    host = options.host or table.server.host
    port = options.port if options.port is not None else table.server.port

    async def main() -> None:
        separate_metrics = options.metrics_port is not None
        app = create_app(table, options.config, serve_metrics=not separate_metrics)
        if options.watch:
            app.cleanup_ctx.append(table_watcher())
        metrics_app: web.Application | None = None
        if separate_metrics:
            metrics_app = web.Application()
            metrics_app.on_response_prepare.append(name_the_server)
            metrics_app.router.add_get("/metrics", metrics_handler)

        def started(sockets: list[object]) -> None:
            log.info("serving", extra={"fields": {
                "host": host, "port": bound_port(sockets), "metrics_port": options.metrics_port,  # type: ignore[arg-type]
                "version": table.version, "pid": os.getpid(), "models": len(table.models),
                "keys": len(table.keys), "providers": len(table.providers), "watch": options.watch,
                "multiprocess_metrics": metrics.MULTIPROCESS_DIR is not None, "file": options.config}})

        await serve_app(app, host, port, table.server.shutdown_grace, options.reuse_port, started,
                        metrics_app, options.metrics_port)

    run(main)


def serve(args: argparse.Namespace) -> int:
    table = _load_or_exit(args.config)  # fail fast, before any worker starts
    options = ServeOptions(args.config, args.host, args.port, args.workers > 1, args.metrics_port, args.watch)
    if args.workers > 1:
        logs.setup(table.logging.level)
        log.info("starting workers", extra={"fields": {"workers": args.workers, "pid": os.getpid()}})
        return run_workers(_serve_process, (options,), args.workers)
    _serve_process(options)
    return 0


# The demo's keys: each taken from its environment variable, else a new one per start.
DEMO_KEYS = (("DEMO_API_KEY", "demo key", "sk-demo-"), ("ROUTER_ADMIN_KEY", "admin key", "sk-admin-"))


def _demo_keys() -> list[str]:
    """Set the keys the demo table reads; one line per key saying where it came from."""
    lines = []
    for variable, label, prefix in DEMO_KEYS:
        given = bool(os.environ.get(variable))
        if not given:
            os.environ[variable] = prefix + secrets.token_hex(12)
        origin = f"from {variable}" if given else f"new at every start; set {variable} to keep one"
        lines.append(f"  {label + ':':<11}{os.environ[variable]}  ({origin})")
    # routes.yaml stores the demo key as a digest, so that serving it without the demo is safe.
    os.environ["DEMO_API_KEY_SHA256"] = hashlib.sha256(os.environ["DEMO_API_KEY"].encode()).hexdigest()
    return lines


def demo(args: argparse.Namespace) -> int:
    key_lines = _demo_keys()
    table = _load_or_exit(args.config)
    logs.setup(table.logging.level)
    host = args.host or "127.0.0.1"
    port = args.port if args.port is not None else 8080

    async def main() -> None:
        dimensions: dict[str, int] = {}  # filled by `transform` from each table it serves
        urls, runners = await start_simulators({p.kind for p in table.providers.values()}, dimensions=dimensions)
        transform = simulated(urls, dimensions)
        app = create_app(transform(table), args.config, transform)
        log.warning("DEMO: every provider is replaced by a local simulator of its protocol; "
                    "answers are simulated")

        def started(sockets: list[object]) -> None:
            actual = bound_port(sockets)  # type: ignore[arg-type]
            print(_snippet(host, actual, key_lines), flush=True)

        try:
            await serve_app(app, host, port, 1.0, False, started)
        finally:
            for runner in runners:
                await runner.cleanup()

    run(main)
    return 0


def _snippet(host: str, port: int, key_lines: list[str]) -> str:
    key = os.environ["DEMO_API_KEY"]
    keys = "\n".join(key_lines)
    return f"""
llm-router demo is serving on http://{host}:{port} (every upstream is a local simulator)

{keys}
  (`make demo PORT=... HOST=...` or `llm-router demo --port ... --host ...` serve elsewhere)

Paste this into Python (pip install openai):

from openai import OpenAI
client = OpenAI(api_key="{key}", base_url="http://{host}:{port}/v2")
print([m.id for m in client.models.list().data])
r = client.chat.completions.create(model="Llama-3.1-70B-Instruct",
    messages=[{{"role": "user", "content": "What is Open Telekom Cloud?"}}], max_tokens=64)
print(r.choices[0].message.content)

or curl:
curl http://{host}:{port}/v2/chat/completions -H "Authorization: Bearer {key}" \\
  -H "Content-Type: application/json" \\
  -d '{{"model": "gpt-4o", "messages": [{{"role": "user", "content": "Hello"}}]}}'
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="llm-router", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_serve = sub.add_parser("serve", help="serve the route table")
    p_serve.add_argument("--config", default=DEFAULT_CONFIG)
    p_serve.add_argument("--host")
    p_serve.add_argument("--port", type=int)
    p_serve.add_argument("--workers", type=int, default=1)
    p_serve.add_argument("--metrics-port", type=int,
                         help="serve /metrics on this port only, not on the client port")
    p_serve.add_argument("--watch", action="store_true",
                         help="reload the route table when its file changes (checked every second)")
    p_check = sub.add_parser("check", help="validate a route table")
    p_check.add_argument("config", nargs="?", default=DEFAULT_CONFIG)
    p_demo = sub.add_parser("demo", help="serve the route table against local simulators")
    p_demo.add_argument("--config", default=DEFAULT_CONFIG)
    p_demo.add_argument("--host")
    p_demo.add_argument("--port", type=int)
    args = parser.parse_args(argv)
    if args.command == "serve" and args.workers < 1:
        parser.error("--workers must be at least 1")
    return {"serve": serve, "check": check, "demo": demo}[args.command](args)


if __name__ == "__main__":
    raise SystemExit(main())
