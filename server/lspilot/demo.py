"""``lspilot demo``: play the editor against a real ``lspilot --stdio`` in a subprocess.

It speaks real LSP (pygls's client): opens the file, asks for the code actions on the
range and runs Explain, Refactor and Write tests one after the other; on its scratch copy of
the sample it then lets lspilot run the new tests and have them repaired (the demo is the
user's consent there; ``--no-run`` says "Not now" instead). The explanation
streams to the terminal as ``lspilot/stream`` arrives, each action has a progress line
(elapsed time, tokens), and every edit the server sends is printed as a unified diff.
Files change only with ``--apply``: otherwise edits are applied to an in-memory copy
and the editor's answer to ``workspace/applyEdit`` is still "applied". The editor it
plays is :class:`lspilot.scripted_editor.ScriptedEditor`, the one the e2e tests drive.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import contextlib
import difflib
import importlib.util
import os
import shutil
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path
from typing import Any, TextIO

from lsprotocol import types
from pygls.lsp.client import LanguageClient
from pygls.uris import from_fs_path

from lspilot import __version__
from lspilot.local import INSTALL_COMMAND, LocalModelError, default_cache_dir
from lspilot.scripted_editor import FileEdit, ScriptedEditor, WorkDoneProgress, capabilities, plain
from lspilot.settings import LOCAL_BASE_URL, Settings, environment_layer, resolve
from lspilot.text import end_after, position_of, split_lines
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
    # The environment as the server resolves it (it inherits the demo's).
    settings = resolve([environment_layer(os.environ)]).settings
    local = _wants_local(settings)
    if local:
        problem = _local_problem(settings)
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
    demo = Demo(target, settings=settings, local=local, apply=args.apply, out=out,
                run_tests=target.scratch is not None and not getattr(args, "no_run", False))
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


def _wants_local(settings: Settings) -> bool:
    return settings.base_url == LOCAL_BASE_URL or settings.api_key is None


def _local_problem(settings: Settings) -> str | None:
    from lspilot.local import model, process

    try:
        process.check_installed()
        which = model.bundled(settings.local_model)
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
    """Lines ``start``-``end`` (1-based) with the last one's line end, if it has one."""
    start, end = lines
    past_end = sum(len(line) for line in split_lines(text)[:end])
    return types.Range(types.Position(start - 1, 0), position_of(text, past_end, encoding))


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
        self.tests: dict[str, Any] | None = None  # lspilot's run of the tests it wrote


class Demo(ScriptedEditor):
    """The scripted editor, showing what happens on a terminal.

    With ``--apply`` it saves every file an edit changed; without, nothing is written and
    files that are not open are edited in memory.
    """

    def __init__(self, target: Target, *, settings: Settings, local: bool, apply: bool,
                 out: TextIO, run_tests: bool = False) -> None:
        # The tests run against the files on disk: in the scratch folder (removed after,
        # unless --apply) the edits are saved, so they test the code as the diffs show it.
        saved = apply or (run_tests and target.scratch is not None)
        super().__init__(LanguageClient("lspilot-demo", __version__),
                         save="all" if saved else "none")
        self.target = target
        self.settings = settings
        self.local = local
        self.apply = apply
        # Run the tests Write tests wrote: only in the demo's own scratch folder.
        self.run_tests = run_tests
        self.tests_outcome: str | None = None  # what the summary says of the tests
        self.tests_pass = False
        self.started = time.monotonic()
        self.term = Terminal(out)
        self.uri = from_fs_path(str(target.path)) or target.path.as_uri()
        # pygls marks a handler with attributes, which a bound method cannot take.
        self.client.feature(types.WINDOW_SHOW_MESSAGE_REQUEST)(lambda p: self._answer(p))
        # Each file's text before the demo's first edit (None: it did not exist) and now.
        self.original: dict[Path, str | None] = {target.path: target.text}
        self.latest: dict[Path, str] = {target.path: target.text}
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
        term = self.term
        options: dict[str, Any] = {"explainShow": "none"}
        if self.run_tests and importlib.util.find_spec("pytest") is not None:
            # The demo's own Python has pytest: the run needs nothing else installed.
            options["testCommand"] = {"python": [sys.executable, "-m", "pytest", "-q",
                                                 "-p", "no:cacheprovider", "{file}"]}
        if self.local:
            # llama.cpp's default (0.8) makes the small local model wander; the benchmarks
            # (benchmarks/README.md, "Local models") were measured at 0.2.
            options["temperature"] = 0.2
        await asyncio.wait_for(self.initialize(types.InitializeParams(
            capabilities=capabilities(show_document=False, encodings=["utf-32", "utf-16"]),
            initialization_options=options,
            workspace_folders=[types.WorkspaceFolder(
                uri=from_fs_path(str(self.target.root)) or "", name=self.target.root.name)],
            root_uri=from_fs_path(str(self.target.root)),
        )), 60)
        self.open_document(self.uri, self.target.text,
                           LANGUAGES.get(self.target.path.suffix, "plaintext"))
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
        bad = [o for o in outcomes if o not in ("done", "no_code", "no_tests")]
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
        self.expect_progress(state.token)
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
        outcome = self._report(state, plain(result))
        for old, new, old_name, new_name in state.diffs:
            term.diff(old, new, old_name, new_name)
        if state.tests is not None:
            self._report_tests(state.tests)
        return outcome

    def _answer(self, params: types.ShowMessageRequestParams) -> types.MessageActionItem | None:
        """Running the new tests: "Run" in the demo's scratch folder (running the demo there
        is the consent), "Not now" for the user's own files or with --no-run."""
        titles = [action.title for action in params.actions or []]
        if "Not now" not in titles:
            return None
        if self.run_tests and "Run" in titles:
            self.term.line(self.term.paint(
                "  lspilot asks to run the new tests; the demo answers Run: they run in its "
                "scratch folder (--no-run to skip; your editor asks you, see Tests that run "
                "in the README)", "2"))
            return types.MessageActionItem(title="Run")
        why = "--no-run" if self.target.scratch is not None else \
            "the demo runs tests only in its scratch copy of the sample"
        self.term.line(self.term.paint(
            f"  lspilot asks to run the new tests; the demo answers Not now ({why}; your "
            "editor asks you: see Tests that run in the README)", "2"))
        return types.MessageActionItem(title="Not now")

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
            tests = result.get("tests") if isinstance(result, dict) else None
            if isinstance(tests, dict):
                state.tests = tests  # said after the diffs: what was written, then its run
            return "done"
        error = (result.get("error") if isinstance(result, dict) else None) or {}
        kind = error.get("type", status or "unknown")
        message = error.get("message") or "no reason given"
        term.line(term.paint(f"✗ {state.title}: {status or 'failed'} after {seconds:.1f} s "
                             f"({kind}): {message}", "31" if kind != "no_code" else "33"))
        if kind == "no_code":
            term.line("  (the model's answer had no code in it: a normal outcome with a tiny "
                      "model; nothing was changed)")
        if kind == "no_tests":
            term.line("  (the model wrote no test, even when asked once more: a normal outcome "
                      "with a tiny model; nothing was written)")
            self.tests_outcome = "the model wrote no test"
        return str(kind)

    def _report_tests(self, tests: dict[str, Any]) -> None:
        """The run of the new tests, as lspilot reported it in the answer's ``tests``."""
        term = self.term
        passed, failed = int(tests.get("passed") or 0), int(tests.get("failed") or 0)
        rounds = int(tests.get("rounds") or 0)
        repaired = f" after {rounds} repair round{'s' if rounds != 1 else ''}" if rounds \
            else " as written"
        command = tests.get("command", "")
        if failed == 0 and passed > 0:
            self.tests_outcome = (f"{passed} test{'s' if passed != 1 else ''}, all pass"
                                  f"{repaired}")
            self.tests_pass = True
            term.line(term.paint(f"✓ Tests run: {self.tests_outcome} (`{command}`)", "32"))
            return
        if tests.get("ran") is False and tests.get("problem"):
            self.tests_outcome = f"the tests did not run: {tests['problem']}"
        elif failed == 0:
            self.tests_outcome = "the tests did not run"
        else:
            self.tests_outcome = f"{passed} pass, {failed} still fail{'s' if failed == 1 else ''}" \
                f"{repaired}"
        term.line(term.paint(f"✗ Tests run: {self.tests_outcome} (`{command}`); what it "
                             "printed last:", "33"))
        tail = [line for line in str(tests.get("output", "")).splitlines() if line.strip()]
        for line in tail[-8:]:
            term.line(term.paint(f"    {line}", "2"))

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
        changed = [p for p, text in self.latest.items() if self.original.get(p) != text]
        term.line()
        if self.tests_outcome is not None:
            term.line(term.paint(f"Write tests: {self.tests_outcome}.",
                                 "1;32" if self.tests_pass else "1;33"))
        term.line(f"The demo took {time.monotonic() - self.started:.0f} s.")
        if not changed:
            term.line("No file was changed.")
        elif self.apply:
            term.line("Written: " + ", ".join(self._relative(p) for p in changed))
        elif self.target.scratch is not None:
            term.line(f"Nothing of yours was written: the changes ("
                      f"{', '.join(self._relative(p) for p in changed)}) went to the scratch "
                      "folder, now removed (--apply keeps it).")
        else:
            term.line(f"Nothing was written: the diffs above are what --apply would write "
                      f"({', '.join(self._relative(p) for p in changed)}).")

    def _describe_upstream(self) -> None:
        term = self.term
        if self.local:
            from lspilot.local.model import bundled

            model = self.settings.local_model
            which = bundled(model)
            if which is None:
                term.line(f"Upstream: your local model {model} through llama.cpp.")
            else:
                term.line(f"Upstream: the bundled local model, {which.title}, through "
                          "llama.cpp (no key, no network).")
                term.line(term.paint(which.note, "33"))
        else:
            term.line(f"Upstream: {self.settings.base_url} ({self.settings.model}), with the "
                      "key from the environment.")

    # -- what the server sends (the scripted editor has recorded and applied it) ----------
    def on_progress(self, token: types.ProgressToken, value: WorkDoneProgress) -> None:
        message = getattr(value, "message", None) or getattr(value, "title", None) or ""
        state = self.current
        if state is not None and token == state.token:
            state.message = "" if isinstance(value, types.WorkDoneProgressEnd) \
                else str(message).replace("\n", " ")[:60]
            return
        # Progress lspilot made itself: the local model's start-up (the note is shown above).
        message = _without_notes(str(message))
        if message:
            self.term.line(self.term.paint(f"  local model: {message}", "2"))

    def on_stream(self, notification: dict[str, Any]) -> None:
        state = self.current
        if state is None or notification.get("token") != state.token:
            return
        delta = str(notification.get("delta") or "")
        state.chars += len(delta)
        if delta and state.command == "lspilot.explain":
            if not state.streamed:
                self.term.clear_status()
            state.streamed = True
            self.term.write(delta)

    def on_message(self, params: types.ShowMessageParams) -> None:
        if params.type == types.MessageType.Warning:
            self.term.line(self.term.paint(f"lspilot: {params.message}", "33"))

    def on_file_edited(self, edit: FileEdit) -> None:
        path = edit.path
        if path is None:
            return
        if path == self.target.path:
            self._follow_selection(edit.edits)
        self.original.setdefault(path, edit.before)
        self.latest[path] = edit.after
        name = self._relative(path)
        diff = (edit.before or "", edit.after,
                "/dev/null" if edit.before is None else f"a/{name}", f"b/{name}")
        if self.current is not None:
            self.current.diffs.append(diff)
        else:
            self.term.diff(*diff)

    def _follow_selection(self, edits: tuple[types.TextEdit, ...]) -> None:
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


def _estimate_tokens(chars: int) -> int:
    return -(-chars // CHARS_PER_TOKEN)
