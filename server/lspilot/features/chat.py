"""Chat: ``lspilot.chat`` turns of a conversation about the code, streamed like explain;
``lspilot.chatReset`` forgets; ``lspilot.chatList`` lists the kept conversations or shows
one (to reopen it); ``lspilot.chatApply`` applies a code block of an answer.

A turn's context is the document and selection it names and the files its message names
(``#file:path``, inside a workspace folder only, within the context budget: see
``lspilot.chat.files``); earlier turns fill what is left of the budget, newest first.
Conversations are kept across restarts (lspilot.chat).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.uris import from_fs_path, to_fs_path

from lspilot.actions import selection
from lspilot.actions.results import ActionFailed
from lspilot.chat import files, prompt
from lspilot.chat.conversations import Conversation, ConversationStore, Turn
from lspilot.commands import CommandError, check_inside, parse_range, whole_number
from lspilot.edits import edit_target, fit_to_selection, replacement_edit
from lspilot.errors import LspilotError
from lspilot.features.agent import AgentTurns
from lspilot.features.base import Feature
from lspilot.jobs.job import Job, JobResult, JobSpec, Outcome
from lspilot.requests import chat_request
from lspilot.workspace import language_of

CHAT, RESET, APPLY, LIST = ("lspilot.chat", "lspilot.chatReset", "lspilot.chatApply",
                            "lspilot.chatList")
TITLE = "lspilot: Chat"


class ChatFeature(Feature):
    commands = (CHAT, RESET, APPLY, LIST)

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.conversations = ConversationStore(self.services.cache_dir / "chats")
        self.agent = AgentTurns(self.services, self.conversations)

    async def execute(self, params: types.ExecuteCommandParams) -> Any:
        raw = params.arguments[0] if params.arguments else None
        handlers: dict[str, Callable[[], Awaitable[Any]]] = {
            RESET: lambda: _now(self.reset(raw if raw is not None else {})),
            LIST: lambda: _now(self.listing(raw if raw is not None else {})),
            APPLY: lambda: self.apply(_argument_object(params.command, raw)),
            CHAT: lambda: self.turn(_argument_object(params.command, raw),
                                    params.work_done_token),
        }
        return await handlers[params.command]()

    # -- a turn --------------------------------------------------------------------------
    async def turn(self, raw: dict[str, Any], token: types.ProgressToken | None) -> Any:
        services = self.services
        await services.store.wait_until_ready()
        message = raw.get("message")
        if not isinstance(message, str) or not message.strip():
            raise CommandError(f"{CHAT}: 'message' must be the user's message, a non-empty "
                               "string.")
        mode = raw.get("mode", "ask")
        if mode not in ("ask", "agent"):
            raise CommandError(f"{CHAT}: 'mode' must be \"ask\" or \"agent\", not {mode!r}.")
        conversation = self._conversation(raw.get("conversation"))
        uri = _optional_str(raw, "uri")
        range_ = self._range(raw.get("range"), uri)
        if uri is not None and services.workspace.text_documents.get(uri) is None:
            raise CommandError(f"The document {uri} is not open; open it in the editor first.")
        try:
            context = await services.job_context(uri)
        except LspilotError as exc:
            services.editor.show_message(types.MessageType.Error, str(exc))
            return JobResult.failed(exc, conversation=conversation.id).to_json()
        spec = JobSpec(title=TITLE, command=CHAT, action="chat", uri=uri, client_token=token,
                       extra={"conversation": conversation.id})

        async def body(job: Job) -> Outcome:
            if mode == "agent":
                budget = job.settings.context_budget_chars
                named = await self._files(message, uri, budget // 2, budget)
                return await self.agent.answer(job, conversation, message, uri, range_, named)
            return await self._answer(job, conversation, message, uri, range_)

        return (await services.run(spec, context, body)).to_json()

    async def _answer(self, job: Job, conversation: Conversation, message: str,
                      uri: str | None, range_: types.Range | None) -> Outcome:
        budget = job.settings.context_budget_chars
        document = self._document_context(uri, range_)
        room = budget - len(prompt.SYSTEM) - len(message) - sum(len(c.text) for c in document)
        contexts = [*document, *await self._files(message, uri, room, budget)]
        built = prompt.build(message, conversation.turns, contexts, budget)
        if built.dropped_turns:
            job.report(f"{built.dropped_turns} earlier turn(s) left out to fit the context "
                       "budget (contextBudgetChars).")
        settings = job.settings
        answer = await job.stream(chat_request(settings, built.messages))
        # The code goes into the history too: later turns ("and make it faster") need it.
        conversation.turns += [Turn("user", built.current, shown=message),
                               Turn("assistant", answer.text)]
        self.conversations.save(conversation)
        return Outcome(text=answer.text, extra={"droppedTurns": built.dropped_turns})

    def _conversation(self, given: Any) -> Conversation:
        if given is None:
            return self.conversations.new()
        if not isinstance(given, str):
            raise CommandError(f"{CHAT}: 'conversation' must be a conversation id string.")
        found = self.conversations.get(given)
        if found is None:
            raise CommandError(f"lspilot does not know the conversation {given!r} (it was "
                               "reset, or never existed): leave 'conversation' out to start "
                               "a new one.")
        return found

    def _range(self, raw: Any, uri: str | None, command: str = CHAT) -> types.Range | None:
        if raw is None:
            return None
        if uri is None:
            raise CommandError(f"{command}: a 'range' needs the 'uri' of its document.")
        range_ = parse_range(command, raw)
        document = self.services.workspace.text_documents.get(uri)
        if document is not None:  # not open: the caller says so
            check_inside(command, range_, document.lines)
        return range_

    def _document_context(self, uri: str | None,
                          range_: types.Range | None) -> list[prompt.Context]:
        if uri is None:
            return []
        refused = self.services.excluded(uri)
        if refused is not None:
            return [prompt.Context("(the open document)", "", refused)]
        document = self.services.workspace.get_text_document(uri)
        name = Path(document.path).name
        language = language_of(document)
        if range_ is not None and range_.start != range_.end:
            snap = selection.snapshot(self.services.workspace, uri, range_)
            label = f"{name} lines {snap.first_line + 1}-{snap.last_line + 1} (selected)"
            return [prompt.Context(label, language, snap.selected)]
        return [prompt.Context(name, language, document.source)]

    async def _files(self, message: str, uri: str | None, room: int,
                     budget: int) -> list[prompt.Context]:
        """The files the message names, together no more than ``room`` characters."""
        references = prompt.file_references(message)
        if not references:
            return []
        workspace = self.services.workspace
        folders = [Path(to_fs_path(f.uri) or "") for f in workspace.folders.values()]
        if workspace.root_path and Path(workspace.root_path) not in folders:
            folders.append(Path(workspace.root_path))
        document = to_fs_path(uri) if uri and uri.startswith("file:") else None
        root = files.folder_for(folders, Path(document) if document else None)
        found = []
        for reference in references:
            path = files.resolve(reference, root)  # OutsideWorkspace otherwise
            refused = self.services.excluded(from_fs_path(str(path)) or "")
            if refused is not None:
                raise ActionFailed("excluded", f"#file:{reference}: {refused}")
            open_document = workspace.text_documents.get(from_fs_path(str(path)) or "")
            if open_document is not None:
                text = open_document.source
                if len(text) > room:
                    raise files.too_large(reference, room, budget)
            else:
                text = await asyncio.to_thread(files.read, path, reference, room, budget)
            room -= len(text)
            found.append(prompt.Context(reference, path.suffix.lstrip("."), text))
        return found

    # -- list, reset and apply -------------------------------------------------------------
    def listing(self, raw: Any) -> dict[str, Any]:
        """``{}``: the kept conversations, newest first; ``{"conversation": id}``: its turns
        as the user saw them (a user turn's ``message`` is what they typed)."""
        if not isinstance(raw, dict):
            raise CommandError(f"{LIST} takes {{}} for the list, {{\"conversation\": id}} "
                               "for one.")
        if raw.get("conversation") is not None:
            conversation = self._conversation(raw.get("conversation"))
            return {"conversation": conversation.id, "title": conversation.title,
                    "turns": [{"role": t.role, "text": t.shown or t.content}
                              for t in conversation.turns
                              if t.role in ("user", "assistant") and t.content]}
        return {"conversations": [
            {"conversation": c.id, "title": c.title, "updated": c.updated,
             "turns": len(c.turns)} for c in self.conversations.all()]}

    def reset(self, raw: Any) -> dict[str, Any]:
        if not isinstance(raw, dict):
            raise CommandError(f"{RESET} takes {{\"conversation\": id}} for one, {{}} for all.")
        target = raw.get("conversation")
        if target is not None and not isinstance(target, str):
            raise CommandError(f"{RESET}: 'conversation' must be a conversation id string.")
        if target is not None and self.conversations.get(target) is None:
            raise CommandError(f"lspilot does not know the conversation {target!r}.")
        return {"forgotten": self.conversations.forget(target)}

    async def apply(self, raw: dict[str, Any]) -> dict[str, Any]:
        """Block ``block`` of an answer into ``range`` of ``uri``, as one versioned edit."""
        conversation = self._conversation(raw.get("conversation"))
        uri = _optional_str(raw, "uri")
        block = raw.get("block", 0)
        if uri is None or raw.get("range") is None:
            raise CommandError(f"{APPLY} takes {{\"conversation\", \"block\": n (0-based), "
                               "\"uri\", \"range\", \"turn\"?, \"version\"?}.")
        if not whole_number(block) or block < 0:
            raise CommandError(f"{APPLY}: 'block' must be a whole number from 0, not {block!r}.")
        version = raw.get("version")
        if version is not None and not whole_number(version):
            raise CommandError(f"{APPLY}: 'version' must be the document's version, a whole "
                               f"number, not {version!r}.")
        answers = [t for t in conversation.turns if t.role == "assistant"]
        turn = raw.get("turn", len(answers) - 1)
        if not whole_number(turn) or not 0 <= turn < len(answers):
            raise CommandError(f"{APPLY}: the conversation has {len(answers)} answer(s); "
                               f"'turn' {turn!r} is not one of them.")
        blocks = prompt.code_blocks(answers[turn].content)
        if block >= len(blocks):
            raise CommandError(f"{APPLY}: that answer has {len(blocks)} code block(s); "
                               f"there is no block {block}.")
        document = self.services.workspace.text_documents.get(uri)
        if document is None:
            raise CommandError(f"The document {uri} is not open; open it in the editor first.")
        range_ = self._range(raw.get("range"), uri, APPLY)
        assert range_ is not None
        editor = self.services.editor
        if version is not None and version != document.version:
            return _failed("conflict", "The document changed since the block was chosen, so "
                                       "nothing was applied. Choose the place again.")
        snap = selection.snapshot(self.services.workspace, uri, range_)
        code = blocks[block]
        if snap.selected:
            code = fit_to_selection(code, snap.selected, snap.line_prefix)
        edit = replacement_edit(edit_target(document), range_, code,
                                document_changes=editor.supports_document_changes,
                                confirm=False)
        reply = await editor.apply_edit(edit, "lspilot: apply the chat's code")
        if not reply.applied:
            return _failed("edit_rejected", "The editor did not apply the edit: "
                                            f"{reply.failure_reason or 'no reason given'}.")
        return {"status": "done", "error": None}


async def _now(value: Any) -> Any:
    return value


def _argument_object(command: str, raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise CommandError(f"{command} takes one argument object.")
    return raw


def _failed(kind: str, message: str) -> dict[str, Any]:
    return {"status": "failed", "error": {"type": kind, "message": message}}


def _optional_str(raw: dict[str, Any], key: str) -> str | None:
    value = raw.get(key)
    if value is not None and not isinstance(value, str):
        raise CommandError(f"'{key}' must be a string, not {value!r}.")
    return value


