"""JSON-RPC 2.0 over newline-delimited JSON, as ACP's stdio transport carries it.

Both sides send requests: the client's (``session/prompt``) run as tasks of their own so a
``session/cancel`` or a reply to one of ours is read while they run; ours
(``fs/read_text_file``, ``session/request_permission``) wait for the client's reply.
Whatever arrives that is not a well-formed message is answered with the JSON-RPC error it
deserves (parse error, invalid request, method not found, invalid params) and the
connection carries on: a client's bad line never ends the agent.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, BinaryIO

from lspilot.transport import read_in_thread

log = logging.getLogger(__name__)

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
MAX_LINE = 64 * 1024 * 1024  # one message; a longer line is dropped with a parse error

Handler = Callable[[Any], Awaitable[Any]]
NotificationHandler = Callable[[Any], None]


class RpcError(Exception):
    """An error reply: raised by a handler (sent to the client) or from a reply to us."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_json(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


def invalid_params(message: str) -> RpcError:
    return RpcError(INVALID_PARAMS, f"Invalid params: {message}")


class Connection:
    def __init__(self, output: BinaryIO) -> None:
        self._output = output
        self._requests: dict[str, Handler] = {}
        self._notifications: dict[str, NotificationHandler] = {}
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._next_id = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.closed = asyncio.Event()

    # -- registration --------------------------------------------------------------------
    def request(self, method: str, handler: Handler) -> None:
        self._requests[method] = handler

    def notification(self, method: str, handler: NotificationHandler) -> None:
        self._notifications[method] = handler

    # -- sending -------------------------------------------------------------------------
    def send(self, message: Mapping[str, Any]) -> None:
        if self.closed.is_set():
            return
        data = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
        try:
            self._output.write(data)
            self._output.flush()
        except (BrokenPipeError, ValueError, OSError):
            log.info("The client went away.")
            self._close()

    def notify(self, method: str, params: Any) -> None:
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    async def call(self, method: str, params: Any, *, wait: float | None = None) -> Any:
        """A request to the client; its result, or RpcError when it answers an error
        (TimeoutError after ``wait`` seconds without an answer)."""
        if self.closed.is_set():
            raise ConnectionError("the client is gone")
        ident = self._next_id
        self._next_id += 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[ident] = future
        try:
            self.send({"jsonrpc": "2.0", "id": ident, "method": method, "params": params})
            return await asyncio.wait_for(future, wait)
        finally:
            self._pending.pop(ident, None)

    # -- receiving -----------------------------------------------------------------------
    def handle_line(self, line: bytes) -> None:
        line = line.strip()
        if not line:
            return
        try:
            message = json.loads(line)
        except ValueError as exc:
            self._error(None, PARSE_ERROR, f"Parse error: {exc}")
            return
        if not isinstance(message, dict):
            kind = "batches are not used by ACP" if isinstance(message, list) else \
                "a message must be a JSON object"
            self._error(None, INVALID_REQUEST, f"Invalid request: {kind}")
            return
        ident = message.get("id")
        method = message.get("method")
        if message.get("jsonrpc") != "2.0":
            self._error(ident if _valid_id(ident) else None, INVALID_REQUEST,
                        'Invalid request: "jsonrpc" must be "2.0"')
            return
        if method is None and ("result" in message or "error" in message):
            self._reply_arrived(message)
            return
        if not isinstance(method, str):
            self._error(ident if _valid_id(ident) else None, INVALID_REQUEST,
                        'Invalid request: "method" must be a string')
            return
        if "id" not in message:
            self._notification_arrived(method, message.get("params"))
        elif not _valid_id(ident):
            self._error(None, INVALID_REQUEST, 'Invalid request: "id" must be a string or '
                        "a number")
        else:
            self._request_arrived(ident, method, message.get("params"))

    def _request_arrived(self, ident: Any, method: str, params: Any) -> None:
        handler = self._requests.get(method)
        if handler is None:
            self._error(ident, METHOD_NOT_FOUND, f"Method not found: {method}")
            return
        task = asyncio.get_running_loop().create_task(self._answer(ident, method, handler,
                                                                   params))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, ident: Any, method: str, handler: Handler, params: Any) -> None:
        try:
            result = await handler(params)
        except RpcError as exc:
            log.info("%s answered an error: %s", method, exc.message)
            self.send({"jsonrpc": "2.0", "id": ident, "error": exc.to_json()})
            return
        except asyncio.CancelledError:
            self._error(ident, INTERNAL_ERROR, f"{method} was stopped: lspilot is exiting")
            raise
        except Exception as exc:  # a bug of ours answers an error; the agent lives on
            log.exception("%s failed", method)
            self._error(ident, INTERNAL_ERROR, f"Internal error: {exc!r}")
            return
        self.send({"jsonrpc": "2.0", "id": ident, "result": result})

    def _notification_arrived(self, method: str, params: Any) -> None:
        handler = self._notifications.get(method)
        if handler is None:
            log.debug("Ignored the notification %s", method)
            return
        try:
            handler(params)
        except RpcError as exc:  # a notification gets no answer: the log says it
            log.warning("%s: %s", method, exc.message)
        except Exception:
            log.exception("%s failed", method)

    def _reply_arrived(self, message: Mapping[str, Any]) -> None:
        ident = message.get("id")
        future = self._pending.get(ident) if isinstance(ident, int) else None
        if future is None or future.done():
            log.debug("A reply to no request of ours (id %r)", ident)
            return
        error = message.get("error")
        if error is not None:
            code = error.get("code", INTERNAL_ERROR) if isinstance(error, dict) else \
                INTERNAL_ERROR
            text = error.get("message", "") if isinstance(error, dict) else str(error)
            data = error.get("data") if isinstance(error, dict) else None
            future.set_exception(RpcError(int(code) if isinstance(code, int) else
                                          INTERNAL_ERROR, str(text), data))
        else:
            future.set_result(message.get("result"))

    def _error(self, ident: Any, code: int, message: str) -> None:
        log.warning("%s", message)
        self.send({"jsonrpc": "2.0", "id": ident, "error": {"code": code, "message": message}})

    def _close(self) -> None:
        self.closed.set()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectionError("the client is gone"))

    # -- the loop ------------------------------------------------------------------------
    async def serve(self, fd: int, read_size: int = 65536) -> None:
        """Read lines from ``fd`` until it ends (the client is gone)."""
        chunks = read_in_thread(fd, "lspilot-acp-stdin", read_size)
        buffer = bytearray()
        while data := await chunks.get():
            buffer += data
            while (end := buffer.find(b"\n")) >= 0:
                line = bytes(buffer[:end])
                del buffer[:end + 1]
                self.handle_line(line)
            if len(buffer) > MAX_LINE:
                buffer.clear()
                self._error(None, PARSE_ERROR, "Parse error: a message longer than "
                            f"{MAX_LINE:,} bytes was dropped")
        if buffer.strip():
            self.handle_line(bytes(buffer))
        log.info("The client closed the connection.")
        self._close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2)


def _valid_id(ident: Any) -> bool:
    return isinstance(ident, str) or (isinstance(ident, int) and not isinstance(ident, bool))
