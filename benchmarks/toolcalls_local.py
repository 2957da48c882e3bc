"""What the bundled local model does with tools (issue 22): native tool calling through
llama-cpp-python's server, or the prompt tool format parsed by lspilot.

Starts ``llama_cpp.server`` with the bundled Qwen2.5-Coder 0.5B (the GGUF's own chat
template, and again with ``--chat_format chatml-function-calling``) and asks a handful
of small tasks that each need one tool call, through lspilot's own client, streamed and
not: which way gets calls out of the model, with a known tool and JSON arguments that
name the right thing. ``python -m benchmarks.run --only toolcalls_local`` (needs
llama_cpp and the model; ``LSPILOT_BENCH_GGUF`` names the model file).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.scenarios import Config, Figure

TASKS = [
    ("Read the file src/util.py and tell me what it does.", "read_file", "util.py"),
    ("Show me what is in README.md.", "read_file", "README.md"),
    ("Find where the function parse_config is defined.", "search", "parse_config"),
    ("Search the code for TODO comments.", "search", "TODO"),
    ("Open tests/test_app.py.", "read_file", "test_app.py"),
    ("Which files mention the word 'deprecated'?", "search", "deprecated"),
]


def _tools() -> tuple[Any, ...]:
    from lspilot.llm.wire import ToolSpec

    return (
        ToolSpec("read_file", "Read a file of the workspace.", {
            "type": "object", "properties": {"path": {"type": "string",
                                                      "description": "relative path"}},
            "required": ["path"]}),
        ToolSpec("search", "Search the workspace's files for a pattern.", {
            "type": "object", "properties": {"pattern": {"type": "string"}},
            "required": ["pattern"]}),
    )


def _model() -> Path:
    named = os.environ.get("LSPILOT_BENCH_GGUF")
    if named:
        return Path(named)
    from lspilot.local.model import QWEN_CODER

    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "lspilot" / "models" / QWEN_CODER.file_name


@contextlib.asynccontextmanager
async def _llama(model: Path, chat_format: str | None) -> Any:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(model),
               "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096",
               "--model_alias", "local"]
    if chat_format:
        command += ["--chat_format", chat_format]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        async with httpx.AsyncClient() as http:
            for _ in range(600):
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"{base}/models", timeout=1)).status_code == 200:
                        break
                if process.poll() is not None:
                    raise RuntimeError("llama.cpp's server exited while starting")
                await asyncio.sleep(0.2)
        yield base
    finally:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(10)
        if process.poll() is None:
            process.kill()


def _judge(calls: tuple[Any, ...], tool: str, expect: str) -> dict[str, bool]:
    known = [c for c in calls if c.name in ("read_file", "search")]
    parsed = []
    for call in known:
        with contextlib.suppress(ValueError):
            value = json.loads(call.arguments)
            if isinstance(value, dict):
                parsed.append((call, value))
    right = any(c.name == tool and expect.lower() in json.dumps(v).lower() for c, v in parsed)
    return {"call": bool(calls), "known_tool": bool(known), "json": bool(parsed),
            "right": right}


async def _ask(base: str, tool_format: str, stream: bool, prompt: str) -> tuple[Any, str, float]:
    from lspilot.llm.client import ChatClient
    from lspilot.llm.endpoint import Endpoint
    from lspilot.llm.wire import ChatMessage, ChatRequest

    client = ChatClient()
    endpoint = Endpoint(base_url=base, api_key="local", max_retries=0, idle_timeout=120)
    request = ChatRequest(
        model="local", max_tokens=200, temperature=0.0,
        messages=(ChatMessage("system", "You are a coding assistant working in the user's "
                              "workspace. Use the tools to look at files."),
                  ChatMessage("user", prompt)),
        tools=_tools(), tool_choice="auto", tool_format=tool_format)  # type: ignore[arg-type]
    started = time.perf_counter()
    try:
        if stream:
            async with client.stream(request, endpoint) as answer:
                async for _ in answer.events():
                    pass
        else:
            async with client.whole(request, endpoint) as answer:
                async for _ in answer:
                    pass
        return answer.tool_calls, answer.text, time.perf_counter() - started
    finally:
        await client.aclose()


async def toolcalls_local(config: Config) -> list[Figure]:
    model = _model()
    if not model.exists():
        raise RuntimeError(f"no model at {model} (set LSPILOT_BENCH_GGUF)")
    tasks = TASKS[:2] if config.smoke else TASKS
    ways = [(None, "native", False), (None, "native", True), (None, "prompt", True),
            (None, "prompt", False), ("chatml-function-calling", "native", False),
            ("chatml-function-calling", "native", True)]
    figures = []
    for chat_format in (None, "chatml-function-calling"):
        async with _llama(model, chat_format) as base:
            for fmt, tool_format, stream in ways:
                if fmt != chat_format:
                    continue
                tally = {"call": 0, "known_tool": 0, "json": 0, "right": 0}
                seconds, samples = [], []
                for prompt, tool, expect in tasks:
                    try:
                        calls, text, took = await _ask(base, tool_format, stream, prompt)
                    except Exception as exc:  # a refusal is a finding
                        samples.append({"prompt": prompt, "error": repr(exc)[:300]})
                        continue
                    verdict = _judge(calls, tool, expect)
                    for key, ok in verdict.items():
                        tally[key] += ok
                    seconds.append(took)
                    samples.append({"prompt": prompt, "calls": [
                        [c.name, c.arguments] for c in calls], "text": text[:300], **verdict})
                label = (f"local model tools: {tool_format}, template "
                         f"{chat_format or 'from the GGUF'}, {'stream' if stream else 'whole'}")
                n = len(tasks)
                figures.append(Figure(
                    f"toolcalls_local_{tool_format}_{chat_format or 'gguf'}_{int(stream)}",
                    label,
                    f"right call {tally['right']}/{n}, any call {tally['call']}/{n}, JSON "
                    f"arguments {tally['json']}/{n}, "
                    f"{sum(seconds) / max(1, len(seconds)):.1f} s each",
                    "informational", None, {"tally": tally, "samples": samples,
                                             "seconds": seconds}))
    return figures


LOCAL_TOOL_BENCHMARKS = {"toolcalls_local": toolcalls_local}
