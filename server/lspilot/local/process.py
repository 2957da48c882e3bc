"""llama.cpp's OpenAI-compatible server as a child process that never outlives lspilot.

Three guarantees, because stdout is the LSP channel and orphans are not acceptable:

* the child gets ``stdin=DEVNULL`` and its stdout/stderr go to a log file, never to
  lspilot's own descriptors;
* it runs in its own process group, so stopping it stops everything it started;
* on Linux it asks the kernel for ``SIGKILL`` when its parent dies
  (``prctl(PR_SET_PDEATHSIG)``), which covers ``kill -9`` of lspilot; an ``atexit`` hook
  and :meth:`LlamaServer.stop` cover the orderly ways out.

The parent-death signal fires when the *thread* that forked the child ends, so the child
is started from the event loop's thread (the main thread), never from a worker thread.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import ctypes.util
import importlib.util
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import httpx

from lspilot.local import LocalModelError, MissingExtra, build

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
# Modules `python -m llama_cpp.server` needs: llama-cpp-python and its [server] extra.
_SERVER_MODULES = ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "pydantic_settings")
# Environment variables llama_cpp.server's settings would read on their own (API_KEY would
# make it demand a key, CONFIG_FILE would replace our arguments), and lspilot's secrets.
_SCRUBBED_ENV = {
    "API_KEY", "CONFIG_FILE", "HOST", "PORT", "MODEL", "MODEL_ALIAS", "CHAT_FORMAT",
    "SSL_KEYFILE", "SSL_CERTFILE", "ROOT_PATH", "INTERRUPT_REQUESTS", "N_CTX", "VERBOSE",
    "LSPILOT_API_KEY", "OPENAI_API_KEY",
}


def check_installed() -> None:
    """Raise :class:`MissingExtra` unless llama.cpp's server can be started."""
    missing = [name for name in _SERVER_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise MissingExtra(f"llama-cpp-python[server] ({', '.join(missing)} missing)")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child get SIGKILL when lspilot dies (Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    prctl = libc.prctl  # looked up before the fork: nothing but syscalls after it
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def child_environment(environ: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in environ.items() if k.upper() not in _SCRUBBED_ENV}


class LlamaServer:
    """One ``python -m llama_cpp.server`` on 127.0.0.1 for one model file."""

    def __init__(self, model: Path, log_path: Path, *, context: int = 8192,
                 chat_format: str | None = None) -> None:
        self.model = model
        # None: the chat template in the file's metadata (llama.cpp's fallback without one).
        self.chat_format = chat_format
        self.log_path = log_path
        self.context = context
        self.process: subprocess.Popen[bytes] | None = None
        # Resolves with the exit code the moment the process ends, whoever ended it.
        self.exited: asyncio.Future[int] | None = None
        self.stopping = False  # set by stop(): an exit we asked for is not a crash
        self.base_url = ""
        self.started_in = 0.0
        self._atexit_registered = False

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def command(self, port: int) -> list[str]:
        chat_format = ["--chat_format", self.chat_format] if self.chat_format else []
        return [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(self.model),
            "--host", "127.0.0.1", "--port", str(port),
            "--n_ctx", str(self.context),
            "--model_alias", "local",
            *chat_format,
        ]

    async def start(self, wait_seconds: float = 180.0) -> str:
        """Start the server and wait until it answers; give its ``/v1`` URL."""
        check_installed()
        started = time.monotonic()
        for attempt in range(3):  # the free port may be taken between probe and bind
            port = free_port()
            self._spawn(port)
            try:
                await self._wait_ready(port, wait_seconds)
            except _ExitedEarly as exc:
                if "address already in use" in exc.output.lower() and attempt < 2:
                    continue
                error = LocalModelError(
                    f"llama.cpp's server {describe_exit(exc.code)} while starting"
                    f"{'; its log ends: ' + exc.output if exc.output else ''} "
                    f"(log: {self.log_path}).", hint=exit_hint(exc.code),
                )
                error.exit_code = exc.code
                raise error from None
            except BaseException:
                self.stop()
                raise
            self.base_url = f"http://127.0.0.1:{port}/v1"
            self.started_in = time.monotonic() - started
            log.info("llama.cpp server (pid %s) ready at %s in %.1f s", self.pid,
                     self.base_url, self.started_in)
            return self.base_url
        raise LocalModelError("llama.cpp's server found no free port")  # pragma: no cover

    def _spawn(self, port: int) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as out:
            self.process = subprocess.Popen(
                self.command(port),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=child_environment(os.environ),
                process_group=0,
                preexec_fn=_die_with_parent(),
                close_fds=True,
            )
        self.exited = _watch_exit(self.process)
        if not self._atexit_registered:
            atexit.register(self.stop)
            self._atexit_registered = True
        log.info("Started llama.cpp's server (pid %s) on 127.0.0.1:%s; its log: %s",
                 self.process.pid, port, self.log_path)

    async def _wait_ready(self, port: int, wait_seconds: float) -> None:
        deadline = time.monotonic() + wait_seconds
        url = f"http://127.0.0.1:{port}/v1/models"
        async with httpx.AsyncClient(trust_env=False, timeout=2.0) as http:
            while True:
                assert self.process is not None
                code = self.process.poll()
                if code is not None:
                    raise _ExitedEarly(code, self._log_tail())
                try:
                    response = await http.get(url)
                    if response.status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise LocalModelError(
                        f"llama.cpp's server did not answer within {wait_seconds:.0f} s "
                        f"(log: {self.log_path})"
                    )
                await asyncio.sleep(0.1)

    def log_tail(self, lines: int = 3) -> str:
        """The last lines of the server's log, for a message about its end."""
        return self._log_tail(lines)

    def _log_tail(self, lines: int = 3) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        tail = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
        return " | ".join(tail)[-500:]

    def stop(self, grace: float = 3.0) -> None:
        """Stop the server and its process group: SIGTERM, then SIGKILL after ``grace``."""
        process = self.process
        if process is None:
            return
        self.stopping = True
        self.process = None
        if process.poll() is None:
            _signal_group(process.pid, signal.SIGTERM)
            try:
                process.wait(grace)
            except subprocess.TimeoutExpired:
                _signal_group(process.pid, signal.SIGKILL)
                process.wait(5)
        # Anything it started in its group goes too.
        _signal_group(process.pid, signal.SIGKILL)
        log.info("Stopped llama.cpp's server (pid %s).", process.pid)

    async def aclose(self) -> None:
        """:meth:`stop` without blocking the event loop."""
        if self.process is not None:
            await asyncio.to_thread(self.stop)


def describe_exit(code: int) -> str:
    """How a process ended, in words: ``exited with code 1``, ``was killed by SIGKILL``."""
    number = -code if code < 0 else code - 128 if 128 < code < 128 + 65 else 0
    if not number:
        return f"exited with code {code}"
    try:
        name = signal.Signals(number).name
    except ValueError:
        return f"was killed by signal {number}"
    meaning = {
        signal.SIGILL: "illegal instruction",
        signal.SIGKILL: "killed: out of memory, or by hand",
        signal.SIGSEGV: "segmentation fault",
        signal.SIGBUS: "bus error",
        signal.SIGABRT: "aborted",
        signal.SIGTERM: "asked to stop",
    }.get(signal.Signals(number), signal.strsignal(number) or name)
    return f"was killed by {name} ({meaning})"


def exit_hint(code: int) -> str:
    """What to do about an exit: the fix for the exits that have one."""
    if code in (-signal.SIGILL, 128 + signal.SIGILL):
        missing = build.missing_cpu_flags()
        if missing:
            return (f"This CPU lacks {', '.join(missing)}, which llama.cpp needs: the local "
                    "model cannot run here; set baseUrl and apiKey to an endpoint instead.")
        return ("llama.cpp was built for CPU features this machine does not have (a native "
                f"build from another machine). Reinstall it with: {build.reinstall_command()}")
    if code in (-signal.SIGKILL, 128 + signal.SIGKILL):
        return "If it ran out of memory, close other programs or set localModel to a smaller model."
    return "Its log above says more; lspilot starts it again on the next request."


def _watch_exit(process: subprocess.Popen[bytes]) -> asyncio.Future[int]:
    """A future that gets ``process``'s exit code as soon as it exits.

    A pidfd becomes readable when the process ends, so the event loop hears of a crash
    at once instead of on the next poll. Where there is no pidfd, poll every 100 ms.
    """
    loop = asyncio.get_running_loop()
    exited: asyncio.Future[int] = loop.create_future()

    def reap() -> bool:
        code = process.poll()
        if code is None:
            return False
        if not exited.done():
            exited.set_result(code)
        return True

    try:
        pidfd = os.pidfd_open(process.pid)
    except (AttributeError, OSError):
        async def poll() -> None:
            while not reap():  # noqa: ASYNC110 - a child's exit has no event to wait on here
                await asyncio.sleep(0.1)

        loop.create_task(poll()).add_done_callback(lambda _: None)
        return exited

    def readable() -> None:
        if reap():
            loop.remove_reader(pidfd)
            os.close(pidfd)

    loop.add_reader(pidfd, readable)
    return exited


class _ExitedEarly(Exception):
    def __init__(self, code: int, output: str) -> None:
        super().__init__(code, output)
        self.code = code
        self.output = output


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
