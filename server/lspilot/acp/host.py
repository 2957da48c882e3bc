"""The agent's tools with an ACP client: files read and written through ``fs/*`` when the
client offers it (its unsaved buffers seen, edits landing in the editor), commands run in
its terminal (``terminal/*``) when it offers one; otherwise lspilot reads, writes and runs
itself, inside the session's ``cwd``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lspilot import logs
from lspilot.acp import schema
from lspilot.acp.rpc import Connection, RpcError
from lspilot.agent.files import ToolError, WorkspaceFiles
from lspilot.agent.tools import CommandRun, TestsRun
from lspilot.features.agent_host import LANGUAGES, PROJECT_FILES
from lspilot.settings import Settings
from lspilot.testing import commands, report, runner

log = logging.getLogger(__name__)

OUTPUT_BYTE_LIMIT = 1_000_000  # what the client's terminal keeps of a run's output
CLIENT_FS_TIMEOUT = 30.0  # s: a file read or write the client never answers fails the step


class AcpHost:
    def __init__(self, connection: Connection, session_id: str, cwd: Path,
                 settings: Settings, caps: schema.ClientCapabilities,
                 on_terminal: Callable[[str], None]) -> None:
        self.connection = connection
        self.session_id = session_id
        self.settings = settings
        self.caps = caps
        self._on_terminal = on_terminal  # a client terminal started for the current step
        # What the client last gave or took for each file: search sees unsaved buffers
        # the agent has read or written.
        self.buffers: dict[Path, str] = {}
        # The whole file before and after each edit: the diff the client shows.
        self.diffs: dict[Path, tuple[str | None, str]] = {}
        fetch = self._fetch if caps.read_text_file else None
        self.files = WorkspaceFiles([cwd], settings.context_exclude, self.buffers.get, fetch)

    # -- files ----------------------------------------------------------------------------
    async def _fetch(self, path: Path) -> str | None:
        try:
            result = await self.connection.call(
                "fs/read_text_file", {"sessionId": self.session_id, "path": str(path)},
                wait=CLIENT_FS_TIMEOUT)
        except (RpcError, TimeoutError, ConnectionError) as exc:
            # Most often the file is not there: the disk says so in its own words.
            log.debug("fs/read_text_file %s: %s", path, exc)
            return None
        content = result.get("content") if isinstance(result, dict) else None
        if not isinstance(content, str):
            return None
        self.buffers[path] = content
        return content

    async def _write(self, path: Path, content: str) -> None:
        if self.caps.write_text_file:
            try:
                await self.connection.call(
                    "fs/write_text_file",
                    {"sessionId": self.session_id, "path": str(path), "content": content},
                    wait=CLIENT_FS_TIMEOUT)
            except (RpcError, TimeoutError, ConnectionError) as exc:
                raise ToolError(f"The editor did not write the file ({exc or 'no answer'}); "
                                "it is unchanged.") from None
            self.buffers[path] = content
            return
        _write_disk(path, content)

    async def replace_text(self, path: Path, expected: str, start: int, end: int,
                           new: str) -> None:
        after = expected[:start] + new + expected[end:]
        await self._write(path, after)
        self.diffs[path] = (expected, after)

    async def create_file(self, path: Path, content: str) -> None:
        await self._write(path, content)
        self.diffs[path] = (None, content)

    # -- running --------------------------------------------------------------------------
    def chosen_by_workspace(self, tool: str) -> bool:
        return False  # lspilot acp reads no workspace settings: all are the user's own

    def test_command(self, path: Path | None) -> tuple[str, ...] | None:
        language = LANGUAGES.get(path.suffix) if path is not None else None
        root = self.files.root
        if language is None:
            language = next((lang for name, lang in PROJECT_FILES if (root / name).exists()),
                            "python")
        return commands.command_for(language, self.settings.test_command, root)

    async def run_tests(self, path: Path | None) -> TestsRun:
        template = self.test_command(path)
        if template is None:
            raise ToolError("No test command is known for this project: the user can set "
                            "testCommand.")
        root = self.files.root
        argv = commands.expand(template, root, path if path is not None else root)
        run = await self.run_command(argv, root)
        found = report.counts(run.output, run.exit_code)
        return TestsRun(commands.shown(argv), found.passed, found.failed, run.exit_code,
                        report.trimmed(run.output), run.timed_out)

    async def run_command(self, argv: Sequence[str], cwd: Path) -> CommandRun:
        if self.caps.terminal:
            return await self._in_terminal(argv, cwd)
        try:
            run = await runner.run(argv, cwd, limit_seconds=self.settings.test_timeout,
                                   env=runner.clean_environment(os.environ, logs.secrets()))
        except runner.TestCommandFailed as exc:
            raise ToolError(str(exc)) from None
        return CommandRun(run.exit_code, logs.scrub(run.output), run.timed_out)

    async def _in_terminal(self, argv: Sequence[str], cwd: Path) -> CommandRun:
        """One run in the client's terminal: created, shown in the step, waited for (at
        most testTimeout), read, released; killed when the turn is cancelled."""
        ids = {"sessionId": self.session_id}
        try:
            created = await self.connection.call("terminal/create", {
                **ids, "command": argv[0], "args": list(argv[1:]), "cwd": str(cwd),
                "env": [], "outputByteLimit": OUTPUT_BYTE_LIMIT}, wait=CLIENT_FS_TIMEOUT)
        except (RpcError, TimeoutError, ConnectionError) as exc:
            raise ToolError(f"The editor's terminal did not start {argv[0]!r}: "
                            f"{exc or 'no answer'}.") from None
        terminal = created.get("terminalId") if isinstance(created, dict) else None
        if not isinstance(terminal, str):
            raise ToolError("The editor's terminal gave no terminalId.")
        ids["terminalId"] = terminal
        self._on_terminal(terminal)
        timed_out = False
        try:
            try:
                status = await self.connection.call("terminal/wait_for_exit", ids,
                                                    wait=self.settings.test_timeout)
            except TimeoutError:
                timed_out = True
                status = None
                await self.connection.call("terminal/kill", ids, wait=CLIENT_FS_TIMEOUT)
            output = await self.connection.call("terminal/output", ids,
                                                wait=CLIENT_FS_TIMEOUT)
        except asyncio.CancelledError:
            await _quietly(self.connection.call("terminal/kill", ids, wait=5))
            raise
        except (RpcError, ConnectionError) as exc:
            raise ToolError(f"The editor's terminal failed: {exc}.") from None
        finally:
            await _quietly(self.connection.call("terminal/release", ids, wait=5))
        text = output.get("output", "") if isinstance(output, dict) else ""
        code = _exit_code(status) if not timed_out else None
        if code is None and not timed_out and isinstance(output, dict):
            code = _exit_code(output.get("exitStatus"))
        return CommandRun(code, logs.scrub(str(text)), timed_out)


def _write_disk(path: Path, content: str) -> None:
    """A small file, written at once (no client to write it)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
    except OSError as exc:
        raise ToolError(f"Could not write the file: {exc.strerror or exc}.") from None


def _exit_code(status: Any) -> int | None:
    code = status.get("exitCode") if isinstance(status, dict) else None
    return code if isinstance(code, int) else None


async def _quietly(call: Any) -> None:
    """A clean-up request that must neither fail the step nor be cut short by a cancel."""
    with contextlib.suppress(Exception, asyncio.CancelledError):
        await asyncio.shield(call)
