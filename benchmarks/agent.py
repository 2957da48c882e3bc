"""Agent mode: what lspilot itself adds per step, against an upstream that answers at once.

``agent_step``: one agent turn of N steps, each a ``read_file`` of a 1,000-line file the
editor has open, then a final answer. The upstream stamps when each answer was written
and when the next request arrived: the gap is lspilot's whole share of a step (reading the
streamed call, checking its arguments, reading the file, the ``lspilot/toolCall``
notices, building and encoding the next request with the growing history, sending it).
The same run's CPU for a 10-step task is compared with the floor server (a bare pygls +
httpx server) making 10 plain requests of the same upstream.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from benchmarks.floor import floor_session, ratio
from benchmarks.scenarios import Config, Figure, Session, fmt, ms, refactor_answer, summary
from benchmarks.upstream import LoopbackUpstream, Script, chunked

TARGET_STEP_MS = 5.0
_HEAD = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
         b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n")


def _sse(events: list[dict[str, Any]]) -> bytes:
    body = b"".join(chunked(b"data: " + json.dumps(e).encode() + b"\n\n") for e in events)
    return _HEAD + body + chunked(b"data: [DONE]\n\n") + b"0\r\n\r\n"


def read_call(step: int, path: str) -> bytes:
    """An answer that calls read_file, its arguments in 8 deltas, with usage."""
    args = json.dumps({"path": path})
    cut = max(1, len(args) // 8)
    pieces = [args[i:i + cut] for i in range(0, len(args), cut)]
    events: list[dict[str, Any]] = [{"choices": [{"index": 0, "delta": {"tool_calls": [{
        "index": 0, "id": f"call_{step}", "type": "function",
        "function": {"name": "read_file", "arguments": pieces[0]}}]}}]}]
    events += [{"choices": [{"index": 0, "delta": {"tool_calls": [{
        "index": 0, "function": {"arguments": p}}]}}]} for p in pieces[1:]]
    events.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
    events.append({"choices": [], "usage": {"prompt_tokens": 1000, "completion_tokens": 20,
                                            "total_tokens": 1020}})
    return _sse(events)


def final_answer() -> bytes:
    return _sse([{"choices": [{"index": 0, "delta": {"content": "Done."}}]},
                 {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}])


@dataclass
class AgentUpstream(LoopbackUpstream):
    """Answers requests in order from ``bodies``; stamps each arrival and answer."""

    bodies: list[bytes] = field(default_factory=list)
    received: list[float] = field(default_factory=list)
    answered: list[float] = field(default_factory=list)
    request_bytes: list[int] = field(default_factory=list)

    def record(self, body: bytes) -> None:
        """Keep what is wanted of a request's body."""
        self.request_bytes.append(len(body))

    def when_out(self) -> bytes:
        """The answer once the scripted ones are used up."""
        return final_answer()

    async def respond(self, body: bytes, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> bool:
        self.received.append(time.perf_counter())
        self.record(body)
        writer.write(self.bodies.pop(0) if self.bodies else self.when_out())
        await writer.drain()
        self.answered.append(time.perf_counter())
        return True


def thousand_lines() -> str:
    return "".join(f"def function_{i}(value):\n    return value * {i}  # line {i}\n"
                   for i in range(500))


async def _turn(session: Session, upstream: AgentUpstream, steps: int) -> tuple[list[float],
                                                                                  float]:
    """One agent turn of ``steps`` read_file steps; (per-step gaps in s, server CPU s)."""
    upstream.bodies = [read_call(i, "big.py") for i in range(steps)] + [final_answer()]
    upstream.received.clear()
    upstream.answered.clear()
    cpu0 = session.server.cpu_seconds()
    result, _, _ = await session.server.request("workspace/executeCommand", {
        "command": "lspilot.chat",
        "arguments": [{"message": "read big.py again and again", "mode": "agent"}]},
        timeout=600)
    cpu = session.server.cpu_seconds() - cpu0
    if result.get("status") != "done" or len(result.get("steps", [])) != steps:
        raise RuntimeError(f"the agent turn ended {result.get('status')}: {result}")
    gaps = [upstream.received[i + 1] - upstream.answered[i] for i in range(steps)]
    return gaps, cpu


async def agent_step(config: Config) -> list[Figure]:
    steps = 10
    turns = config.n(10, 2)
    gaps: list[float] = []
    cpus: list[float] = []
    upstream = AgentUpstream()
    session = Session(config, "agent-step", {"agentMaxSteps": 50})
    session.upstream = upstream  # type: ignore[assignment]
    async with session:
        (session.root / "big.py").write_text(thousand_lines())
        await session.open("big.py", thousand_lines())
        await _turn(session, upstream, 2)  # warm-up: imports, first connection
        for _ in range(turns):
            turn_gaps, cpu = await _turn(session, upstream, steps)
            gaps += turn_gaps
            cpus.append(cpu)
        sizes = list(upstream.request_bytes)
    floor_cpu: list[float] = []
    floor = floor_session(config, "agent-floor")
    async with floor:
        floor.upstream.default = Script(refactor_answer(), instant=True)
        uri = await floor.open("a.py", thousand_lines())
        await floor.action(uri, 0)
        for t in range(turns):
            cpu0 = floor.server.cpu_seconds()
            for i in range(steps):
                await floor.action(uri, 1 + t * steps + i)
            floor_cpu.append(floor.server.cpu_seconds() - cpu0)
    step = summary(ms(gaps))
    lspilot_ms = sum(cpus) / len(cpus) * 1000
    floor_ms = sum(floor_cpu) / len(floor_cpu) * 1000
    return [
        Figure("agent_step", "agent: lspilot's share of a read_file step (1,000 lines), p50",
               f"{fmt(step['p50'])} (p99 {fmt(step['p99'])})", f"<= {TARGET_STEP_MS:g} ms",
               step["p50"] <= TARGET_STEP_MS, {"step_ms": step, "steps": len(gaps),
                                                "request_bytes_max": max(sizes)}),
        Figure("agent_task_cpu", "agent: server CPU for a 10-step task vs the floor's 10 "
               "requests", f"{lspilot_ms:.0f} ms vs {floor_ms:.0f} ms "
               f"({ratio(lspilot_ms, floor_ms):.2f}x)", "informational", None,
               {"lspilot_ms": lspilot_ms, "floor_ms": floor_ms}),
    ]


AGENT_BENCHMARKS = {"agent_step": agent_step}

