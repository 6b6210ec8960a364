"""Gateways as `llm-router serve` subprocesses sharing one Redis, in front of an OpenAI
simulator subprocess."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.harness import ADMIN_KEY, KEY_A
from tests.state.helpers import environ_without_proxy, free_port, get_json, wait_until

REPO = Path(__file__).resolve().parents[2]
SIMULATOR = """
import sys
from aiohttp import web
from providers.simulators.common import SIMULATOR_STATE
from providers.simulators.openai import create_app
app = create_app()
app[SIMULATOR_STATE].stream_delay = float(sys.argv[2])
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
"""


def start(command: list[str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                env={**environ_without_proxy(), "PYTHONPATH": str(REPO)})


def start_simulator(tmp: Path, stream_delay: float = 0.0) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = start([sys.executable, "-c", SIMULATOR, str(port), str(stream_delay)], tmp / "simulator.log")
    wait_until(lambda: _answers(f"http://127.0.0.1:{port}/v1/models"), 15, 0.05)
    return process, f"http://127.0.0.1:{port}/v1"


def _answers(url: str) -> bool:
    try:
        get_json(url, "sk-any")
        return True
    except OSError:
        return False


def write_routes(tmp: Path, simulator_url: str, redis_url: str, prefix: str, rpm: int,
                 limits: dict[str, int] | None = None) -> Path:
    table: dict[str, Any] = {
        "server": {"shutdown_grace": 15},
        "state": {"redis_url": redis_url, "key_prefix": prefix, "spool_path": str(tmp / "spool.jsonl"),
                  # Generous: on a loaded test machine (two cores for three gateways, a simulator, the
                  # load and Redis) a burst delays event loops by more than the default 0.25 s, and timeouts
                  # would open the breaker and fall back to local limits, which is not what is tested here.
                  "socket_timeout": 1.0},
        "admin": {"key": ADMIN_KEY},
        "providers": {"sim": {"kind": "openai-compatible", "base_url": simulator_url}},
        "models": {"gpt-4o-mini": {"meta_data": {"max_sequence_length": 128000, "max_output_length": 16384},
                                   "targets": [{"provider": "sim", "model": "gpt-4o-mini-2024-07-18"}]}},
        "keys": [{"name": "team-a", "key": KEY_A, "models": ["*"], "limits": limits or {"rpm": rpm}}],
    }
    path = tmp / "routes.yaml"
    path.write_text(yaml.safe_dump(table), encoding="utf-8")
    return path


def start_gateways(routes: Path, tmp: Path, count: int = 1) -> list[tuple[subprocess.Popen[bytes], str]]:
    """`count` gateways started at once; returned when every one of them is ready."""
    ports = [free_port() for _ in range(count)]
    gateways = [(start([sys.executable, "-m", "router.cli", "serve", "--config", str(routes), "--host",
                        "127.0.0.1", "--port", str(port)], tmp / f"gateway-{port}.log"), f"http://127.0.0.1:{port}")
                for port in ports]
    for process, base in gateways:
        wait_until(lambda p=process, b=base: p.poll() is None and _answers(b + "/healthz") and
                   get_json(b + "/readyz", KEY_A)[0] == 200, 20, 0.05)
    return gateways


def stop(*processes: subprocess.Popen[bytes]) -> list[int]:
    """SIGTERM them all, then wait for each (killed if it does not end in time)."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    codes = []
    for process in processes:
        try:
            codes.append(process.wait(20))
        except subprocess.TimeoutExpired:
            process.kill()
            codes.append(process.wait(5))
    return codes
