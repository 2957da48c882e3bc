"""The user's MCP servers: started when an agent turn first needs their tools, kept for
the session, stopped with lspilot (and dying with it: lspilot.child_guard).

Each server runs in a task of its own that holds the ``mcp`` package's transport and
session open (anyio scopes must end in the task that began them); turns call its tools from
their own tasks. A server that fails to start or dies is left out with one message naming
it and the last lines of its stderr; the turn goes on. A server named only by a workspace's
settings is asked about, with its full command line, before it ever starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import tempfile
from collections.abc import Callable, Mapping
from typing import IO, Any, Literal

from attrs import define, field

from lspilot import consent, logs
from lspilot.settings import McpServerSetting

log = logging.getLogger(__name__)

START_TIMEOUT = 30.0
CALL_TIMEOUT = 120.0
State = Literal["stopped", "starting", "running", "failed", "refused"]


@define(frozen=True)
class McpTool:
    server: str
    name: str
    description: str
    schema: dict[str, Any]


class McpError(Exception):
    """A server that could not start or answer; the message names it."""


@define(kw_only=True)
class McpServer:
    name: str
    setting: McpServerSetting
    state: State = "stopped"
    error: str = ""
    tools: list[McpTool] = field(factory=list)
    _session: Any = None
    _task: asyncio.Task[None] | None = None
    _stop: asyncio.Event = field(factory=asyncio.Event)
    _ready: asyncio.Event = field(factory=asyncio.Event)
    _stderr: IO[str] | None = None
    on_tools_changed: Callable[[], None] | None = None

    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = {"name": self.name, "state": self.state,
                                  "tools": len(self.tools)}
        if self.error:
            status["error"] = self.error
        return status

    async def start(self) -> None:
        if self.state in ("running", "starting"):
            await self._ready.wait()
            return
        self.state, self.error = "starting", ""
        self._ready.clear()
        self._stop.clear()
        self._task = asyncio.create_task(self._run(), name=f"mcp server {self.name}")
        try:
            await asyncio.wait_for(asyncio.shield(self._ready.wait()), START_TIMEOUT)
        except TimeoutError:
            self._fail(f"it did not answer within {START_TIMEOUT:g} s")
            await self.stop()

    async def _run(self) -> None:
        from mcp import ClientSession

        try:
            async with contextlib.AsyncExitStack() as stack:
                read, write = await stack.enter_async_context(self._transport())
                session = await stack.enter_async_context(ClientSession(
                    read, write, message_handler=self._on_message))
                await session.initialize()
                self._session = session
                await self._list_tools()
                self.state = "running"
                self._ready.set()
                await self._stop.wait()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self._fail(_reason(exc))
        finally:
            self._session = None
            if self.state == "running":
                self.state = "stopped"
            self._ready.set()

    def _transport(self) -> contextlib.AbstractAsyncContextManager[Any]:
        setting = self.setting
        if setting.url is not None:
            from mcp.client.streamable_http import streamable_http_client

            return streamable_http_client(setting.url)
        from mcp.client.stdio import StdioServerParameters, stdio_client

        # Kept for the server's life (its last lines name why it failed); closed in stop().
        self._stderr = tempfile.TemporaryFile(  # noqa: SIM115
            "w+", encoding="utf-8", errors="replace")
        secrets = logs.secrets()
        env = {k: v for k, v in setting.env.items() if not any(s in v for s in secrets)}
        guarded = StdioServerParameters(
            command=sys.executable,
            args=["-m", "lspilot.child_guard", setting.command or "", *setting.args], env=env)
        return stdio_client(guarded, errlog=self._stderr)

    async def _list_tools(self) -> None:
        result = await self._session.list_tools()
        self.tools = [McpTool(self.name, tool.name, tool.description or "",
                              dict(tool.input_schema or {"type": "object"}))
                      for tool in result.tools]

    async def _on_message(self, message: Any) -> None:
        method = getattr(message, "method", "")
        if method == "notifications/tools/list_changed" and self._session is not None:
            with contextlib.suppress(Exception):
                await self._list_tools()
                if self.on_tools_changed is not None:
                    self.on_tools_changed()

    async def call(self, tool: str, arguments: Mapping[str, Any]) -> Any:
        session = self._session
        if session is None or self.state != "running":
            raise McpError(f"The MCP server {self.name} is not running"
                           f"{': ' + self.error if self.error else ''}.")
        try:
            return await asyncio.wait_for(session.call_tool(tool, dict(arguments)),
                                          CALL_TIMEOUT)
        except TimeoutError:
            raise McpError(f"The MCP server {self.name} did not answer {tool} within "
                           f"{CALL_TIMEOUT:g} s.") from None
        except Exception as exc:
            if self._task is not None and self._task.done():
                raise McpError(f"The MCP server {self.name} stopped during {tool}: "
                               f"{self.error or _reason(exc)}") from None
            raise McpError(f"The MCP server {self.name} failed {tool}: {_reason(exc)}") \
                from None

    def _fail(self, reason: str) -> None:
        tail = self._stderr_tail()
        self.state = "failed"
        self.error = reason + (f"; its stderr ends: {tail}" if tail else "")
        self.tools = []
        log.warning("MCP server %s: %s", self.name, self.error)

    def _stderr_tail(self, lines: int = 3) -> str:
        if self._stderr is None:
            return ""
        with contextlib.suppress(OSError, ValueError):
            self._stderr.flush()
            self._stderr.seek(0)
            text = self._stderr.read()[-4000:]
            return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])
        return ""

    async def stop(self) -> None:
        self._stop.set()
        task = self._task
        if task is not None and not task.done():
            try:
                await asyncio.wait_for(asyncio.shield(task), 5)
            except (TimeoutError, Exception):
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        if self.state in ("running", "starting"):
            self.state = "stopped"
            self.tools = []
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def failed(self) -> bool:
        return self.state == "failed"


class McpServers:
    """The configured servers of this session, by name."""

    def __init__(self, remembered: consent.Remembered | None) -> None:
        self.servers: dict[str, McpServer] = {}
        # Where "Start it" answers for servers a workspace named are kept (None: asked
        # each session).
        self.remembered = remembered
        self._lock = asyncio.Lock()
        self._stopping: set[asyncio.Task[None]] = set()

    def configure(self, settings: Mapping[str, McpServerSetting]) -> None:
        """Follow the settings: new servers are added (started when needed), changed or
        removed ones stopped."""
        for name in list(self.servers):
            if name not in settings or self.servers[name].setting != settings[name]:
                stopping = asyncio.ensure_future(self.servers.pop(name).stop())
                self._stopping.add(stopping)
                stopping.add_done_callback(self._stopping.discard)
        for name, setting in settings.items():
            self.servers.setdefault(name, McpServer(name=name, setting=setting))

    async def ready(self, ask: consent.Ask | None,
                    notify: Callable[[str], None]) -> list[McpServer]:
        """The running servers, starting (after consent) those not started yet; each
        failure said once through ``notify``."""
        async with self._lock:
            for server in self.servers.values():
                if server.state in ("stopped",):
                    if not server.setting.users_own and not await self._allowed(server, ask):
                        server.state, server.error = "refused", "not allowed to start"
                        continue
                    await server.start()
                    if server.failed():
                        notify(f"The MCP server {server.name} could not start, so its "
                               f"tools are left out: {server.error}")
            return [s for s in self.servers.values() if s.state == "running"]

    async def _allowed(self, server: McpServer, ask: consent.Ask | None) -> bool:
        shown = server.setting.shown()
        question = consent.Question(
            f"The workspace settings name the MCP server {server.name}: "
            f"`{shown}`. Start it? It runs as you, and agent mode may call its tools.",
            allow="Start it", deny="Don't start")
        entry = consent.command_entry("mcpServer", [server.name, shown])
        if self.remembered is not None and self.remembered.allows(entry):
            return True
        if await consent.decide("ask", question, ask):
            if self.remembered is not None:
                self.remembered.allow(entry)
            return True
        return False

    def status(self) -> list[dict[str, Any]]:
        return [server.status() for server in self.servers.values()]

    async def aclose(self) -> None:
        await asyncio.gather(*(s.stop() for s in self.servers.values()),
                             return_exceptions=True)


def result_text(result: Any) -> tuple[str, bool]:
    """A tool result as text for the model (images and resources summarised, never
    fetched), and whether the tool reported an error."""
    parts: list[str] = []
    for block in getattr(result, "content", None) or []:
        kind = getattr(block, "type", "")
        if kind == "text":
            parts.append(block.text)
        elif kind in ("image", "audio"):
            size = len(getattr(block, "data", "") or "") * 3 // 4
            parts.append(f"[{kind}: {getattr(block, 'mime_type', '?')}, about {size:,} bytes, "
                         "not shown]")
        elif kind == "resource_link":
            parts.append(f"[resource link: {block.uri}]")
        elif kind == "resource":
            resource = block.resource
            text = getattr(resource, "text", None)
            parts.append(f"[resource {resource.uri}]" + (f"\n{text}" if text else ""))
        else:
            parts.append(f"[{kind or 'content'} block]")
    structured = getattr(result, "structured_content", None)
    if structured is not None and not parts:  # servers send both forms of the same data
        parts.append(json.dumps(structured, ensure_ascii=False))
    return "\n".join(parts) or "(no content)", bool(getattr(result, "is_error", False))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_reason(e) for e in exc.exceptions)
    if isinstance(exc, FileNotFoundError):
        return "its program was not found"
    return str(exc) or type(exc).__name__
