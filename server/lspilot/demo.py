"""``lspilot demo``: play the editor against a real ``lspilot --stdio`` in a subprocess.

It speaks real LSP (pygls's client): opens the file, asks for the code actions on the
range and runs Explain, Refactor and Write tests one after the other. The explanation
streams to the terminal as ``lspilot/stream`` arrives, each action has a progress line
(elapsed time, tokens), and every edit the server sends is printed as a unified diff.
Files change only with ``--apply``: otherwise edits are applied to an in-memory copy
and the editor's answer to ``workspace/applyEdit`` is still "applied".
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import contextlib
import difflib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any, TextIO

from lsprotocol import types
from pygls.lsp.client import LanguageClient
from pygls.uris import from_fs_path, to_fs_path

from lspilot import __version__
from lspilot.local import INSTALL_COMMAND, LocalModelError, default_cache_dir
from lspilot.text import apply_edits, end_after, split_lines, strip_line_end, units
from lspilot.usage import CHARS_PER_TOKEN, format_cost

ACTIONS = (
    ("lspilot.explain", "Explain"),
    ("lspilot.refactor", "Refactor"),
    ("lspilot.writeTests", "Write tests"),
)
SAMPLE_NAME = "stats.py"  # the sample's name in its scratch workspace
ACTION_TIMEOUT = 600.0
LANGUAGES = {
    ".py": "python", ".js": "javascript", ".ts": "typescript", ".go": "go", ".rs": "rust",
    ".java": "java", ".rb": "ruby", ".cs": "csharp", ".php": "php", ".lua": "lua",
    ".c": "c", ".cpp": "cpp", ".jsx": "javascriptreact", ".tsx": "typescriptreact",
}
SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


def main(args: argparse.Namespace) -> int:
    out = sys.stdout
    local = _wants_local(os.environ)
    if local:
        problem = _local_problem()
        if problem:
            print(f"lspilot demo: {problem}", file=sys.stderr)
            print("lspilot demo installs nothing itself. Either install the local model:\n"
                  f"    {INSTALL_COMMAND}\n"
                  "or set LSPILOT_API_KEY (or OPENAI_API_KEY) and, if needed, LSPILOT_BASE_URL.",
                  file=sys.stderr)
            return 1
    try:
        target = _prepare_target(args)
    except DemoError as exc:
        print(f"lspilot demo: {exc}", file=sys.stderr)
        return 1
    demo = Demo(target, local=local, apply=args.apply, out=out)
    try:
        return asyncio.run(demo.run())
    except KeyboardInterrupt:
        print("\nlspilot demo: interrupted.", file=sys.stderr)
        return 130
    finally:
        if target.scratch is not None and not args.apply:
            shutil.rmtree(target.scratch, ignore_errors=True)


class DemoError(Exception):
    pass


def _without_notes(message: str) -> str:
    from lspilot.local.model import BUNDLED

    for which in BUNDLED.values():
        message = message.replace(which.note, "")
    return message.strip()


def _wants_local(environ: Mapping[str, str]) -> bool:
    if environ.get("LSPILOT_BASE_URL") == "local":
        return True
    return not (environ.get("LSPILOT_API_KEY") or environ.get("OPENAI_API_KEY"))


def _local_problem() -> str | None:
    from lspilot.local import model, process

    try:
        process.check_installed()
        which = model.bundled(os.environ.get("LSPILOT_LOCAL_MODEL"))
        if which is not None:
            model.check_bundled(which)
    except LocalModelError as exc:
        return str(exc)
    return None


# -- the file and range ---------------------------------------------------------------------


class Target:
    def __init__(self, path: Path, root: Path, lines: tuple[int, int],
                 scratch: Path | None) -> None:
        self.path = path
        self.root = root
        self.lines = lines  # 1-based, inclusive
        self.scratch = scratch
        self.text = path.read_text(encoding="utf-8")


def _prepare_target(args: argparse.Namespace) -> Target:
    scratch: Path | None = None
    if args.file:
        path = Path(args.file).resolve()
        if not path.is_file():
            raise DemoError(f"{args.file} is not a file.")
        cwd = Path.cwd().resolve()
        root = cwd if cwd in path.parents else path.parent
    else:
        scratch = Path(tempfile.mkdtemp(prefix="lspilot-demo-"))
        path = scratch / SAMPLE_NAME
        sample = resources.files("lspilot").joinpath("demo_sample.py").read_text("utf-8")
        path.write_text(sample, encoding="utf-8")
        root = scratch
    text = path.read_text(encoding="utf-8")
    count = max(1, len(split_lines(text)))
    if args.range:
        lines = _parse_range(args.range, count)
    elif scratch is not None:
        lines = _first_function(text) or (1, count)
    else:
        lines = (1, count)
    return Target(path, root, lines, scratch)


def _parse_range(spec: str, count: int) -> tuple[int, int]:
    first, _, last = spec.partition("-")
    try:
        start, end = int(first), int(last or first)
    except ValueError:
        raise DemoError(f"--range {spec!r}: expected L1-L2, e.g. --range 3-12") from None
    if not 1 <= start <= end <= count:
        raise DemoError(f"--range {spec!r}: the file has lines 1-{count}")
    return start, end


def _first_function(text: str) -> tuple[int, int] | None:
    for node in ast.parse(text).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            return node.lineno, node.end_lineno or node.lineno
    return None


def _lsp_range(text: str, lines: tuple[int, int], encoding: str) -> types.Range:
    all_lines = split_lines(text)
    start, end = lines
    if end < len(all_lines) or all_lines[-1].endswith(("\n", "\r")):
        end_position = types.Position(end, 0)
    else:  # the last line has no line end: end at its end
        end_position = types.Position(end - 1, units(strip_line_end(all_lines[end - 1]), encoding))
    return types.Range(types.Position(start - 1, 0), end_position)


# -- the terminal -----------------------------------------------------------------------------


class Terminal:
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = out.isatty()
        self.colour = self.tty and not os.environ.get("NO_COLOR") and \
            os.environ.get("TERM") != "dumb"
        self._status = False

    def paint(self, text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.colour else text

    def write(self, text: str) -> None:
        self.clear_status()
        self.out.write(text)
        self.out.flush()

    def line(self, text: str = "") -> None:
        self.write(text + "\n")

    def status(self, text: str) -> None:
        """A line that updates in place (TTY only)."""
        if not self.tty:
            return
        width = shutil.get_terminal_size((100, 20)).columns - 1
        self.out.write("\r\x1b[K" + text[:width])
        self.out.flush()
        self._status = True

    def clear_status(self) -> None:
        if self._status:
            self.out.write("\r\x1b[K")
            self._status = False

    def diff(self, old: str, new: str, old_name: str, new_name: str) -> None:
        lines = difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                     old_name, new_name)
        for line in lines:
            text = line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
            if line.startswith(("+++", "---")):
                text = self.paint(text.rstrip("\n"), "1") + "\n"
            elif line.startswith("+"):
                text = self.paint(text.rstrip("\n"), "32") + "\n"
            elif line.startswith("-"):
                text = self.paint(text.rstrip("\n"), "31") + "\n"
            elif line.startswith("@@"):
                text = self.paint(text.rstrip("\n"), "36") + "\n"
            self.write(text)


# -- the editor ------------------------------------------------------------------------------


class ActionState:
    def __init__(self, command: str, title: str, token: str) -> None:
        self.command = command
        self.title = title
        self.token = token
        self.started = time.monotonic()
        self.chars = 0
        self.streamed = False
        self.message = ""
        self.diffs: list[tuple[str, str, str, str]] = []


class Demo:
    def __init__(self, target: Target, *, local: bool, apply: bool, out: TextIO) -> None:
        self.target = target
        self.local = local
        self.apply = apply
        self.term = Terminal(out)
        self.client = _client()
        self.uri = from_fs_path(str(target.path)) or target.path.as_uri()
        self.version = 1
        self.encoding = "utf-16"
        # Files as the demo's editor sees them: the open document, created/edited files.
        self.files: dict[Path, str] = {target.path: target.text}
        self.original: dict[Path, str | None] = {target.path: target.text}
        self.current: ActionState | None = None
        self.selection = types.Range(types.Position(0, 0), types.Position(0, 0))
        self.log_path = default_cache_dir() / "demo-server.log"
        self._drain: asyncio.Task[None] | None = None

    # -- the session ---------------------------------------------------------------------
    async def run(self) -> int:
        term, target = self.term, self.target
        where = f" (a scratch copy of the bundled sample in {target.root})" if target.scratch \
            else ""
        term.line(term.paint(f"lspilot demo: {self._relative(target.path)} lines "
                             f"{target.lines[0]}-{target.lines[1]}{where}", "1"))
        self._describe_upstream()
        self._register()
        command = [sys.executable, "-m", "lspilot", "--stdio", "--log-level", "INFO"]
        if self.local:
            command.insert(3, "--local")
        await self.client.start_io(*command)
        self._drain = asyncio.create_task(self._drain_stderr())
        code = 1
        try:
            code = await self._session()
        finally:
            await self._stop()
        return code

    async def _session(self) -> int:
        term, client = self.term, self.client
        options: dict[str, Any] = {"explainShow": "none"}
        if self.local:
            # llama.cpp's default (0.8) makes the small local model wander; the benchmarks
            # (benchmarks/README.md, "Local models") were measured at 0.2.
            options["temperature"] = 0.2
        result = await asyncio.wait_for(client.initialize_async(types.InitializeParams(
            capabilities=_capabilities(),
            initialization_options=options,
            workspace_folders=[types.WorkspaceFolder(
                uri=from_fs_path(str(self.target.root)) or "", name=self.target.root.name)],
            root_uri=from_fs_path(str(self.target.root)),
        )), 60)
        encoding = result.capabilities.position_encoding
        self.encoding = str(getattr(encoding, "value", encoding) or "utf-16")
        client.initialized(types.InitializedParams())
        client.text_document_did_open(types.DidOpenTextDocumentParams(types.TextDocumentItem(
            uri=self.uri, language_id=LANGUAGES.get(self.target.path.suffix, "plaintext"),
            version=self.version, text=self.target.text)))
        self.selection = _lsp_range(self.target.text, self.target.lines, self.encoding)
        titles, _ = await self._code_actions()
        term.line(f"Code actions offered on the selection: {', '.join(titles) or 'none'}")
        outcomes = []
        for name, title in ACTIONS:
            # Asked again each time, as an editor does: a refactor moved the selection's end.
            _, commands = await self._code_actions()
            command = commands.get(name)
            if command is None:
                term.line(term.paint(f"✗ {title} was not offered.", "31"))
                outcomes.append("missing")
                continue
            outcomes.append(await self._run_action(command, title))
        self._summary()
        bad = [o for o in outcomes if o not in ("done", "no_code")]
        return 1 if bad else 0

    async def _code_actions(self) -> tuple[list[str], dict[str, types.Command]]:
        offered = await asyncio.wait_for(self.client.text_document_code_action_async(
            types.CodeActionParams(
                text_document=types.TextDocumentIdentifier(uri=self.uri), range=self.selection,
                context=types.CodeActionContext(diagnostics=[]),
            )), 30) or []
        commands = {}
        for item in offered:
            command = item.command if isinstance(item, types.CodeAction) else item
            if command is not None:
                commands[command.command] = command
        return [item.title for item in offered], commands

    async def _run_action(self, command: types.Command, title: str) -> str:
        term = self.term
        state = ActionState(command.command, title, f"lspilot-demo-{command.command}")
        self.current = state
        term.line()
        term.line(term.paint(f"━━ {title} ━━", "1;35"))
        ticker = asyncio.create_task(self._tick(state))
        try:
            result = await asyncio.wait_for(self.client.workspace_execute_command_async(
                types.ExecuteCommandParams(command=command.command, arguments=command.arguments,
                                           work_done_token=state.token)), ACTION_TIMEOUT)
        except TimeoutError:
            await self.client.workspace_execute_command_async(types.ExecuteCommandParams(
                command="lspilot.cancel", arguments=[{"token": state.token}]))
            result = {"status": "failed", "error": {"type": "timeout",
                                                    "message": "no answer in 10 minutes"}}
        except Exception as exc:  # a JSON-RPC error, or the server went away
            result = {"status": "failed", "error": {"type": type(exc).__name__,
                                                    "message": str(exc)}}
        finally:
            ticker.cancel()
            self.current = None
        if state.streamed:
            term.write("\n")
        outcome = self._report(state, _plain(result))
        for old, new, old_name, new_name in state.diffs:
            term.diff(old, new, old_name, new_name)
        return outcome

    def _report(self, state: ActionState, result: Any) -> str:
        term = self.term
        seconds = time.monotonic() - state.started
        status = result.get("status") if isinstance(result, dict) else None
        usage = result.get("usage") if isinstance(result, dict) else None
        if isinstance(usage, dict):
            about = "~" if usage.get("estimated") else ""
            tokens = (f"{about}{usage.get('promptTokens', 0):,} tokens in, "
                      f"{about}{usage.get('completionTokens', 0):,} out")
            if isinstance(usage.get("cost"), int | float):
                tokens += f", {format_cost(usage['cost'])}"
            if usage.get("estimated"):
                tokens += " (estimated: no usage reported)"
        else:
            tokens = "no text, no usage"
        if status == "done":
            edits = len(state.diffs)
            what = f", {edits} edit{'s' if edits != 1 else ''}" if edits else ""
            term.line(term.paint(f"✓ {state.title}: done in {seconds:.1f} s, {tokens}{what}",
                                 "32"))
            return "done"
        error = (result.get("error") if isinstance(result, dict) else None) or {}
        kind = error.get("type", status or "unknown")
        message = error.get("message") or "no reason given"
        term.line(term.paint(f"✗ {state.title}: {status or 'failed'} after {seconds:.1f} s "
                             f"({kind}): {message}", "31" if kind != "no_code" else "33"))
        if kind == "no_code":
            term.line("  (the model's answer had no code in it: a normal outcome with a tiny "
                      "model; nothing was changed)")
        return str(kind)

    async def _tick(self, state: ActionState) -> None:
        frame = 0
        while True:
            if not state.streamed or state.command != "lspilot.explain":
                seconds = time.monotonic() - state.started
                self.term.status(
                    f"{SPINNER[frame % len(SPINNER)]} {state.title}  {seconds:5.1f} s  "
                    f"~{_estimate_tokens(state.chars):,} tokens  {state.message}")
            frame += 1
            await asyncio.sleep(0.1)

    def _summary(self) -> None:
        term = self.term
        changed = [p for p, text in self.files.items() if self.original.get(p) != text]
        term.line()
        if not changed:
            term.line("No file was changed.")
        elif self.apply:
            term.line("Written: " + ", ".join(self._relative(p) for p in changed))
        else:
            term.line(f"Nothing was written: the diffs above are what --apply would write "
                      f"({', '.join(self._relative(p) for p in changed)}).")

    def _describe_upstream(self) -> None:
        term = self.term
        if self.local:
            from lspilot.local.model import bundled

            model = os.environ.get("LSPILOT_LOCAL_MODEL")
            which = bundled(model)
            if which is None:
                term.line(f"Upstream: your local model {model} through llama.cpp.")
            else:
                term.line(f"Upstream: the bundled local model, {which.title}, through "
                          "llama.cpp (no key, no network).")
                term.line(term.paint(which.note, "33"))
        else:
            base = os.environ.get("LSPILOT_BASE_URL") or os.environ.get("OPENAI_BASE_URL") \
                or "https://api.openai.com/v1"
            model = os.environ.get("LSPILOT_MODEL") or "the default model"
            term.line(f"Upstream: {base} ({model}), with the key from the environment.")

    # -- the server's requests and notifications ----------------------------------------------
    def _register(self) -> None:
        def create_progress(params: types.WorkDoneProgressCreateParams) -> None:
            return None

        def stream(params: Any) -> None:
            self._on_stream(_plain(params))

        def show_message(params: types.ShowMessageParams) -> None:
            if params.type == types.MessageType.Warning:
                self.term.line(self.term.paint(f"lspilot: {params.message}", "33"))

        def log_message(params: types.LogMessageParams) -> None:
            return None

        handlers: dict[str, Callable[[Any], Any]] = {
            types.WINDOW_WORK_DONE_PROGRESS_CREATE: create_progress,
            types.PROGRESS: self._on_progress,
            "lspilot/stream": stream,
            types.WORKSPACE_APPLY_EDIT: self._on_apply_edit,
            types.WINDOW_SHOW_MESSAGE: show_message,
            types.WINDOW_LOG_MESSAGE: log_message,
        }
        for method, handler in handlers.items():
            self.client.feature(method)(_plain_function(handler))

    def _on_progress(self, params: Any) -> None:
        token = getattr(params, "token", None)
        value = _plain(getattr(params, "value", None))
        if not isinstance(value, dict):
            return
        message = value.get("message") or value.get("title") or ""
        state = self.current
        if state is not None and token == state.token:
            state.message = str(message).replace("\n", " ")[:60] if value.get("kind") \
                != "end" else ""
            return
        # Progress lspilot made itself: the local model's start-up (the note is shown above).
        message = _without_notes(str(message))
        if message:
            self.term.line(self.term.paint(f"  local model: {message}", "2"))

    def _on_stream(self, params: Any) -> None:
        state = self.current
        if not isinstance(params, dict) or state is None or params.get("token") != state.token:
            return
        delta = str(params.get("delta") or "")
        state.chars += len(delta)
        if delta and state.command == "lspilot.explain":
            if not state.streamed:
                self.term.clear_status()
            state.streamed = True
            self.term.write(delta)

    def _on_apply_edit(self, params: types.ApplyWorkspaceEditParams
                       ) -> types.ApplyWorkspaceEditResult:
        try:
            self._apply(params.edit)
        except Exception as exc:  # tell the server, as an editor would
            return types.ApplyWorkspaceEditResult(applied=False, failure_reason=str(exc))
        return types.ApplyWorkspaceEditResult(applied=True)

    def _apply(self, edit: types.WorkspaceEdit) -> None:
        before: dict[Path, str | None] = {}
        after: dict[Path, str] = {}

        def text_of(path: Path) -> str:
            if path in after:
                return after[path]
            if path in self.files:
                return self.files[path]
            return path.read_text(encoding="utf-8") if path.exists() else ""

        def remember(path: Path) -> None:
            if path not in before:
                known = path in self.files or path.exists()
                before[path] = text_of(path) if known else None

        for change in edit.document_changes or []:
            if isinstance(change, types.CreateFile):
                path = _path(change.uri)
                remember(path)
                if before[path] is None:
                    after[path] = ""
            elif isinstance(change, types.TextDocumentEdit):
                path = _path(change.text_document.uri)
                remember(path)
                edits = [e for e in change.edits if isinstance(e, types.TextEdit)]
                after[path] = apply_edits(text_of(path), edits, self.encoding)
                if path == self.target.path:
                    self._follow_selection(edits)
            else:
                raise ValueError(f"the demo cannot do {type(change).__name__}")
        for uri, text_edits in (edit.changes or {}).items():
            path = _path(uri)
            remember(path)
            after[path] = apply_edits(text_of(path), list(text_edits), self.encoding)
            if path == self.target.path:
                self._follow_selection(list(text_edits))
        for path, new in after.items():
            old = before.get(path)
            self.original.setdefault(path, old)
            self.files[path] = new
            if path == self.target.path:
                self.version += 1
                self.client.text_document_did_change(types.DidChangeTextDocumentParams(
                    text_document=types.VersionedTextDocumentIdentifier(
                        uri=self.uri, version=self.version),
                    content_changes=[types.TextDocumentContentChangeWholeDocument(text=new)]))
            if self.apply:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(new, encoding="utf-8")
            name = self._relative(path)
            diff = (old or "", new, "/dev/null" if old is None else f"a/{name}", f"b/{name}")
            if self.current is not None:
                self.current.diffs.append(diff)
            else:
                self.term.diff(*diff)

    def _follow_selection(self, edits: list[Any]) -> None:
        """An edit that replaced the selection leaves the new text selected."""
        for edit in edits:
            if edit.range == self.selection:
                self.selection = types.Range(
                    edit.range.start, end_after(edit.range.start, edit.new_text, self.encoding))

    # -- plumbing --------------------------------------------------------------------------
    async def _drain_stderr(self) -> None:
        """The server's stderr (its log) goes to a file; a full pipe would stall it."""
        server = getattr(self.client, "_server", None)
        if server is None or server.stderr is None:
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            while chunk := await server.stderr.read(65536):
                log.write(chunk)
                log.flush()

    async def _stop(self) -> None:
        client = self.client
        server = getattr(client, "_server", None)
        try:
            await asyncio.wait_for(client.shutdown_async(None), 15)
            client.exit(None)
            if server is not None:
                await asyncio.wait_for(server.wait(), 15)
        except Exception:
            if server is not None and server.returncode is None:
                server.kill()
                self.term.line(f"lspilot demo: the server did not stop; killed it "
                               f"(its log: {self.log_path})")
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.stop(), 10)  # type: ignore[no-untyped-call]
        if self._drain is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._drain, 5)

    def _relative(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.target.root))
        except ValueError:
            return str(path)


def _client() -> LanguageClient:
    client = LanguageClient("lspilot-demo", __version__)
    converter = client.protocol._converter

    # lsprotocol would structure a code action that carries a `command` as a Command,
    # losing it (pygls-notes, trap 7): only a string `command` makes a Command.
    def structure_action(obj: Any, _: Any) -> types.Command | types.CodeAction:
        if isinstance(obj.get("command"), str):
            command: types.Command = converter.structure(obj, types.Command)
            return command
        action: types.CodeAction = converter.structure(obj, types.CodeAction)
        return action

    converter.register_structure_hook(types.Command | types.CodeAction, structure_action)
    return client


def _plain_function(handler: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """pygls marks handlers with attributes, which bound methods cannot take."""

    def call(params: Any) -> Any:
        return handler(params)

    return call


def _capabilities() -> types.ClientCapabilities:
    return types.ClientCapabilities(
        window=types.WindowClientCapabilities(work_done_progress=True),
        workspace=types.WorkspaceClientCapabilities(
            apply_edit=True,
            workspace_edit=types.WorkspaceEditClientCapabilities(
                document_changes=True,
                resource_operations=[types.ResourceOperationKind.Create],
            ),
        ),
        general=types.GeneralClientCapabilities(
            position_encodings=[types.PositionEncodingKind.Utf32,
                                types.PositionEncodingKind.Utf16],
        ),
    )


def _path(uri: str) -> Path:
    path = to_fs_path(uri)
    if not path:
        raise ValueError(f"not a file URI: {uri}")
    return Path(path)


def _estimate_tokens(chars: int) -> int:
    return -(-chars // CHARS_PER_TOKEN)


def _plain(value: Any) -> Any:
    """pygls hands unknown payloads over as namedtuple-like objects: make them dicts."""
    if hasattr(value, "_asdict"):
        return {k: _plain(v) for k, v in value._asdict().items()}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "__attrs_attrs__"):
        return {a.name: _plain(getattr(value, a.name)) for a in value.__attrs_attrs__}
    return value


# -- positions -------------------------------------------------------------------------------



