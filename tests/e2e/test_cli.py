"""The `lspilot` program itself: version, check, TCP."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys

from lsprotocol import types
from pygls.lsp.client import LanguageClient

import lspilot
from tests.fake_upstream import Reply

KEY = "sk-cli-secret-value"


def run_lspilot(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("LSPILOT_", "OPENAI_"))}
    base["XDG_CONFIG_HOME"] = "/nonexistent"  # not the developer's own settings file
    return subprocess.run(
        [sys.executable, "-m", "lspilot", *args], capture_output=True, text=True,
        env={**base, **(env or {})}, timeout=60, stdin=subprocess.DEVNULL,
    )


def test_version():
    done = run_lspilot("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"lspilot {lspilot.__version__}"


def test_check_succeeds_and_redacts_the_key(upstream):
    upstream.enqueue(Reply.stream(["ok"]))
    done = run_lspilot("check", env={"LSPILOT_BASE_URL": upstream.base_url,
                                     "OPENAI_API_KEY": KEY, "LSPILOT_MODEL": "m1"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert '"apiKey": "***"' in done.stdout and '"model": "m1"' in done.stdout
    assert "OK: m1" in done.stdout
    assert "lspilot acp would use these settings (the environment and the settings " \
        "file)" in done.stdout
    assert KEY not in done.stdout + done.stderr
    assert upstream.requests[0].headers["authorization"] == f"Bearer {KEY}"


def test_check_fails_with_a_one_line_reason(upstream):
    upstream.enqueue(Reply.error(401, "bad key"))
    done = run_lspilot("check", env={"LSPILOT_BASE_URL": upstream.base_url,
                                     "LSPILOT_API_KEY": KEY})
    assert done.returncode == 1
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("lspilot check:") and "bad key" in last and "apiKey" in last
    assert KEY not in done.stdout + done.stderr


def test_check_without_a_key_says_what_to_set():
    done = run_lspilot("check")
    assert done.returncode == 1
    assert "LSPILOT_API_KEY" in done.stdout.strip().splitlines()[-1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_tcp_mode_serves_a_client():
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "lspilot", "--tcp", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
    )
    client = LanguageClient("tcp-test", "1")
    try:
        for _ in range(100):
            try:
                await client.start_tcp("127.0.0.1", port)
                break
            except OSError:
                await asyncio.sleep(0.1)
        result = await asyncio.wait_for(client.initialize_async(
            types.InitializeParams(capabilities=types.ClientCapabilities())), 10)
        assert result.server_info.name == "lspilot"
        assert "lspilot.refactor" in result.capabilities.execute_command_provider.commands
        await client.shutdown_async(None)
        client.exit(None)
    finally:
        await client.stop()
        process.terminate()
        process.wait(timeout=10)


def test_check_prints_the_price_it_will_use(upstream):
    upstream.enqueue(Reply.stream(["ok"]), Reply.stream(["ok"]))
    env = {"LSPILOT_BASE_URL": upstream.base_url, "OPENAI_API_KEY": KEY}
    done = run_lspilot("check", env=env)
    assert "price: gpt-5-4-mini: $0.15 per 1M tokens in, $0.9 per 1M out" in done.stdout
    done = run_lspilot("check", env={**env, "LSPILOT_MODEL": "house-model"})
    assert "price: unknown for house-model" in done.stdout
