"""The actions: explain, refactor, write tests and the user's own, on a selection.

Commands and code actions in, jobs out: this feature checks the arguments, reads the
selection, builds the prompt, and hands the job an applier for the action's apply mode.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
from lsprotocol import types
from pygls.lsp.server import LanguageServer

from lspilot.actions import selection, small_model_tests, test_answers
from lspilot.actions.appliers import WriteTestFile, applier_for
from lspilot.actions.extract import extract_code
from lspilot.actions.prompts import build_messages
from lspilot.actions.registry import BUILTIN_COMMANDS, RUN_COMMAND, Action, build_registry
from lspilot.actions.results import ActionFailed
from lspilot.actions.selection import Snapshot
from lspilot.actions.small_model_tests import Prefill
from lspilot.backends import backend_for
from lspilot.commands import CommandError, RunArguments, check_inside, parse_run_arguments
from lspilot.errors import LspilotError
from lspilot.features.base import Feature
from lspilot.features.test_runs import TestRuns
from lspilot.jobs.job import Job, JobResult, JobSpec, Outcome
from lspilot.llm.wire import ChatMessage, ChatRequest
from lspilot.requests import chat_request
from lspilot.workspace import language_of


class ActionsFeature(Feature):
    commands = (*BUILTIN_COMMANDS, RUN_COMMAND)

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        # Diagnostics the editor sent with the last codeAction request, per document.
        self.diagnostics: dict[str, tuple[types.Diagnostic, ...]] = {}
        self.test_runs = TestRuns(self.services)

    def register(self, server: LanguageServer) -> None:
        @server.feature(
            types.TEXT_DOCUMENT_CODE_ACTION,
            types.CodeActionOptions(
                code_action_kinds=[types.CodeActionKind.Refactor,
                                   types.CodeActionKind.RefactorRewrite],
                resolve_provider=False,
            ),
        )
        def code_action(ls: LanguageServer,
                        params: types.CodeActionParams) -> list[types.CodeAction]:
            """Offer every action for a non-empty range, honouring `context.only`."""
            return self.code_actions(params)

    def document_closed(self, uri: str) -> None:
        self.diagnostics.pop(uri, None)

    # -- commands ------------------------------------------------------------------------
    async def execute(self, params: types.ExecuteCommandParams) -> Any:
        services = self.services
        await services.store.wait_until_ready()
        args = parse_run_arguments(params.command, params.arguments, services.converter)
        action = self._action_for(params.command, args)
        self._check_document(params.command, args.uri, args.range)
        refused = services.excluded(args.uri)
        if refused is not None:
            return JobResult.failed(ActionFailed("excluded", refused)).to_json()
        try:
            context = await services.job_context(args.uri)
        except LspilotError as exc:
            services.editor.show_message(types.MessageType.Error, str(exc))
            return JobResult.failed(exc).to_json()
        spec = JobSpec(title=action.title, command=params.command, action=action.id,
                       uri=args.uri, client_token=params.work_done_token)
        result = await services.run(spec, context, lambda job: self._body(job, action, args))
        return result.to_json()

    async def _body(self, job: Job, action: Action, args: RunArguments) -> Outcome:
        services, settings = self.services, job.settings
        workspace = services.workspace
        snap = selection.snapshot(workspace, args.uri, args.range)
        test = selection.test_target(workspace, snap) if action.apply == "testFile" else None
        diagnostics = args.diagnostics
        if diagnostics is None:
            diagnostics = tuple(d for d in self.diagnostics.get(args.uri, ())
                                if _overlaps(d.range, args.range))
        messages = build_messages(action, selection.prompt_input(
            workspace, snap, settings, test=test, instruction=args.instruction,
            diagnostics=tuple(selection.describe_diagnostic(d) for d in diagnostics)))
        applier = applier_for(action.apply, editor=services.editor, settings=settings,
                              snap=snap, title=action.title, workspace=workspace,
                              cache_dir=services.cache_dir, test=test, job=job)
        job.on_wind_down(applier.restore)
        request = chat_request(settings, messages, action=action)
        if isinstance(applier, WriteTestFile):
            prefill = self._prefill(args.uri, snap)
            if request.max_tokens is None and self._small_model(args.uri):
                # A small model may ramble to the context's end: tests are short.
                request = attrs.evolve(request, max_tokens=small_model_tests.MAX_TOKENS)
            text = await self._tests_answer(job, request, snap, prefill, args.instruction)
            job.applying()
            await applier.apply(text)
            tests, note = await self.test_runs.after_writing(job, applier, action, snap.selected,
                                                             prefill, request.max_tokens)
            return Outcome(text=text, extra={"tests": tests} if tests else {}, note=note)
        answer = await job.stream(request, on_text=applier.on_text
                                  if action.apply == "replace" and settings.live_refactor
                                  else None)
        job.applying()
        await applier.apply(answer.text)
        return Outcome(text=answer.text)

    def _small_model(self, uri: str) -> bool:
        """Whether the backend is a bundled small model, which needs its tests begun."""
        return backend_for(self.services.store.settings_for(uri)).bundled

    def _prefill(self, uri: str, snap: Snapshot) -> Prefill | None:
        """For a bundled local model whose turn format lspilot knows, and Python code it
        can import: begin the answer for it (lspilot.actions.small_model_tests)."""
        template = backend_for(self.services.store.settings_for(uri)).chat_template
        if template is None:
            return None
        imports, _ = selection.test_import(self.services.workspace, snap)
        return Prefill(template, imports) if imports else None

    async def _tests_answer(self, job: Job, request: ChatRequest, snap: Snapshot,
                            prefill: Prefill | None, instruction: str | None) -> str:
        """An answer that holds tests: asked once more, saying what was wrong, when the
        first holds none; ``no_tests`` (nothing written) when the second holds none either."""
        language = language_of(snap.document)
        messages = request.messages
        if prefill is not None:
            _, names = selection.test_import(self.services.workspace, snap)
            messages = small_model_tests.messages(
                source_name=Path(snap.document.path).name, selection=snap.selected,
                imports=prefill.imports, names=names, instruction=instruction)
        for attempt in (1, 2):
            if prefill is not None:
                raw, begun = prefill.request(messages, model=request.model,
                                             temperature=request.temperature,
                                             top_p=request.top_p, max_tokens=request.max_tokens)
                text = small_model_tests.finish(begun, (await job.stream(raw)).text)
            else:
                text = (await job.stream(attrs.evolve(request, messages=messages))).text
            code = extract_code(text)
            if code is not None and language == "python":
                whole = test_answers.complete_python_tests(code)
                if whole != code:  # cut short: the complete tests, without the rest
                    code, text = whole, f"```python\n{whole}```\n"
            if test_answers.has_tests(language, code):
                return text
            if attempt == 2:
                raise test_answers.failure(language, code)
            job.report("The answer held no test: asking once more…")
            messages = (*messages, ChatMessage("assistant", text),
                        ChatMessage("user", test_answers.problem(language, code)))
        raise AssertionError("unreachable")

    def _action_for(self, command: str, args: RunArguments) -> Action:
        registry = build_registry(self.services.store.settings_for(args.uri))
        if command != RUN_COMMAND:
            return registry[BUILTIN_COMMANDS[command]]
        if args.action is None:
            raise CommandError(f"{RUN_COMMAND} needs an 'action' argument naming the action id.")
        if args.action not in registry:
            raise CommandError(
                f"Unknown action {args.action!r}; the actions are {', '.join(registry)}."
            )
        return registry[args.action]

    def _check_document(self, command: str, uri: str, range_: types.Range) -> None:
        document = self.services.workspace.text_documents.get(uri)
        if document is None:
            raise CommandError(f"The document {uri} is not open; open it in the editor first.")
        check_inside(command, range_, document.lines)
        if range_.start == range_.end:
            raise CommandError("The range is empty: select the code for the action first.")

    # -- code actions --------------------------------------------------------------------
    def code_actions(self, params: types.CodeActionParams) -> list[types.CodeAction]:
        range_ = params.range
        if range_.start == range_.end:
            return []
        uri = params.text_document.uri
        self.diagnostics[uri] = tuple(params.context.diagnostics)
        only = params.context.only
        offered = []
        for action in build_registry(self.services.store.settings_for(uri)).values():
            if only and not any(action.kind == k or action.kind.startswith(k + ".") for k in only):
                continue
            argument: dict[str, Any] = {
                "uri": uri, "range": self.services.converter.unstructure(range_)}
            if action.command == RUN_COMMAND:
                argument["action"] = action.id
            offered.append(types.CodeAction(
                title=action.title, kind=action.kind,
                command=types.Command(title=action.title, command=action.command,
                                      arguments=[argument]),
            ))
        return offered


def _overlaps(a: types.Range, b: types.Range) -> bool:
    return (a.start.line, a.start.character) <= (b.end.line, b.end.character) and (
        b.start.line, b.start.character) <= (a.end.line, a.end.character)
