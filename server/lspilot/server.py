"""The language server: thin pygls handlers that hand over to plain modules."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Generator, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import attrs
from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams
from pygls.io_ import StdoutWriter
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol, lsp_method

from lspilot import __version__, logs
from lspilot.actions.registry import (
    BUILTIN_COMMANDS,
    CANCEL_COMMAND,
    RUN_COMMAND,
    Action,
    build_registry,
)
from lspilot.actions.run import ActionRun, Limiter, RunContext, RunRequest, RunResult
from lspilot.commands import CommandError, parse_run_arguments
from lspilot.documents import line_workspace
from lspilot.editor import CLIENT_REPLY_TIMEOUT, Editor
from lspilot.key_hosts import AllowedHosts, Redirect, redirect
from lspilot.keys import resolve_key_command
from lspilot.llm.client import ChatClient
from lspilot.local import LocalModelError
from lspilot.local.manager import LocalModel, failure_result
from lspilot.settings import (
    LOCAL_BASE_URL,
    ApiKey,
    Layer,
    Settings,
    environment_layer,
    resolve,
    unwrap_section,
)
from lspilot.transport import MessagePump, serve

log = logging.getLogger(__name__)

ALL_COMMANDS = (*BUILTIN_COMMANDS, RUN_COMMAND, CANCEL_COMMAND)


class LspilotProtocol(LanguageServerProtocol):
    """Runs ``workspace/executeCommand`` as the request's own task (pygls-notes trap 1).

    pygls's built-in dispatch would leave a command running after ``$/cancelRequest``;
    as the request's task, a cancel reaches it, and we can read the client's
    ``workDoneToken``.
    """

    _server: LspilotServer

    @lsp_method(types.WORKSPACE_EXECUTE_COMMAND)
    async def lsp_workspace__execute_command(  # type: ignore[override]
        self, params: types.ExecuteCommandParams
    ) -> Any:
        return await self._server.execute_command(params)

    @lsp_method(types.WORKSPACE_DID_CHANGE_WORKSPACE_FOLDERS)
    def lsp_workspace__did_change_workspace_folders(
        self, params: types.DidChangeWorkspaceFoldersParams
    ) -> Generator[Any, Any, None]:
        # pygls hands our handler over a step later than it starts the next message's:
        # an action sent right after the change must already wait for the new settings.
        self._server.expect_reload()
        yield from super().lsp_workspace__did_change_workspace_folders(params)


class LspilotServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("lspilot", __version__, protocol_cls=LspilotProtocol)
        self.environment = environment_layer(os.environ)
        self.init_options: Mapping[str, Any] = {}
        self.workspace_settings: Mapping[str, Any] = {}
        # The `lspilot` section per workspace folder (asked with the folder as scopeUri),
        # where it differs from the unscoped one: a multi-root workspace, or a folder's
        # own .vscode/settings.json.
        self.folder_sections: dict[str, Mapping[str, Any]] = {}
        self.folder_settings: dict[str, Settings] = {}
        # Where the workspace settings move a key set elsewhere (lspilot.key_hosts), by
        # folder ("" for the unscoped settings).
        self.redirects: dict[str, Redirect | None] = {}
        self._declined_hosts: set[str] = set()
        self._asking = asyncio.Lock()
        self.settings = Settings()
        self.chat = ChatClient()
        self.limiter = Limiter(self.settings.max_concurrent_requests)
        self.runs: dict[types.ProgressToken, ActionRun] = {}
        self.editor = Editor(self)
        # Diagnostics the editor sent with the last codeAction request, per document.
        self.diagnostics: dict[str, tuple[types.Diagnostic, ...]] = {}
        # Set once the first settings are in: actions wait for it so that an action sent
        # right after `initialized` does not run on settings the editor is overriding.
        self.settings_ready = asyncio.Event()
        # Reloads asked for and not done yet: ready only when none is left (an earlier
        # reload that ends first must not let actions run on the settings of a later one).
        self._reloads_pending = 0
        self._reload_lock = asyncio.Lock()  # one at a time, in the order they were asked
        self.initialized = False
        self.exit_code = 0
        self.cache_dir = Path(
            os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        ) / "lspilot"
        # llama.cpp's server, started when baseUrl is "local" (lspilot.local).
        self.local = LocalModel(self.cache_dir)
        self.allowed_hosts = AllowedHosts(self.cache_dir / "allowed-key-hosts.json")

    # -- transport -----------------------------------------------------------------------
    def start_io(self, stdin: BinaryIO | None = None, stdout: BinaryIO | None = None) -> None:
        """Serve LSP on stdin/stdout with lspilot's own forgiving frame reader."""
        channel = stdout or sys.stdout.buffer
        self.protocol.set_writer(StdoutWriter(channel))
        fd = (stdin or sys.stdin.buffer).fileno()
        pump = MessagePump(self.protocol, lambda: self.initialized)
        try:
            asyncio.run(self._serve(fd, pump))
        except BrokenPipeError:
            log.info("The client went away.")
        except SystemExit as exc:  # pygls's exit handler
            self.exit_code = int(exc.code or 0)
        finally:
            self.shutdown()  # type: ignore[no-untyped-call]

    async def _serve(self, fd: int, pump: MessagePump) -> None:
        try:
            await serve(fd, pump)
        finally:
            await self.shutdown_runs()

    def log_to_editor(self, level: int, message: str) -> None:
        kind = (types.MessageType.Error if level >= logging.ERROR else
                types.MessageType.Warning if level >= logging.WARNING else types.MessageType.Log)
        self.window_log_message(types.LogMessageParams(type=kind, message=message))

    # -- settings ------------------------------------------------------------------------
    async def reload_settings(self) -> None:
        layers = [self.environment, Layer("initializationOptions", self.init_options),
                  Layer("workspace settings", self.workspace_settings)]
        resolved = resolve(layers, previous=self.settings)
        settings = resolved.settings
        problems = list(resolved.problems)
        if settings.api_key is None and settings.api_key_command:
            key, problem = await resolve_key_command(settings.api_key_command)
            if problem:
                problems.append(problem)
            settings = settings if key is None else _with_key(settings, key)
        if settings.api_key is not None:
            logs.register_secret(settings.api_key.reveal())
        if not settings.verify_tls:
            log.warning("TLS certificate checks are off (verifyTls: false): "
                        "only use this with a server you trust on your own network.")
        await self.chat.set_verify_tls(settings.verify_tls)
        self.limiter.resize(settings.max_concurrent_requests)
        self.settings = settings
        user_base_url = resolve(layers[:2]).settings.base_url
        self.redirects = {"": _redirect(user_base_url, settings, self.workspace_settings)}
        self.folder_settings = {}
        for folder, section in self.folder_sections.items():
            scoped = resolve([*layers[:2], Layer(f"workspace settings of {folder}", section)],
                             previous=settings)
            problems.extend(p for p in scoped.problems if p not in problems)
            folder_settings = scoped.settings
            if folder_settings.api_key is None and (
                    folder_settings.api_key_command == settings.api_key_command):
                folder_settings = attrs.evolve(folder_settings, api_key=settings.api_key)
            self.folder_settings[folder] = folder_settings
            self.redirects[folder] = _redirect(user_base_url, folder_settings, section)
        if problems:
            for problem in problems:
                log.warning("%s", problem)
            self.window_show_message(types.ShowMessageParams(
                type=types.MessageType.Warning,
                message="lspilot settings: " + " ".join(problems),
            ))

    async def refresh_key(self) -> str | None:
        """Ask apiKeyCommand for the key again; keep it when it gives one."""
        command = self.settings.api_key_command
        if not command:
            return None
        key, problem = await resolve_key_command(command)
        if key is None:
            log.warning("%s", problem)
            return None
        logs.register_secret(key)
        self.settings = _with_key(self.settings, key)
        # Folders that take their key from the same command get the new one too.
        self.folder_settings = {
            folder: _with_key(folder_settings, key)
            if folder_settings.api_key_command == command else folder_settings
            for folder, folder_settings in self.folder_settings.items()
        }
        return key

    async def pull_workspace_settings(self) -> None:
        """Ask for the `lspilot` section, unscoped and for each workspace folder."""
        if not _supports_configuration(self):
            return
        folders = [folder.uri for folder in self.workspace.folders.values()]
        items = [types.ConfigurationItem(section="lspilot")] + [
            types.ConfigurationItem(scope_uri=uri, section="lspilot") for uri in folders]
        try:
            values = await asyncio.wait_for(
                asyncio.shield(self.workspace_configuration_async(
                    types.ConfigurationParams(items=items))),
                10,
            )
        except Exception as exc:
            log.warning("Could not read the editor's lspilot settings: %s", exc)
            return
        sections = [v if isinstance(v, Mapping) else None for v in values or []]
        self.workspace_settings = (sections[0] if sections else None) or {}
        # A folder the editor has nothing of its own for (null, or the same section) uses
        # the unscoped settings.
        self.folder_sections = {
            uri: section for uri, section in zip(folders, sections[1:], strict=False)
            if section is not None and section != self.workspace_settings
        }

    def expect_reload(self) -> None:
        """A reload is on its way: actions from now on wait for it."""
        self._reloads_pending += 1
        self.settings_ready.clear()

    async def refresh_settings(self, pushed: Mapping[str, Any] | None, *,
                               expected: bool = False) -> None:
        """Read the settings again: pulled from the editor, or as it pushed them.

        ``expected``: :meth:`expect_reload` was called for this one already.
        """
        if not expected:
            self.expect_reload()
        try:
            async with self._reload_lock:
                if _supports_configuration(self):
                    await self.pull_workspace_settings()
                elif pushed is not None:
                    self.workspace_settings = unwrap_section(pushed)
                await self.reload_settings()
        finally:
            self._reloads_pending -= 1
            if self._reloads_pending == 0:
                self.settings_ready.set()

    def _folder_of(self, uri: str) -> str:
        """The innermost workspace folder with settings of its own holding ``uri``, or ""."""
        inside = [f for f in self.folder_settings
                  if uri == f or uri.startswith(f.rstrip("/") + "/")]
        return max(inside, key=len) if inside else ""

    def settings_for(self, uri: str) -> Settings:
        """The settings of the innermost workspace folder holding ``uri``."""
        folder = self._folder_of(uri)
        return self.folder_settings[folder] if folder else self.settings

    async def key_may_go_to(self, uri: str) -> str | None:
        """None when the key may go where the settings for ``uri`` send it, else why not."""
        moved = self.redirects.get(self._folder_of(uri))
        if moved is None or self.allowed_hosts.allows(moved.to_host):
            return None
        async with self._asking:  # one question at a time, however many actions wait
            if self.allowed_hosts.allows(moved.to_host):
                return None
            if moved.to_host not in self._declined_hosts:
                send = f"Send it to {moved.to_host}"
                answer = await self.editor.ask(
                    f"lspilot: the workspace settings set baseUrl to {moved.to_host}, but your "
                    f"API key was set for {moved.from_host}. Send your key to "
                    f"{moved.to_host}?", [send, "Don't send"])
                if answer == send:
                    self.allowed_hosts.allow(moved.to_host)
                    return None
                self._declined_hosts.add(moved.to_host)
        return (f"Your API key was not sent to {moved.to_host}: the workspace settings chose "
                f"that host, and the key was set for {moved.from_host}. Allow it when lspilot "
                "asks (restart lspilot to be asked again), or set baseUrl where the key is "
                "set (the environment or initializationOptions).")

    # -- commands ------------------------------------------------------------------------
    def registry(self, uri: str) -> dict[str, Action]:
        return build_registry(self.settings_for(uri))

    async def execute_command(self, params: types.ExecuteCommandParams) -> Any:
        if params.command == CANCEL_COMMAND:
            return self.cancel_runs(params.arguments)
        if params.command != RUN_COMMAND and params.command not in BUILTIN_COMMANDS:
            raise JsonRpcInvalidParams(
                f"Unknown command {params.command!r}; lspilot knows {', '.join(ALL_COMMANDS)}."
            )
        await self._wait_for_settings()
        try:
            args = parse_run_arguments(
                params.command, params.arguments, self.protocol._converter
            )
            action = self._action_for(params.command, args.action, args.uri)
            self._check_document(args.uri, args.range)
        except CommandError as exc:
            raise JsonRpcInvalidParams(str(exc)) from None
        diagnostics = args.diagnostics
        if diagnostics is None:
            diagnostics = tuple(
                d for d in self.diagnostics.get(args.uri, ()) if _overlaps(d.range, args.range)
            )
        settings = self.settings_for(args.uri)
        refused = await self.key_may_go_to(args.uri)
        if refused is not None:
            self.editor.show_message(types.MessageType.Error, f"lspilot: {refused}")
            return RunResult(status="failed", text="", error_type="no_api_key",
                             error_message=refused).to_json()
        local = settings.base_url == LOCAL_BASE_URL
        if local:
            try:
                settings = await self.local.endpoint_settings(settings, self.editor)
            except LocalModelError as exc:
                self.editor.show_message(types.MessageType.Error, f"lspilot: {exc}")
                return failure_result(exc)
        run = ActionRun(
            request=RunRequest(
                action=action,
                command=params.command,
                uri=args.uri,
                range=args.range,
                instruction=args.instruction,
                diagnostics=diagnostics,
                client_token=params.work_done_token,
            ),
            context=RunContext(
                editor=self.editor,
                client=self.chat,
                settings=settings,
                limiter=self.limiter,
                workspace=self.workspace,
                cache_dir=self.cache_dir,
                refresh_key=self.refresh_key if self.settings.api_key_command else None,
                upstream_lost=self.local.lost() if local else None,
            ),
        )
        if run.token in self.runs:
            raise JsonRpcInvalidParams(f"The progress token {run.token!r} is already in use.")
        self.runs[run.token] = run
        task = run.start()
        task.add_done_callback(lambda _: self.runs.pop(run.token, None))
        try:
            # Shielded: a $/cancelRequest cancels this handler, and we pass it on ourselves.
            result = await asyncio.shield(task)
        except asyncio.CancelledError:
            run.cancel()
            raise
        if local and result.status == "done":
            self.local.answered()
        return result.to_json()

    async def _wait_for_settings(self) -> None:
        try:
            await asyncio.wait_for(self.settings_ready.wait(), CLIENT_REPLY_TIMEOUT)
        except TimeoutError:
            log.warning("No settings from the editor yet; running with what we have.")
            self.settings_ready.set()

    def _action_for(self, command: str, action_id: str | None, uri: str) -> Action:
        registry = self.registry(uri)
        if command != RUN_COMMAND:
            return registry[BUILTIN_COMMANDS[command]]
        if action_id is None:
            raise CommandError(f"{RUN_COMMAND} needs an 'action' argument naming the action id.")
        if action_id not in registry:
            raise CommandError(
                f"Unknown action {action_id!r}; the actions are {', '.join(registry)}."
            )
        return registry[action_id]

    def _check_document(self, uri: str, range_: types.Range) -> None:
        document = self.workspace.text_documents.get(uri)
        if document is None:
            raise CommandError(f"The document {uri} is not open; open it in the editor first.")
        lines = document.lines
        for name, pos in (("start", range_.start), ("end", range_.end)):
            # A character past the end of its line means the line's end (the LSP spec).
            if pos.line > len(lines) or (pos.line == len(lines) and pos.character > 0):
                raise CommandError(
                    f"The range's {name} (line {pos.line}) is outside the document, "
                    f"which has {len(lines)} lines."
                )
        if (range_.end.line, range_.end.character) < (range_.start.line, range_.start.character):
            raise CommandError("The range ends before it starts.")
        if range_.start == range_.end:
            raise CommandError("The range is empty: select the code for the action first.")

    def cancel_runs(self, arguments: Sequence[Any] | None) -> dict[str, Any]:
        target = arguments[0] if arguments else {}
        if not isinstance(target, dict):
            raise JsonRpcInvalidParams(
                "lspilot.cancel takes one object: {\"token\": T} for one action, {} for all."
            )
        token = target.get("token")
        if token is None:
            cancelled = [t for t, run in list(self.runs.items()) if run.cancel()]
        else:
            run = self.runs.get(token)
            cancelled = [token] if run is not None and run.cancel() else []
        return {"cancelled": cancelled}

    # -- code actions --------------------------------------------------------------------
    def code_actions(self, params: types.CodeActionParams) -> list[types.CodeAction]:
        range_ = params.range
        if range_.start == range_.end:
            return []
        uri = params.text_document.uri
        self.diagnostics[uri] = tuple(params.context.diagnostics)
        only = params.context.only
        offered = []
        for action in self.registry(uri).values():
            if only and not any(action.kind == k or action.kind.startswith(k + ".") for k in only):
                continue
            argument: dict[str, Any] = {
                "uri": uri,
                "range": self.protocol._converter.unstructure(range_),
            }
            if action.command == RUN_COMMAND:
                argument["action"] = action.id
            offered.append(
                types.CodeAction(
                    title=action.title,
                    kind=action.kind,
                    command=types.Command(
                        title=action.title, command=action.command, arguments=[argument]
                    ),
                )
            )
        return offered

    async def shutdown_runs(self) -> None:
        for run in list(self.runs.values()):
            run.cancel()
        tasks = [run.task for run in self.runs.values() if run.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=2)
        await self.chat.aclose()
        await self.local.aclose()


def _redirect(user_base_url: str, settings: Settings,
              section: Mapping[str, Any]) -> Redirect | None:
    """Whether the workspace section moves a key set by the user's layers to another host."""
    from_workspace = any(section.get(k) is not None for k in ("apiKey", "apiKeyCommand"))
    if settings.base_url == LOCAL_BASE_URL:
        return None  # lspilot's own llama.cpp gets a dummy key, never the user's
    return redirect(user_base_url, settings.base_url, from_workspace,
                    settings.api_key is not None or bool(settings.api_key_command))


def _with_key(settings: Settings, key: str) -> Settings:
    return attrs.evolve(settings, api_key=ApiKey(key))


def _supports_configuration(server: LanguageServer) -> bool:
    workspace = getattr(server.client_capabilities, "workspace", None)
    return bool(getattr(workspace, "configuration", False))


def _overlaps(a: types.Range, b: types.Range) -> bool:
    return (a.start.line, a.start.character) <= (b.end.line, b.end.character) and (
        b.start.line, b.start.character) <= (a.end.line, a.end.character)


def create_server() -> LspilotServer:
    server = LspilotServer()

    @server.feature(types.INITIALIZE)
    async def initialize(ls: LspilotServer, params: types.InitializeParams) -> None:
        """Take the initialization options as the second settings layer."""
        ls.initialized = True
        # pygls made the workspace a moment ago; ours keeps big documents fast.
        ls.protocol._workspace = line_workspace(ls.workspace)
        ls.init_options = unwrap_section(params.initialization_options)
        await ls.reload_settings()
        if not _supports_configuration(ls):
            ls.settings_ready.set()

    @server.feature(types.INITIALIZED)
    async def initialized(ls: LspilotServer, params: types.InitializedParams) -> None:
        """Read the editor's `lspilot` settings section, when it has one."""
        logs.attach_editor(logs.EditorLogHandler(ls.log_to_editor))
        await ls.refresh_settings(None)
        if ls.settings.base_url == LOCAL_BASE_URL:
            ls.local.warm_up(ls.settings, ls.editor)  # start llama.cpp before the first action

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    async def did_change_configuration(
        ls: LspilotServer, params: types.DidChangeConfigurationParams
    ) -> None:
        """Settings changed: pull them again (or take them from the notification)."""
        pushed = params.settings if isinstance(params.settings, Mapping) else None
        await ls.refresh_settings(pushed)

    @server.feature(types.WORKSPACE_DID_CHANGE_WORKSPACE_FOLDERS)
    async def did_change_folders(
        ls: LspilotServer, params: types.DidChangeWorkspaceFoldersParams
    ) -> None:
        """Folders came or went (pygls has updated its list): ask for their settings."""
        await ls.refresh_settings(None, expected=True)  # expected by LspilotProtocol

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: LspilotServer, params: types.DidOpenTextDocumentParams) -> None:
        """Documents are kept by pygls; nothing more to do."""

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: LspilotServer, params: types.DidCloseTextDocumentParams) -> None:
        """Forget the diagnostics we kept for a closed document."""
        ls.diagnostics.pop(params.text_document.uri, None)

    @server.feature(
        types.TEXT_DOCUMENT_CODE_ACTION,
        types.CodeActionOptions(
            code_action_kinds=[types.CodeActionKind.Refactor, types.CodeActionKind.RefactorRewrite],
            resolve_provider=False,
        ),
    )
    def code_action(ls: LspilotServer, params: types.CodeActionParams) -> list[types.CodeAction]:
        """Offer every action for a non-empty range, honouring `context.only`."""
        return ls.code_actions(params)

    @server.feature(types.EXIT)
    def exit_(ls: LspilotServer, params: None) -> None:
        """pygls closes the channel next: stop sending log messages into it."""
        logs.detach_editor()

    @server.feature(types.SHUTDOWN)
    async def shutdown(ls: LspilotServer, params: None) -> None:
        """Stop running actions and close upstream connections."""
        await ls.shutdown_runs()

    for command in ALL_COMMANDS:
        # Registered so that they are advertised; LspilotProtocol runs them itself.
        server.command(command)(_advertised_only)

    return server


def _advertised_only(*args: Any) -> None:  # pragma: no cover - never called
    raise AssertionError("commands are dispatched by LspilotProtocol")
