"""How each gateway under test is installed and started (pinned to the gateway's core).

LiteLLM and Portkey are installed into bench/.work (never into the project's
virtualenv), at pinned versions, with telemetry and network look-ups off.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import procs

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
LITELLM_VERSION = "1.108.7"  # the version issue 9's figures were taken with
PORTKEY_VERSION = "1.15.2"
# @portkey-ai/gateway 1.15.2 pulls @hono/node-server 1.19.x, whose lightweight Response keeps a
# fetch() response's immutable Headers: every passed-through stream and embeddings answer then
# fails with "TypeError: immutable" under Node 20. 1.13.8 copies the headers; we pin it.
HONO_NODE_SERVER = "1.13.8"
GATEWAY_CORES = "0"


@dataclass(frozen=True)
class Launch:
    argv: list[str]
    ready_path: str
    env: dict[str, str]
    startup_timeout: float = 60.0
    need_ok: bool = False  # ready only once ready_path answers 2xx


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without proxies: every request stays on loopback."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    env |= {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
    return env | extra


def run_checked(argv: list[str], log: Path, cwd: Path | None = None, timeout: float = 900) -> bool:
    with open(log, "ab") as out:
        done = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, timeout=timeout,
                              env=clean_env())
    return done.returncode == 0


def ensure_wrk(work: Path) -> str | None:
    if shutil.which("wrk"):
        return None
    if os.geteuid() != 0:
        return "wrk is not installed and this is not root: apt-get install -y wrk"
    log = work / "install-wrk.log"
    if run_checked(["apt-get", "update"], log) and run_checked(["apt-get", "install", "-y", "wrk"], log):
        return None
    return f"apt-get install wrk failed, see {log}"


def litellm_python(work: Path) -> Path:
    return work / "litellm-venv" / "bin" / "python"


def ensure_litellm(work: Path) -> str | None:
    venv = work / "litellm-venv"
    log = work / "install-litellm.log"
    if not litellm_python(work).exists() and not run_checked([sys.executable, "-m", "venv", str(venv)], log):
        return f"could not create {venv}, see {log}"
    if (venv / "bin" / "litellm").exists() and installed_litellm(work) == LITELLM_VERSION:
        return None
    pip = [str(venv / "bin" / "pip"), "install", "-q", f"litellm[proxy]=={LITELLM_VERSION}"]
    return None if run_checked(pip, log) else f"pip install litellm failed, see {log}"


def installed_litellm(work: Path) -> str | None:
    python = litellm_python(work)
    if not python.exists():
        return None
    done = subprocess.run([str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
                          capture_output=True, text=True, timeout=60)
    return done.stdout.strip() or None


def ensure_matplotlib(work: Path) -> bool:
    python = litellm_python(work)
    if not python.exists():
        return False
    check = subprocess.run([str(python), "-c", "import matplotlib"], capture_output=True, timeout=60)
    if check.returncode == 0:
        return True
    return run_checked([str(python), "-m", "pip", "install", "-q", "matplotlib"], work / "install-matplotlib.log")


def portkey_entry(work: Path) -> Path:
    return work / "portkey" / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"


def ensure_portkey(work: Path) -> str | None:
    if not shutil.which("node") or not shutil.which("npm"):
        return "node and npm are needed for Portkey (apt-get install -y nodejs npm)"
    home = work / "portkey"
    home.mkdir(parents=True, exist_ok=True)
    manifest = {"name": "bench-portkey", "private": True,
                "dependencies": {"@portkey-ai/gateway": PORTKEY_VERSION},
                "overrides": {"@hono/node-server": HONO_NODE_SERVER}}
    manifest_file = home / "package.json"
    if portkey_entry(work).exists() and manifest_file.exists() and json.loads(manifest_file.read_text()) == manifest:
        return None
    manifest_file.write_text(json.dumps(manifest, indent=2))
    shutil.rmtree(home / "node_modules", ignore_errors=True)
    (home / "package-lock.json").unlink(missing_ok=True)
    ok = run_checked(["npm", "install", "--no-audit", "--no-fund"], work / "install-portkey.log", cwd=home)
    return None if ok and portkey_entry(work).exists() else f"npm install failed, see {work / 'install-portkey.log'}"


def router_argv(config: Path, port: int, workers: int) -> list[str] | None:
    """The contract command line, from the console script or the module; None when neither exists."""
    script = ROOT / ".venv" / "bin" / "llm-router"
    args = ["serve", "--config", str(config), "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    if script.exists():
        return [str(script), *args]
    if (ROOT / "router" / "cli.py").exists():
        return [str(ROOT / ".venv" / "bin" / "python"), "-m", "router.cli", *args]
    return None


def redis_routes(config: Path, work: Path) -> Path:
    """The bench's route table with limits on the key (never reached) for the Redis run:
    every request then takes the limiter's and the meter's path through Redis."""
    import yaml

    table = yaml.safe_load(config.read_text())
    for key in table["keys"]:
        key["limits"] = {"rpm": 100_000_000, "tpm": 100_000_000_000}
    derived = work / "routes.bench.redis.yaml"
    derived.write_text(yaml.safe_dump(table, sort_keys=False))
    return derived


def launch(name: str, port: int, upstream_port: int, work: Path, workers: int = 1,
           router_config: Path = BENCH / "routes.bench.yaml", redis_url: str | None = None) -> Launch | str:
    """How to start one gateway, or why it cannot be started."""
    upstream = f"http://127.0.0.1:{upstream_port}"
    if name == "floor":
        argv = [sys.executable, str(BENCH / "floor.py"), "--port", str(port), "--upstream", upstream]
        return Launch(argv, "/health", clean_env())
    if name == "llm-router":
        argv_or_none = router_argv(router_config, port, workers)
        if argv_or_none is None:
            return "not available: neither .venv/bin/llm-router nor router/cli.py exists yet"
        return Launch(argv_or_none, "/healthz", clean_env(BENCH_UPSTREAM=upstream, PYTHONPATH=str(ROOT)))
    if name == "llm-router-redis":
        argv_or_none = router_argv(redis_routes(router_config, work), port, workers)
        if argv_or_none is None:
            return "not available: neither .venv/bin/llm-router nor router/cli.py exists yet"
        if redis_url is None:
            return "not available: no redis-server to start (apt-get install -y redis-server)"
        env = clean_env(BENCH_UPSTREAM=upstream, BENCH_REDIS_URL=redis_url, PYTHONPATH=str(ROOT))
        return Launch(argv_or_none, "/readyz", env, need_ok=True)
    if name == "litellm":
        config = work / "litellm_config.yaml"
        template = (BENCH / "litellm_config.yaml").read_text()
        config.write_text(template.replace("127.0.0.1:18001", f"127.0.0.1:{upstream_port}"))
        env = clean_env(LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_TELEMETRY="False", LITELLM_LOG="ERROR",
                        DISABLE_ADMIN_UI="True", LITELLM_DONT_SHOW_FEEDBACK_BOX="True")
        argv = [str(work / "litellm-venv" / "bin" / "litellm"), "--config", str(config),
                "--host", "127.0.0.1", "--port", str(port)]
        return Launch(argv, "/health/liveliness", env, startup_timeout=120)
    if name == "portkey":
        env = clean_env(NODE_ENV="production", TRUSTED_CUSTOM_HOSTS="127.0.0.1")
        return Launch(["node", str(portkey_entry(work)), f"--port={port}", "--headless"], "/", env)
    raise ValueError(name)


def start_gateway(name: str, spec: Launch, port: int, work: Path, cores: str = GATEWAY_CORES
                  ) -> procs.Proc | str:
    """Start and wait until it answers; on failure stop it and say why."""
    proc = procs.start(name, spec.argv, cores, work / f"{name}.log", env=spec.env, cwd=ROOT)
    try:
        ready = procs.wait_http(f"http://127.0.0.1:{port}{spec.ready_path}", proc, spec.startup_timeout,
                                spec.need_ok)
    except BaseException:  # Ctrl-C while waiting: the caller never gets the process to stop
        procs.stop(proc)
        raise
    if ready:
        return proc
    procs.stop(proc)
    code = proc.popen.returncode
    what = f"exited with status {code}" if code is not None else f"did not answer within {spec.startup_timeout:.0f} s"
    return f"{what}: {proc.log_tail(600)}"


def versions(work: Path) -> dict[str, str]:
    def out(argv: list[str]) -> str:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return "not found"
        return (done.stdout or done.stderr).strip().splitlines()[0] if (done.stdout or done.stderr) else "?"

    import aiohttp

    found = {"python": sys.version.split()[0], "aiohttp": aiohttp.__version__}
    for module in ("uvloop", "orjson"):
        try:
            found[module] = __import__("importlib.metadata").metadata.version(module)
        except Exception:  # noqa: BLE001 - a missing optional package is reported, not fatal
            found[module] = "not installed"
    found["litellm"] = installed_litellm(work) or "not installed"
    pk = work / "portkey" / "node_modules" / "@portkey-ai" / "gateway" / "package.json"
    found["portkey"] = json.loads(pk.read_text())["version"] if pk.exists() else "not installed"
    hono = work / "portkey" / "node_modules" / "@hono" / "node-server" / "package.json"
    found["@hono/node-server (under Portkey)"] = json.loads(hono.read_text())["version"] if hono.exists() else "?"
    found["node"] = out(["node", "--version"])
    found["wrk"] = out(["wrk", "--version"])
    return found
