"""The agent loop, a job body: ask the model with the tools, run the calls it makes (each
approved as ``agentApproval`` says), send the results back, until it answers without a
call, or a limit (``agentMaxSteps``, ``agentMaxCost``, ``maxSessionCost``) or a cancel ends
the turn. The same loop serves an LSP editor and an ACP client; only the :class:`Host`,
the question and the step notices differ."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from attrs import define, field

from lspilot import consent
from lspilot.agent.files import ToolError, ToolRefused
from lspilot.agent.tools import Host, Tool, check_arguments
from lspilot.jobs.job import CostLimitReached, Job
from lspilot.llm.wire import ChatMessage, ChatRequest, ToolCall, ToolSpec

log = logging.getLogger(__name__)

ALLOW, ALLOW_CONVERSATION, DENY = "Allow", "Allow for this conversation", "Deny"
StepStatus = Literal["running", "done", "failed", "refused"]
StopReason = Literal["end_turn", "max_steps", "max_cost"]
_POLICIES: dict[str, consent.Policy] = {"auto": "auto", "ask": "ask", "never": "never"}


@define(kw_only=True)
class Step:
    id: str
    name: str
    arguments: str
    kind: str
    status: StepStatus = "running"
    summary: str = ""  # one line for the user
    label: str = ""  # what the progress says while it runs
    result: str = ""  # what the model reads

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "status": self.status}


@define
class Approvals:
    """What the user allowed "for this conversation" (kept with the conversation's state),
    and the calls refused this turn (a model that asks again is not asked about again)."""

    allowed: set[str] = field(factory=set)
    refused: set[str] = field(factory=set)


@define(kw_only=True)
class TurnSetup:
    """Everything a turn needs besides the job."""

    tools: Sequence[Tool]
    host: Host
    request: Callable[[tuple[ChatMessage, ...], tuple[ToolSpec, ...]], ChatRequest]
    approval: Mapping[str, str]  # agentApproval: kind -> auto | ask | never
    ask: consent.Ask | None
    approvals: Approvals
    on_step: Callable[[Step], None]  # a step starts or ends
    max_steps: int
    max_cost: float | None


@define(kw_only=True)
class TurnOutcome:
    text: str  # the model's text of every request, as it streamed
    steps: list[Step]
    messages: list[ChatMessage]  # what the turn added to the conversation
    stop_reason: StopReason
    note: str | None = None  # why the turn stopped early


async def run_turn(job: Job, messages: Sequence[ChatMessage], setup: TurnSetup) -> TurnOutcome:
    tools = {tool.name: tool for tool in setup.tools}
    specs = tuple(ToolSpec(t.name, t.description, dict(t.parameters)) for t in setup.tools)
    history = list(messages)
    added: list[ChatMessage] = []
    steps: list[Step] = []
    texts: list[str] = []
    for _ in range(setup.max_steps):
        if setup.max_cost is not None and job.usage is not None and \
                (job.usage.cost or 0.0) >= setup.max_cost:
            return TurnOutcome(text="".join(texts), steps=steps, messages=added,
                               stop_reason="max_cost", note=_limit_note("agentMaxCost", setup))
        try:
            answer = await job.stream(setup.request(tuple(history), specs))
        except CostLimitReached:
            if not steps:
                raise
            return TurnOutcome(text="".join(texts), steps=steps, messages=added,
                               stop_reason="max_cost", note="stopped: the session's cost "
                               "limit (maxSessionCost) was reached")
        if answer.text:
            texts.append(answer.text)
        calls = _unique_ids(answer.tool_calls, history)
        reply = ChatMessage("assistant", answer.text or None, tool_calls=calls)
        history.append(reply)
        added.append(reply)
        if not calls:
            return TurnOutcome(text="".join(texts), steps=steps, messages=added,
                               stop_reason="end_turn")
        for call in calls:
            step = await _run_call(call, tools, setup, job)
            steps.append(step)
            result = ChatMessage("tool", _result_text(step), tool_call_id=call.id)
            history.append(result)
            added.append(result)
    return TurnOutcome(text="".join(texts), steps=steps, messages=added,
                       stop_reason="max_steps", note=_limit_note("agentMaxSteps", setup))


async def _run_call(call: ToolCall, tools: Mapping[str, Tool], setup: TurnSetup,
                    job: Job) -> Step:
    tool = tools.get(call.name)
    step = Step(id=call.id, name=call.name, arguments=call.arguments,
                kind=tool.kind if tool else "")
    step.label = f"{call.name}…"
    if tool is None:
        return _ended(step, setup, "failed",
                      f"There is no tool named {call.name!r}. The tools are: "
                      f"{', '.join(tools)}.")
    try:
        args = check_arguments(tool, _parsed(call.arguments))
    except ToolError as exc:
        return _ended(step, setup, "failed", str(exc))
    step.label = tool.label(args)
    job.report(step.label)
    setup.on_step(step)
    try:
        tool.precheck(args, setup.host)
    except ToolError as exc:
        return _ended(step, setup, "failed", str(exc))
    if not await _approved(tool, args, call, setup, job):
        return _ended(step, setup, "refused",
                      "The user refused this call, so it did not run. Do not make the same "
                      "call again: continue another way, or say what you need and stop.")
    try:
        result = await tool.run(args, setup.host)
    except ToolRefused as exc:
        return _ended(step, setup, "refused", str(exc))
    except ToolError as exc:
        return _ended(step, setup, "failed", str(exc))
    step.summary = result.summary
    return _ended(step, setup, "done", result.text, summary=result.summary)


async def _approved(tool: Tool, args: Mapping[str, Any], call: ToolCall,
                    setup: TurnSetup, job: Job) -> bool:
    policy = consent.effective_policy(
        _POLICIES.get(setup.approval.get(tool.kind, "ask"), "ask"),
        setup.host.chosen_by_workspace(tool.name))
    remembered = tool.remembered_as(args)
    exact = f"{call.name} {call.arguments}"
    if policy == "never" or exact in setup.approvals.refused:
        return False
    if policy == "auto" or remembered in setup.approvals.allowed:
        return True
    question = consent.Question(tool.question(args, setup.host), allow=ALLOW,
                                always=ALLOW_CONVERSATION, deny=DENY)
    if setup.ask is None:
        setup.approvals.refused.add(exact)
        return False
    answer = await job.review(setup.ask(question.message, question.titles()))
    if answer == ALLOW_CONVERSATION:
        setup.approvals.allowed.add(remembered)
        return True
    if answer == ALLOW:
        return True
    setup.approvals.refused.add(exact)
    return False


def _ended(step: Step, setup: TurnSetup, status: StepStatus, text: str, *,
           summary: str = "") -> Step:
    step.status = status
    first_line = text.splitlines()[0][:200] if text else ""
    step.summary = summary or first_line
    step.result = text
    setup.on_step(step)
    return step


def _result_text(step: Step) -> str:
    text = step.result
    if step.status == "failed":
        return f"Error: {text}"
    if step.status == "refused":
        return f"Refused: {text}"
    return text


def _parsed(arguments: str) -> Any:
    if not arguments.strip():
        return {}
    try:
        return json.loads(arguments)
    except ValueError:
        raise ToolError(f"The arguments are not JSON: {arguments[:200]!r}. Send them as one "
                        "JSON object.") from None


def _unique_ids(calls: tuple[ToolCall, ...],
                history: Sequence[ChatMessage]) -> tuple[ToolCall, ...]:
    """Calls whose ids are unique in the conversation: servers without ids of their own
    number calls from call_0 again in every answer, and a result must name one call."""
    used = {c.id for m in history for c in m.tool_calls}
    unique = []
    for call in calls:
        ident, n = call.id, 1
        while ident in used:
            n += 1
            ident = f"{call.id}_{n}"
        used.add(ident)
        unique.append(ToolCall(ident, call.name, call.arguments) if ident != call.id else call)
    return tuple(unique)


def _limit_note(setting: str, setup: TurnSetup) -> str:
    if setting == "agentMaxSteps":
        return (f"stopped after {setup.max_steps} model requests (agentMaxSteps); what was "
                "done so far stays done")
    return "stopped: this turn reached its cost limit (agentMaxCost)"
