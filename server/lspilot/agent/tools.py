"""The built-in tools: small objects with a name, a kind (what approves them), a JSON
schema, a one-line label for progress, the question that names the exact call, and
``run``. What they need from the editor comes through a :class:`Host`, so an LSP editor
and an ACP client serve the same tools."""

from __future__ import annotations

import difflib
import re
import shlex
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from attrs import define

from lspilot.agent.files import ToolError, WorkspaceFiles

MAX_RESULT_CHARS = 12_000  # one tool result, before it goes back to the model
MAX_LIST = 400  # files one list_files names
MAX_MATCHES = 200  # lines one search returns


@define(frozen=True)
class CommandRun:
    """A finished command: its exit code (None: killed at the time limit) and output."""

    exit_code: int | None
    output: str
    timed_out: bool = False


@define(frozen=True)
class TestsRun:
    command: str
    passed: int
    failed: int
    exit_code: int | None
    output: str
    timed_out: bool = False


class Host(Protocol):
    """What the tools need from where the agent runs (an LSP editor, an ACP client)."""

    files: WorkspaceFiles

    async def replace_text(self, path: Path, expected: str, start: int, end: int,
                           new: str) -> None:
        """Replace ``expected[start:end]`` in ``path`` (whose text is ``expected``) as one
        undoable edit; raises ToolError when the editor does not apply it."""
        ...

    async def create_file(self, path: Path, content: str) -> None: ...

    async def run_command(self, argv: Sequence[str], cwd: Path) -> CommandRun: ...

    async def run_tests(self, path: Path | None) -> TestsRun: ...

    def chosen_by_workspace(self, tool: str) -> bool:
        """Whether a workspace's settings chose what ``tool`` would run: then it is asked
        about even where the user's agentApproval says auto."""
        ...


@define(frozen=True)
class Result:
    """What a step gives the model, and a short summary for the user."""

    text: str
    summary: str


class Tool:
    name: str
    kind: str  # read | edit | run | mcp: what agentApproval says about it
    description: str
    parameters: Mapping[str, Any]

    def label(self, args: Mapping[str, Any]) -> str:
        """What the progress says while it runs: "Reading src/util.py…"."""
        return f"{self.name}…"

    def question(self, args: Mapping[str, Any], host: Host) -> str:
        """The approval question, naming exactly what would happen."""
        return f"lspilot's agent wants to call {self.name}."

    def remembered_as(self, args: Mapping[str, Any]) -> str:
        """What "Allow for this conversation" approves: this tool, any arguments."""
        return self.name

    def precheck(self, args: Mapping[str, Any], host: Host) -> None:
        """Raises ToolError for a call that cannot run whatever the user answers, so the
        user is not asked about it (built-in tools: a path outside the workspace or
        excluded)."""

    async def run(self, args: Mapping[str, Any], host: Host) -> Result:
        raise NotImplementedError

    def spec(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description,
                "parameters": dict(self.parameters)}


def _path_precheck(args: Mapping[str, Any], host: Host) -> None:
    if args.get("path"):
        host.files.resolve(args["path"])


def _object(properties: dict[str, Any], required: Sequence[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(required),
            "additionalProperties": False}


_STRING = {"type": "string"}


def check_arguments(tool: Tool, args: Any) -> dict[str, Any]:
    """The arguments when they fit the tool's schema, else ToolError saying what is off."""
    if not isinstance(args, dict):
        raise ToolError(f"{tool.name}: the arguments must be a JSON object.")
    schema = tool.parameters
    properties: Mapping[str, Any] = schema.get("properties", {})
    missing = [name for name in schema.get("required", []) if name not in args]
    if missing:
        raise ToolError(f"{tool.name}: missing {', '.join(missing)}.")
    for name, value in args.items():
        expected = properties.get(name)
        if expected is None:
            if schema.get("additionalProperties") is False:
                raise ToolError(f"{tool.name}: unknown argument {name!r}; it takes "
                                f"{', '.join(properties)}.")
            continue
        if not _fits(value, expected):
            raise ToolError(f"{tool.name}: {name!r} must be {_type_name(expected)}, got "
                            f"{type(value).__name__}.")
    return dict(args)


def _fits(value: Any, schema: Mapping[str, Any]) -> bool:
    kind = schema.get("type")
    if kind == "string":
        return isinstance(value, str)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "object":
        return isinstance(value, dict)
    if kind == "array":
        items = schema.get("items", {})
        return isinstance(value, list) and all(_fits(v, items) for v in value)
    return True


def _type_name(schema: Mapping[str, Any]) -> str:
    kind = schema.get("type")
    if kind == "array":
        return f"a list of {schema.get('items', {}).get('type', 'value')}s"
    return {"string": "a string", "integer": "a whole number", "number": "a number",
            "boolean": "true or false", "object": "an object"}.get(str(kind), str(kind))


def bounded(text: str, limit: int = MAX_RESULT_CHARS, note: str = "") -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n… (cut at {limit:,} of {len(text):,} characters{note})"


# -- reading --------------------------------------------------------------------------------
class ReadFile(Tool):
    name = "read_file"
    kind = "read"
    description = ("Read a workspace file (as the editor holds it, unsaved changes included), "
                   "with line numbers. Optional 1-based startLine/endLine for a part.")
    parameters = _object({"path": _STRING, "startLine": {"type": "integer"},
                          "endLine": {"type": "integer"}}, ["path"])

    def label(self, args: Mapping[str, Any]) -> str:
        return f"Reading {args.get('path')}…"

    def question(self, args: Mapping[str, Any], host: Host) -> str:
        return f"lspilot's agent wants to read {args.get('path')}."

    async def run(self, args: Mapping[str, Any], host: Host) -> Result:
        real = host.files.resolve(args["path"])
        shown = host.files.relative(real)
        lines = (await host.files.load(real, shown)).splitlines()
        first = max(1, int(args.get("startLine") or 1))
        last = min(len(lines), int(args.get("endLine") or len(lines)))
        if lines and first > len(lines):
            raise ToolError(f"{shown} has {len(lines)} lines; startLine {first} is past its "
                            "end.")
        width = len(str(last))
        numbered = "\n".join(f"{n:>{width}}: {lines[n - 1]}" for n in range(first, last + 1))
        header = f"{shown} (lines {first}-{last} of {len(lines)})" if lines else \
            f"{shown} (empty)"
        return Result(bounded(f"{header}\n{numbered}", note=": read a smaller range"),
                      f"{shown}: {max(0, last - first + 1)} lines")


class ListFiles(Tool):
    name = "list_files"
    kind = "read"
    description = ("List the workspace's files (.gitignore honoured), optionally only those "
                   "matching a glob such as '*.py' or 'src/**/*.ts'.")
    parameters = _object({"glob": _STRING}, [])

    def label(self, args: Mapping[str, Any]) -> str:
        glob = args.get("glob")
        return f"Listing {glob}…" if glob else "Listing the workspace's files…"

    def question(self, args: Mapping[str, Any], host: Host) -> str:
        return "lspilot's agent wants to list the workspace's files."

    async def run(self, args: Mapping[str, Any], host: Host) -> Result:
        names, more = _capped((host.files.relative(path)
                               for path in host.files.walk(args.get("glob"))), MAX_LIST)
        names.sort()
        text = "\n".join(names) if names else "(no files match)"
        if more:
            text += f"\n… and {more} more: narrow it with a glob"
        return Result(bounded(text), f"{len(names) + more} files")


class Search(Tool):
    name = "search"
    kind = "read"
    description = ("Search the workspace's files (.gitignore honoured) for a regular "
                   "expression; answers matching lines as 'path:line: text'. Optional glob.")
    parameters = _object({"pattern": _STRING, "glob": _STRING}, ["pattern"])

    def label(self, args: Mapping[str, Any]) -> str:
        return f"Searching for {args.get('pattern')}…"

    def question(self, args: Mapping[str, Any], host: Host) -> str:
        return f"lspilot's agent wants to search the workspace for {args.get('pattern')!r}."

    async def run(self, args: Mapping[str, Any], host: Host) -> Result:
        try:
            pattern = re.compile(args["pattern"])
        except re.error as exc:
            raise ToolError(f"search: {args['pattern']!r} is not a valid regular expression: "
                            f"{exc}.") from None
        def matches() -> Iterator[str]:
            for path in host.files.walk(args.get("glob")):
                shown = host.files.relative(path)
                try:
                    text = host.files.read(path, shown)
                except ToolError:
                    continue  # binary, huge or unreadable: not searched
                for number, line in enumerate(text.splitlines(), 1):
                    if pattern.search(line):
                        yield f"{shown}:{number}: {line.strip()[:300]}"

        found, more = _capped(matches(), MAX_MATCHES)
        text = "\n".join(found) if found else "(no matches)"
        if more:
            text += f"\n… and {more} more matches: narrow the pattern or the glob"
        return Result(bounded(text), f"{len(found) + more} matches")


def _capped(items: Iterable[str], limit: int) -> tuple[list[str], int]:
    """The first ``limit`` items, and how many more there were."""
    kept: list[str] = []
    more = 0
    for item in items:
        if len(kept) < limit:
            kept.append(item)
        else:
            more += 1
    return kept, more


# -- editing --------------------------------------------------------------------------------
class EditFile(Tool):
    name = "edit_file"
    kind = "edit"
    description = ("Replace the one occurrence of 'old' (exact text, whitespace included; "
                   "read the file first) with 'new' in a workspace file, as one undoable edit.")
    parameters = _object({"path": _STRING, "old": _STRING, "new": _STRING},
                         ["path", "old", "new"])

    def precheck(self, args: Mapping[str, Any], host: Host) -> None:
        _path_precheck(args, host)

    def label(self, args: Mapping[str, Any]) -> str:
        return f"Editing {args.get('path')}…"

    def question(self, args: Mapping[str, Any], host: Host) -> str:
        where = ""
        try:
            real = host.files.resolve(args["path"])
            text = host.files.read(real, args["path"])
            start = text.find(args["old"])
            if start >= 0:
                first = text.count("\n", 0, start) + 1
                last = first + args["old"].count("\n")
                where = f" lines {first}-{last}" if last > first else f" line {first}"
        except (ToolError, KeyError):
            pass
        diff = "\n".join(difflib.unified_diff(
            str(args.get("old", "")).splitlines(), str(args.get("new", "")).splitlines(),
            lineterm="", n=0))
        diff = diff.split("\n", 2)[2] if diff.count("\n") >= 2 else diff
        return (f"lspilot's agent wants to edit {args.get('path')}{where}:\n"
                f"{bounded(diff, 1500)}")

    async def run(self, args: Mapping[str, Any], host: Host) -> Result:
        real = host.files.resolve(args["path"])
        shown = host.files.relative(real)
        text = await host.files.load(real, shown)
        old, new = args["old"], args["new"]
        if not old:
            raise ToolError("edit_file: 'old' is empty; to add to a file, include the text "
                            "next to where the addition goes in 'old' and in 'new'.")
        count = text.count(old)
        if count == 0:
            raise ToolError(f"edit_file: 'old' was not found in {shown}. "
                            f"{_nearest(text, old)}Read the file again and copy the text "
                            "exactly.")
        if count > 1:
            raise ToolError(f"edit_file: 'old' occurs {count} times in {shown}; include more "
                            "of the surrounding lines so it occurs once.")
        start = text.index(old)
        await host.replace_text(real, text, start, start + len(old), new)
        first = text.count("\n", 0, start) + 1
        removed, added = old.count("\n") + 1, new.count("\n") + 1
        return Result(f"Edited {shown} at line {first}: {removed} line(s) replaced by "
                      f"{added}.", f"{shown}:{first} (-{removed} +{added})")


def _nearest(text: str, old: str) -> str:
    """What the file holds where ``old`` most likely was meant, for the model to see."""
    lines = text.splitlines()
    wanted = old.splitlines()
    if not lines or not wanted:
        return ""
    first = wanted[0].strip()
    best = difflib.get_close_matches(first, [line.strip() for line in lines], n=1, cutoff=0.5)
    if not best:
        return ""
    index = [line.strip() for line in lines].index(best[0])
    near = "\n".join(lines[index:index + max(len(wanted), 1) + 1])
    return f"Near line {index + 1} it holds:\n{bounded(near, 1500)}\n"


class CreateFile(Tool):
    name = "create_file"
    kind = "edit"
    description = "Create a new workspace file with the given content (never overwrites)."
    parameters = _object({"path": _STRING, "content": _STRING}, ["path", "content"])

    def precheck(self, args: Mapping[str, Any], host: Host) -> None:
        _path_precheck(args, host)

    def label(self, args: Mapping[str, Any]) -> str:
        return f"Creating {args.get('path')}…"

    def question(self, args: Mapping[str, Any], host: Host) -> str:
        content = str(args.get("content", ""))
        return (f"lspilot's agent wants to create {args.get('path')} "
                f"({content.count(chr(10)) + 1} lines):\n{bounded(content, 1500)}")

    async def run(self, args: Mapping[str, Any], host: Host) -> Result:
        real = host.files.resolve(args["path"])
        shown = host.files.relative(real)
        if real.exists() or real.is_symlink():
            raise ToolError(f"create_file: {shown} exists already; use edit_file to change "
                            "it.")
        await host.create_file(real, args["content"])
        return Result(f"Created {shown}.", f"{shown} created")


# -- running --------------------------------------------------------------------------------
class RunTests(Tool):
    name = "run_tests"
    kind = "run"
    description = ("Run the project's tests (the test command for the file's language), "
                   "optionally for one test file; answers passed/failed counts and output.")
    parameters = _object({"path": _STRING}, [])

    def precheck(self, args: Mapping[str, Any], host: Host) -> None:
        _path_precheck(args, host)

    def label(self, args: Mapping[str, Any]) -> str:
        return f"Running the tests{' in ' + args['path'] if args.get('path') else ''}…"

    def question(self, args: Mapping[str, Any], host: Host) -> str:
        return ("lspilot's agent wants to run the tests"
                f"{' in ' + args['path'] if args.get('path') else ''}. This runs the "
                "project's code, with the model's changes, on your machine.")

    async def run(self, args: Mapping[str, Any], host: Host) -> Result:
        path = host.files.resolve(args["path"]) if args.get("path") else None
        run = await host.run_tests(path)
        state = ("timed out" if run.timed_out else
                 f"{run.passed} passed, {run.failed} failed (exit {run.exit_code})")
        return Result(bounded(f"$ {run.command}\n{state}\n{run.output}"),
                      f"{run.passed} passed, {run.failed} failed")


class RunCommand(Tool):
    name = "run_command"
    kind = "run"
    description = ("Run one program with its arguments (argv, no shell) in the workspace "
                   "folder; answers its exit code and output.")
    parameters = _object({"argv": {"type": "array", "items": _STRING}}, ["argv"])

    def label(self, args: Mapping[str, Any]) -> str:
        return f"Running {shlex.join(args.get('argv') or [])}…"

    def question(self, args: Mapping[str, Any], host: Host) -> str:
        return (f"lspilot's agent wants to run `{shlex.join(args.get('argv') or [])}` in "
                f"{host.files.root}.")

    def remembered_as(self, args: Mapping[str, Any]) -> str:
        return f"{self.name} {shlex.join(args.get('argv') or [])}"  # this exact command

    async def run(self, args: Mapping[str, Any], host: Host) -> Result:
        argv = args["argv"]
        if not argv or not argv[0]:
            raise ToolError("run_command: 'argv' must name a program, e.g. [\"ls\", \"-l\"].")
        run = await host.run_command(argv, host.files.root)
        state = "timed out" if run.timed_out else f"exit {run.exit_code}"
        return Result(bounded(f"$ {shlex.join(argv)}\n{state}\n{run.output}"), state)


BUILTIN_TOOLS: tuple[Tool, ...] = (ReadFile(), ListFiles(), Search(), EditFile(), CreateFile(),
                                   RunTests(), RunCommand())
