"""Agent mode of ``lspilot.chat`` (``"mode": "agent"``): one turn runs the agent loop
(lspilot.agent.loop) with the built-in tools in this editor (features.agent_host); each
step is reported by ``lspilot/toolCall``; the conversation keeps the whole exchange."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.uris import to_fs_path

from lspilot.actions import selection
from lspilot.agent import prompt
from lspilot.agent.files import ToolError
from lspilot.agent.loop import Approvals, Step, TurnSetup, run_turn
from lspilot.agent.mcp_tools import mcp_tools
from lspilot.agent.tools import BUILTIN_TOOLS, Tool
from lspilot.backends import backend_for
from lspilot.chat import prompt as chat_prompt
from lspilot.chat.conversations import Conversation, ConversationStore, Turn
from lspilot.features.agent_host import LspHost
from lspilot.jobs.job import Job, Outcome
from lspilot.llm.wire import ChatMessage, ChatRequest, ToolCall, ToolSpec
from lspilot.requests import chat_request
from lspilot.services import Services

TOOL_CALL_NOTIFICATION = "lspilot/toolCall"
TREE_ENTRIES = 80  # files the system prompt names


class AgentTurns:
    def __init__(self, services: Services, conversations: ConversationStore) -> None:
        self.services = services
        self.conversations = conversations
        # "Allow for this conversation" answers, by conversation, for this session.
        self._approvals: dict[str, Approvals] = {}

    async def answer(self, job: Job, conversation: Conversation, message: str,
                     uri: str | None, range_: types.Range | None,
                     files: list[chat_prompt.Context]) -> Outcome:
        settings = job.settings
        backend = backend_for(self.services.store.settings_for(uri))
        host = LspHost(self.services, settings, uri, on_edit=job.edited)
        tools: list[Tool] = [t for t in BUILTIN_TOOLS
                 if not (t.name == "run_command" and settings.agent_approval["run"] == "never")]
        if settings.mcp_servers and settings.agent_approval["mcp"] != "never":
            job.report("Starting MCP servers…")
            servers = await self.services.mcp.ready(self.services.editor.ask, self._warn)
            tools += mcp_tools(servers)
        system = prompt.system_prompt(*self._tree(host), self._context(host, uri, range_))
        parts = [message, *(f"{c.label}:\n```\n{c.text.rstrip()}\n```" for c in files)]
        current = "\n\n".join(parts)
        history = [*_messages(conversation.turns), ChatMessage("user", current)]
        history, dropped = prompt.fit(history, settings.context_budget_chars - len(system))
        if dropped:
            job.report(f"{dropped} earlier exchange(s) left out to fit the context budget "
                       "(contextBudgetChars).")

        def request(messages: tuple[ChatMessage, ...],
                    specs: tuple[ToolSpec, ...]) -> ChatRequest:
            return chat_request(settings, (ChatMessage("system", system), *messages),
                                tools=specs, tool_format=backend.tool_format)

        def on_step(step: Step) -> None:
            notice: dict[str, Any] = {
                "token": job.token, "conversation": conversation.id, "id": step.id,
                "name": step.name, "arguments": step.arguments, "status": step.status}
            if step.status != "running" and step.summary:
                notice["summary"] = step.summary
            self.services.editor.notify(TOOL_CALL_NOTIFICATION, notice)

        setup = TurnSetup(tools=tools, host=host, request=request,
                          approval=settings.agent_approval, ask=self.services.editor.ask,
                          approvals=self._approvals.setdefault(conversation.id, Approvals()),
                          on_step=on_step, max_steps=settings.agent_max_steps,
                          max_cost=settings.agent_max_cost)
        outcome = await run_turn(job, history, setup)
        conversation.turns.append(Turn("user", current, shown=message))
        conversation.turns.extend(_turns(outcome.messages))
        self.conversations.save(conversation)
        return Outcome(text=outcome.text, note=outcome.note,
                       extra={"steps": [s.to_json() for s in outcome.steps],
                              "stopReason": outcome.stop_reason,
                              "droppedTurns": dropped})

    def _warn(self, message: str) -> None:
        self.services.editor.show_message(types.MessageType.Warning, message)

    def _tree(self, host: LspHost) -> tuple[list[str], int]:
        names: list[str] = []
        more = 0
        for path in host.files.walk():
            if len(names) < TREE_ENTRIES:
                names.append(host.files.relative(path))
            else:
                more += 1
        return sorted(names), more

    def _context(self, host: LspHost, uri: str | None, range_: types.Range | None) -> str | None:
        if uri is None:
            return None
        path = Path(to_fs_path(uri) or "")
        try:
            real = host.files.resolve(str(path))
        except ToolError as exc:
            return f"The open document is not available: {exc}"
        shown = host.files.relative(real)
        if range_ is not None and range_.start != range_.end:
            snap = selection.snapshot(self.services.workspace, uri, range_)
            return (f"The user has {shown} open, with lines {snap.first_line + 1}-"
                    f"{snap.last_line + 1} selected:\n```\n{snap.selected.rstrip()}\n```")
        return f"The user has {shown} open."


def _messages(turns: list[Turn]) -> list[ChatMessage]:
    messages = []
    for turn in turns:
        if turn.role == "tool":
            messages.append(ChatMessage("tool", turn.content, tool_call_id=turn.tool_call_id))
        elif turn.tool_calls:
            calls = tuple(ToolCall(c["id"], c["name"], c["arguments"]) for c in turn.tool_calls)
            messages.append(ChatMessage("assistant", turn.content or None, tool_calls=calls))
        else:
            messages.append(ChatMessage(turn.role, turn.content))
    return messages


def _turns(messages: list[ChatMessage]) -> list[Turn]:
    turns = []
    for message in messages:
        calls = [{"id": c.id, "name": c.name, "arguments": c.arguments}
                 for c in message.tool_calls]
        turns.append(Turn(message.role, message.content or "", tool_calls=calls,
                          tool_call_id=message.tool_call_id or ""))
    return turns

