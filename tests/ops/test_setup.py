"""The two commands from a fresh clone: `make test` sets up what the suite needs
(scripts/setup-test-env, tried in its --dry-run mode), `.ci/run` is `make test` then
`make check` and fails when either fails, `make demo` takes PORT= and HOST=, the shipped
route table checks with an empty environment, and the demo serves on the port asked
with the keys it was given."""

from __future__ import annotations

import os
import queue
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

ROOT = Path(__file__).resolve().parents[2]
SETUP = ROOT / "scripts" / "setup-test-env"
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def world_readable() -> Iterator[Path]:
    """A directory the `nobody` user can read (pytest's tmp_path is root's alone)."""
    with tempfile.TemporaryDirectory() as name:
        Path(name).chmod(0o755)
        yield Path(name)


def tool_dir(base: Path, *tools: str, apt_get: bool = False) -> Path:
    """A PATH with only the named tools (and, if asked, an apt-get that must never run)."""
    bin_dir = base / "bin"
    bin_dir.mkdir()
    for tool in tools:
        found = shutil.which(tool)
        assert found, f"{tool} is part of every Debian system"
        (bin_dir / tool).symlink_to(found)
    if apt_get:
        (bin_dir / "apt-get").symlink_to(shutil.which("false") or "/bin/false")
    bin_dir.chmod(0o755)
    return bin_dir


def setup(path: str, *, redis_port: int | None = None, as_nobody: bool = False) -> subprocess.CompletedProcess[str]:
    env = {"PATH": path, "LANG": "C.UTF-8"}
    if redis_port is not None:
        env["SETUP_REDIS_PORT"] = str(redis_port)
    command = ["bash", str(SETUP), "--dry-run"]
    if as_nobody and os.getuid() == 0:
        command = [shutil.which("setpriv") or "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=30, check=False)


def test_setup_finds_everything_on_a_prepared_machine() -> None:
    done = setup(os.environ["PATH"])
    assert done.returncode == 0, done.stderr
    assert "Redis answers on 127.0.0.1:6379" in done.stdout
    assert "promtool and prometheus found" in done.stdout
    assert "would" not in done.stdout


def test_setup_starts_redis_when_none_answers() -> None:
    done = setup(os.environ["PATH"], redis_port=free_port())
    assert done.returncode == 0, done.stderr
    assert "would start: redis-server on 127.0.0.1:" in done.stdout


def test_setup_installs_what_is_missing_as_root(tmp_path: Path) -> None:
    bin_dir = tool_dir(tmp_path, "bash", "id", "seq", "sleep", apt_get=True)
    done = setup(str(bin_dir), redis_port=free_port())
    if os.getuid() == 0:
        assert done.returncode == 0, done.stderr
        assert "would run: apt-get update; apt-get install -y redis-server prometheus nodejs npm" in done.stdout
        assert "would start: redis-server" in done.stdout
    else:  # the same machine, not root: the next test's message
        assert done.returncode == 1 and "not root" in done.stderr


def test_setup_says_what_to_install_when_not_root(world_readable: Path) -> None:
    bin_dir = tool_dir(world_readable, "bash", "id", "seq", "sleep", apt_get=True)
    done = setup(str(bin_dir), redis_port=free_port(), as_nobody=True)
    assert done.returncode == 1
    assert "cannot install redis-server prometheus nodejs npm: not root and no password-less sudo" in done.stderr
    assert "sudo apt-get install -y redis-server prometheus nodejs npm" in done.stderr


def test_setup_says_what_to_install_without_apt(tmp_path: Path) -> None:
    bin_dir = tool_dir(tmp_path, "bash", "id", "seq", "sleep")
    done = setup(str(bin_dir))
    assert done.returncode == 1
    assert "cannot install prometheus nodejs npm: apt-get not found" in done.stderr


def test_make_test_sets_up_before_running_pytest() -> None:
    done = subprocess.run(["make", "-n", "test"], cwd=ROOT, capture_output=True, text=True, timeout=30, check=True)
    lines = done.stdout.splitlines()
    setup_line = lines.index("scripts/setup-test-env")
    assert any(line.endswith("-m pytest -q") for line in lines[setup_line + 1:])


def test_make_demo_takes_port_and_host() -> None:
    done = subprocess.run(["make", "-n", "demo", "PORT=9123", "HOST=0.0.0.0"], cwd=ROOT, capture_output=True,
                          text=True, timeout=30, check=True)
    assert "llm-router demo --host '0.0.0.0' --port '9123'" in done.stdout


def run_ci(tmp_path: Path, failing_target: str | None) -> tuple[int, list[str]]:
    """.ci/run with a `make` that records its targets and fails the one named."""
    log = tmp_path / "make.log"
    fake = tmp_path / "make"
    fake.write_text(f'#!/bin/sh\necho "$*" >> {log}\n'
                    f'[ "$1" = "{failing_target}" ] && exit 5\nexit 0\n', encoding="utf-8")
    fake.chmod(0o755)
    env = {"PATH": f"{tmp_path}:{os.environ['PATH']}"}
    done = subprocess.run(["bash", str(ROOT / ".ci" / "run")], env=env, capture_output=True, text=True,
                          timeout=30, check=False)
    return done.returncode, log.read_text(encoding="utf-8").split()


def test_ci_runs_make_test_then_make_check(tmp_path: Path) -> None:
    assert run_ci(tmp_path, None) == (0, ["test", "check"])


def test_ci_fails_when_make_test_fails(tmp_path: Path) -> None:
    rc, targets = run_ci(tmp_path, "test")  # 5: pytest ran no test
    assert rc != 0 and targets == ["test"]


def test_ci_fails_when_make_check_fails(tmp_path: Path) -> None:
    rc, targets = run_ci(tmp_path, "check")
    assert rc != 0 and targets == ["test", "check"]


def test_the_shipped_table_checks_with_an_empty_environment() -> None:
    done = subprocess.run([str(BIN / "llm-router"), "check", "routes.yaml"], cwd=ROOT, env={}, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("routes.yaml: ok")


def read_until(lines: queue.Queue[str], marker: str) -> list[str]:
    seen = []
    while True:
        line = lines.get(timeout=60)
        seen.append(line)
        if marker in line:
            return seen


def test_demo_serves_on_the_port_asked_with_the_keys_given() -> None:
    port = free_port()
    env = {"PATH": os.environ["PATH"], "DEMO_API_KEY": "sk-demo-stable-test"}
    demo = subprocess.Popen([str(BIN / "llm-router"), "demo", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    lines: queue.Queue[str] = queue.Queue()
    assert demo.stdout is not None
    threading.Thread(target=lambda: [lines.put(line) for line in demo.stdout], daemon=True).start()  # type: ignore[union-attr]
    try:
        output = "".join(read_until(lines, "admin key:"))
        assert f"serving on http://127.0.0.1:{port}" in output
        assert "demo key:  sk-demo-stable-test  (from DEMO_API_KEY)" in output
        assert "new at every start; set ROUTER_ADMIN_KEY to keep one" in output
        with openai.OpenAI(api_key="sk-demo-stable-test", base_url=f"http://127.0.0.1:{port}/v2",
                           max_retries=0) as client:
            raw = client.chat.completions.with_raw_response.create(
                model="gpt-4o", max_tokens=4, messages=[{"role": "user", "content": "Hello"}])
        assert raw.headers["x-ratelimit-limit-requests"] == "60"
        assert raw.parse().choices[0].message.content
    finally:
        demo.terminate()
        demo.wait(30)
        demo.stdout.close()
