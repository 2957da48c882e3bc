"""The ACP methods: ``initialize``, ``session/new``, ``session/prompt``, ``session/cancel``,
``session/set_mode``. A prompt runs lspilot's agent loop (lspilot.agent.loop) as a job,
like an LSP chat turn in agent mode; only the host (lspilot.acp.host), the question
(``session/request_permission``) and the stream (``session/update``) are ACP's."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from attrs import define, field

from lspilot import __version__
from lspilot.acp import schema
from lspilot.acp.editor import AcpEditor
from lspilot.acp.host import AcpHost
from lspilot.acp.rpc import INTERNAL_ERROR, Connection, RpcError, invalid_params
from lspilot.agent import prompt
from lspilot.agent.files import ToolError
from lspilot.agent.loop import ALLOW, ALLOW_CONVERSATION, DENY, Approvals, Step, TurnSetup, run_turn
from lspilot.agent.mcp_tools import mcp_tools
from lspilot.agent.tools import BUILTIN_TOOLS, Tool
from lspilot.backends import Upstreams, backend_for
from lspilot.jobs.job import Job, JobContext, JobSpec, Outcome
from lspilot.jobs.lanes import Lanes
from lspilot.llm.client import ChatClient
from lspilot.llm.wire import ChatMessage, ChatRequest, ToolSpec
from lspilot.mcp_client import McpServers
from lspilot.requests import chat_request
from lspilot.settings import Settings
from lspilot.store import SettingsStore
from lspilot.usage import Meter

log = logging.getLogger(__name__)

TREE_ENTRIES = 80  # files the system prompt names
ANSWERS = {schema.ALLOW_ONCE: ALLOW, schema.ALLOW_ALWAYS: ALLOW_CONVERSATION,
           schema.REJECT: DENY}
STOP_REASONS = {"end_turn": "end_turn", "max_steps": "max_turn_requests",
                "max_cost": "max_turn_requests"}
# lspilot refuses to ask the model (maxSessionCost): the turn ends as ``refusal``.
REFUSALS = ("cost_limit",)
ASK_SYSTEM = ("You are lspilot, a coding assistant in the user's editor. Answer the "
              "question; you have no tools in this mode.")


@define(kw_only=True, eq=False)
class Session:
    id: str
    cwd: Path
    mode: str = "agent"
    history: list[ChatMessage] = field(factory=list)
    approvals: Approvals = field(factory=Approvals)
    # The configured MCP servers and the ones the client passed, started when needed.
    mcp: McpServers = field(factory=lambda: McpServers(None))
    job: Job | None = None


class AcpAgent:
    def __init__(self, connection: Connection, store: SettingsStore, cache_dir: Path) -> None:
        self.connection = connection
        self.store = store
        self.client = ChatClient(verify_tls=store.settings.verify_tls)
        self.lanes = Lanes(store.settings)
        self.meter = Meter()  # maxSessionCost: everything this process asked for
        self.upstreams = Upstreams(cache_dir)
        self.remembered = store.remembered
        self.caps = schema.ClientCapabilities()
        self.sessions: dict[str, Session] = {}
        connection.request("initialize", self.initialize)
        connection.request("session/new", self.new_session)
        connection.request("session/prompt", self.prompt)
        connection.request("session/set_mode", self.set_mode)
        connection.notification("session/cancel", self.cancel)

    async def aclose(self) -> None:
        for session in self.sessions.values():
            if session.job is not None:
                session.job.cancel()
        await self.client.aclose()
        await self.upstreams.aclose()
        await asyncio.gather(*(s.mcp.aclose() for s in self.sessions.values()),
                             return_exceptions=True)

    # -- the methods ----------------------------------------------------------------------
    async def initialize(self, params: Any) -> dict[str, Any]:
        """Agree on the version; say what we can do; no authentication (the key comes from
        the settings)."""
        params = schema.params_object(params)
        version = schema.negotiated_version(params.get("protocolVersion"))
        self.caps = schema.ClientCapabilities.from_json(params.get("clientCapabilities"))
        log.info("ACP client %s: %s", _client_name(params), self.caps)
        return {"protocolVersion": version, "agentCapabilities": schema.agent_capabilities(),
                "authMethods": [],
                "agentInfo": {"name": "lspilot", "title": "lspilot", "version": __version__}}

    async def new_session(self, params: Any) -> dict[str, Any]:
        """A session in the folder ``cwd`` (the workspace)."""
        params = schema.params_object(params)
        cwd = _folder(schema.string_field(params, "cwd"))
        servers = params.get("mcpServers", [])
        if not isinstance(servers, list):
            raise invalid_params("mcpServers must be a list")
        try:
            client_servers = schema.mcp_servers(servers)
        except ValueError as exc:
            raise invalid_params(f"mcpServers: {exc}") from None
        session = Session(id=f"sess-{uuid.uuid4().hex}", cwd=cwd,
                          mcp=McpServers(self.remembered))
        # The configured servers and the client's (the user's editor setup), the client's
        # winning by name.
        session.mcp.configure({**self.store.settings.mcp_servers, **client_servers})
        self.sessions[session.id] = session
        return {"sessionId": session.id,
                "modes": {"currentModeId": session.mode, "availableModes": list(schema.MODES)}}

    async def set_mode(self, params: Any) -> dict[str, Any]:
        params = schema.params_object(params)
        session = self._session(params)
        mode = schema.string_field(params, "modeId")
        if mode not in schema.MODE_IDS:
            raise invalid_params(f"modeId must be one of {', '.join(schema.MODE_IDS)}")
        session.mode = mode
        return {}

    def cancel(self, params: Any) -> None:
        """Stop the session's turn at once: the stream closes, a running tool is killed,
        a permission question is given up on; its prompt answers ``cancelled``."""
        session = self._session(schema.params_object(params))
        if session.job is not None:
            session.job.cancel()

    async def prompt(self, params: Any) -> dict[str, Any]:
        params = schema.params_object(params)
        session = self._session(params)
        if session.job is not None:
            raise RpcError(INTERNAL_ERROR, "This session is already answering a prompt: "
                           "cancel it first (session/cancel).")
        message = schema.prompt_text(params.get("prompt"), session.cwd)
        await self.store.wait_until_ready()
        editor = AcpEditor(self.connection, session.id)
        try:
            context = await self._job_context(editor)
        except ToolError as exc:
            raise RpcError(INTERNAL_ERROR, str(exc)) from None
        spec = JobSpec(title="lspilot agent", command="acp", action="agent", uri=None)
        job = Job(spec=spec, context=context)
        turn = _Turn(self, session, editor, job)
        session.job = job
        try:
            result = await job.start(lambda j: turn.body(message))
        finally:
            session.job = None
        answer: dict[str, Any] = {}
        if result.usage is not None:
            used = result.usage.usage
            answer["usage"] = schema.usage_json(used.prompt_tokens, used.completion_tokens)
            editor.update(self._usage_update(result.usage.cost, used.prompt_tokens,
                                             context.settings))
            answer["_meta"] = {"lspilot": {"cost": result.usage.cost,
                                           "estimated": used.estimated,
                                           "sessionCost": self.meter.total.cost}}
        if result.status == "cancelled":
            return {"stopReason": "cancelled", **answer}
        if result.status == "failed":
            if result.error_type in REFUSALS:
                editor.update(schema.message_chunk(f"lspilot: {result.error_message}"))
                return {"stopReason": "refusal", **answer}
            raise RpcError(INTERNAL_ERROR, result.error_message or "the turn failed",
                           {"type": result.error_type})
        stop = STOP_REASONS.get(str(result.extra.get("stopReason")), "end_turn")
        note = result.extra.get("note")
        if note:
            editor.update(schema.message_chunk(f"\n\n(lspilot {note})"))
        return {"stopReason": stop, **answer}

    # -- helpers --------------------------------------------------------------------------
    def _session(self, params: Mapping[str, Any]) -> Session:
        ident = schema.string_field(params, "sessionId")
        session = self.sessions.get(ident)
        if session is None:
            raise invalid_params(f"there is no session {ident}")
        return session

    async def _job_context(self, editor: AcpEditor) -> JobContext:
        settings, lost = await self.upstreams.prepare(self.store.settings, None)
        return JobContext(editor=editor, client=self.client, settings=settings,
                          lanes=self.lanes, meter=self.meter,
                          refresh_key=self.store.key_refresher(None), upstream_lost=lost)

    def _usage_update(self, cost: float | None, prompt_tokens: int,
                      settings: Settings) -> dict[str, Any]:
        update: dict[str, Any] = {"sessionUpdate": "usage_update", "used": prompt_tokens,
                                  # The window is the model's; the budget is what we fill.
                                  "size": max(prompt_tokens, settings.context_budget_chars // 4)}
        total = self.meter.total.cost
        if total is not None or cost is not None:
            update["cost"] = {"amount": round(total or 0.0, 6), "currency": "USD"}
        return update


class _Turn:
    """One ``session/prompt``: the job's body, its steps and questions."""

    def __init__(self, agent: AcpAgent, session: Session, editor: AcpEditor, job: Job) -> None:
        self.agent = agent
        self.session = session
        self.editor = editor
        self.job = job
        self.step: Step | None = None  # the step that is running (and may be asked about)
        self.host = AcpHost(agent.connection, session.id, session.cwd, job.settings,
                            agent.caps, self._terminal_started)

    async def body(self, message: str) -> Outcome:
        settings = self.job.settings
        backend = backend_for(self.agent.store.settings)
        tools: list[Tool] = []
        if self.session.mode == "agent":
            tools = [t for t in BUILTIN_TOOLS if not (
                t.name == "run_command" and settings.agent_approval["run"] == "never")]
            if self.session.mcp.servers and settings.agent_approval["mcp"] != "never":
                servers = await self.session.mcp.ready(self.ask, self._mcp_failed)
                tools += mcp_tools(servers)
            system = prompt.system_prompt(*self._tree(), None)
        else:
            system = ASK_SYSTEM
        history = [*self.session.history, ChatMessage("user", message)]
        history, _dropped = prompt.fit(history, settings.context_budget_chars - len(system))

        def request(messages: tuple[ChatMessage, ...],
                    specs: tuple[ToolSpec, ...]) -> ChatRequest:
            return chat_request(settings, (ChatMessage("system", system), *messages),
                                tools=specs, tool_format=backend.tool_format)

        setup = TurnSetup(tools=tools, host=self.host, request=request,
                          approval=settings.agent_approval, ask=self.ask,
                          approvals=self.session.approvals, on_step=self.on_step,
                          max_steps=settings.agent_max_steps, max_cost=settings.agent_max_cost)
        outcome = await run_turn(self.job, history, setup)
        self.session.history = [*history, *outcome.messages]
        return Outcome(text=outcome.text, note=outcome.note,
                       extra={"stopReason": outcome.stop_reason, "note": outcome.note})

    def _mcp_failed(self, message: str) -> None:
        log.warning("%s", message)
        self.editor.update({"sessionUpdate": "agent_message_chunk",
                            "content": {"type": "text", "text": f"_{message}_\n\n"}})

    def _tree(self) -> tuple[list[str], int]:
        names: list[str] = []
        more = 0
        for path in self.host.files.walk():
            if len(names) < TREE_ENTRIES:
                names.append(self.host.files.relative(path))
            else:
                more += 1
        return sorted(names), more

    # -- steps ----------------------------------------------------------------------------
    def on_step(self, step: Step) -> None:
        if step.status == "running":
            self.step = step
            self.editor.update(schema.tool_call(
                step.id, schema.title_of(step.label, step.name), step.kind,
                self._locations(step), step.arguments, self._planned(step)))
            return
        if self.step is None or self.step.id != step.id:
            # A call that failed before it started (an unknown tool, bad arguments).
            self.editor.update(schema.tool_call(step.id, step.name, step.kind, [],
                                                step.arguments))
        self.step = None
        content = [schema.text_content(step.summary or step.result[:200])] \
            if step.status != "done" else self._done_content(step)
        self.editor.update(schema.tool_call_update(
            step.id, schema.STATUSES[step.status], content=content,
            raw_output={"status": step.status, "summary": step.summary}))

    def _path(self, step: Step) -> Path | None:
        path = schema.raw_input(step.arguments)
        path = path.get("path") if isinstance(path, dict) else None
        if not isinstance(path, str):
            return None
        try:
            return self.host.files.resolve(path)
        except ToolError:
            return None

    def _locations(self, step: Step) -> list[dict[str, Any]]:
        path = self._path(step)
        if path is None:
            return [{"path": str(self.session.cwd)}] if step.kind == "run" else []
        location: dict[str, Any] = {"path": str(path)}
        args = schema.raw_input(step.arguments)
        line = args.get("startLine") if isinstance(args, dict) else None
        if isinstance(line, int) and line > 0:
            location["line"] = line - 1  # ACP's lines are 0-based
        return [location]

    def _planned(self, step: Step) -> list[dict[str, Any]]:
        """What an edit would do, shown while it waits for approval: the snippet's diff."""
        args = schema.raw_input(step.arguments)
        path = self._path(step)
        if path is None or not isinstance(args, dict):
            return []
        if step.name == "edit_file" and isinstance(args.get("new"), str):
            return [schema.diff_content(path, str(args.get("old", "")), args["new"])]
        if step.name == "create_file" and isinstance(args.get("content"), str):
            return [schema.diff_content(path, None, args["content"])]
        return []

    def _done_content(self, step: Step) -> list[dict[str, Any]]:
        path = self._path(step)
        if step.kind == "edit" and path is not None and path in self.host.diffs:
            old, new = self.host.diffs.pop(path)
            return [schema.diff_content(path, old, new)]
        return [schema.text_content(step.summary)] if step.summary else []

    def _terminal_started(self, terminal: str) -> None:
        if self.step is not None:
            self.editor.update(schema.tool_call_update(
                self.step.id, "in_progress",
                content=[{"type": "terminal", "terminalId": terminal}]))

    async def ask(self, message: str, titles: list[str]) -> str | None:
        """``session/request_permission`` about the running step; a cancelled turn (or a
        client that answers ``cancelled``) is a no."""
        step = self.step
        if step is None:
            return None
        call = {"toolCallId": step.id, "title": schema.title_of(step.label, step.name),
                "kind": schema.TOOL_KINDS.get(step.kind, "other"), "status": "pending",
                "locations": self._locations(step), "rawInput": schema.raw_input(step.arguments),
                "content": [*self._planned(step), schema.text_content(message)]}
        try:
            result = await self.agent.connection.call("session/request_permission", {
                "sessionId": self.session.id, "toolCall": call,
                "options": schema.permission_options(titles)})
        except (RpcError, ConnectionError) as exc:
            log.info("The permission request failed: %s", exc)
            return None
        answer = ANSWERS.get(schema.chosen_option(result) or "")
        if answer in (ALLOW, ALLOW_CONVERSATION):
            self.editor.update(schema.tool_call_update(step.id, "in_progress"))
        return answer


def _folder(given: str) -> Path:
    cwd = Path(given)
    if not cwd.is_absolute():
        raise invalid_params("cwd must be an absolute path")
    if not cwd.is_dir():
        raise invalid_params(f"cwd {cwd} is not a folder")
    return cwd


def _client_name(params: Mapping[str, Any]) -> str:
    info = params.get("clientInfo")
    if isinstance(info, Mapping):
        return f"{info.get('name')} {info.get('version') or ''}".strip()
    return "(unnamed)"
