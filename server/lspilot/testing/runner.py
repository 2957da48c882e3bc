"""Running a test command: its own process group, a time limit, no API key, no stdout.

The command's output never reaches lspilot's stdout (the LSP channel): it is captured.
Its environment is lspilot's without the API key variables and without any variable whose
value holds a key lspilot knows. A cancel or the time-out ends the whole process group.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from attrs import define

from lspilot.errors import LspilotError

KEY_VARIABLES = ("LSPILOT_API_KEY", "OPENAI_API_KEY")
OUTPUT_LIMIT = 1_000_000  # bytes kept of a run's output


class TestCommandFailed(LspilotError):
    """The test command could not be started: missing, not executable."""

    kind = "test_command"

    def __init__(self, message: str, *, problem: str, hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.problem = problem  # one line, as a test run's `problem`


@define(frozen=True)
class TestRun:
    argv: tuple[str, ...]
    exit_code: int | None  # None: killed at the time-out
    output: str
    timed_out: bool
    seconds: float


# A secret this short would match inside PATH or HOME; no real key is.
MIN_CONTAINED_SECRET = 8


def clean_environment(environ: Mapping[str, str], secrets: Iterable[str]) -> dict[str, str]:
    """``environ`` without the key variables and without any variable holding a secret.

    Holding, not only equal to: ``https://me:KEY@proxy`` or ``Bearer KEY`` carry the key
    as well as ``KEY`` does.
    """
    hidden = {s for s in secrets if s}

    def holds_secret(value: str) -> bool:
        return any(value == s or (len(s) >= MIN_CONTAINED_SECRET and s in value)
                   for s in hidden)

    return {name: value for name, value in environ.items()
            if name not in KEY_VARIABLES and not holds_secret(value)}


async def run(argv: Sequence[str], cwd: Path, *, limit_seconds: float,
              env: Mapping[str, str]) -> TestRun:
    started = time.monotonic()
    try:
        process = await asyncio.create_subprocess_exec(
            *argv, cwd=cwd, env=dict(env), stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # its own process group, ended as one
        )
    except OSError as exc:
        problem = (f"the test command {argv[0]} was not found"
                   if isinstance(exc, FileNotFoundError)
                   else f"the test command {argv[0]} could not be started: "
                        f"{exc.strerror or exc}")
        raise TestCommandFailed(
            f"Could not start the test command {argv[0]!r}: {exc.strerror or exc}.",
            problem=problem,
            hint="Install it, or set the setting testCommand for this language, e.g. "
                 '{"python": ["python", "-m", "pytest", "-q", "{file}"]}.') from None
    assert process.stdout is not None
    chunks: list[bytes] = []

    async def read() -> None:
        size = 0
        assert process.stdout is not None
        while piece := await process.stdout.read(65536):
            if size < OUTPUT_LIMIT:
                chunks.append(piece)
            size += len(piece)
        await process.wait()

    timed_out = False
    try:
        await asyncio.wait_for(read(), limit_seconds)
    except TimeoutError:
        timed_out = True
        await _end_group(process)
    except asyncio.CancelledError:
        await _end_group(process)
        raise
    output = b"".join(chunks).decode("utf-8", errors="replace")
    return TestRun(tuple(argv), None if timed_out else process.returncode, output, timed_out,
                   time.monotonic() - started)


def describe(run: TestRun, cwd: Path) -> str:
    """The run in one line for the log: command, folder, exit, time (never its output)."""
    ended = "timed out" if run.timed_out else f"exit {run.exit_code}"
    return f"`{shlex.join(run.argv)}` in {cwd}: {ended} after {run.seconds:.1f} s"


async def _end_group(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        await asyncio.shield(process.wait())
