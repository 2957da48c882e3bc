"""The floor: the least a pygls 2 + httpx server does for ``lspilot.refactor``.

``python -m benchmarks.floor_server`` serves LSP on stdio with a stock pygls 2
``LanguageServer`` (its own ``start_io``) and one ``httpx.AsyncClient``, doing the same
work lspilot does for ``workspace/executeCommand`` ``lspilot.refactor``
``{uri, range, instruction}`` on an opened document, and nothing more:

- ``window/workDoneProgress/create``, then ``begin``;
- POST the chat request (``stream: true``) to ``initializationOptions.baseUrl``;
- read the SSE with ``aiter_bytes``, ``json.loads`` each ``data:`` line;
- a progress ``report`` and an ``lspilot/stream`` notification per coalesced flush (the
  first text at once, then at most one flush per 50 ms, the rest at the end);
- the code out of the answer (a ``` fence stripped), one ``workspace/applyEdit``
  replacing the range (a versioned ``TextDocumentEdit``), ``end``, the final
  ``lspilot/stream`` (``done: true``);
- the answer ``{status, text, usage, error}``.

No retries, no settings layers, no validation, no cancellation: the floor the benchmarks
compare lspilot with (``floor_instant``, ``floor_paced``, ``floor_inline``). It also answers
``textDocument/codeAction`` with ``[]`` (the harness's readiness probe) and
``textDocument/inlineCompletion`` with one canned item (the inline floor), and
``textDocument/copilotInlineEdit`` (the ``nes`` floor) with the least a next-edit server
does: one request per document (a newer one cancels the older, which closes its
upstream), 250 ms after the last change, a chat prompt with the document's change since
the previous request as a unified diff and the lines around the cursor with an editable
region (lspilot's markers and sizes), the streamed answer's fenced code diffed line by
line against the region, one edit per changed run of whole lines.

``python -m benchmarks.floor_server --reader URL`` is the bare client: for each line on
stdin, ``httpx`` or ``raw``, it reads one streamed answer from ``URL`` (the same request and
the same decoding as the server; ``raw``: a hand-written HTTP/1.1 request on an asyncio
connection, no HTTP library) and prints ``{"cpu": s, "wall": s, "chars": n}``, the CPU time
of this process (``time.process_time``) over that one read.
"""

from __future__ import annotations

import asyncio
import difflib
import json
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
from lsprotocol import types
from pygls.lsp.server import LanguageServer

INTERVAL = 0.05  # coalescing, as lspilot's
TITLE = "lspilot: Refactor"
SYSTEM = (
    "You are lspilot, a code assistant inside the user's editor. You rewrite the "
    "selected code as asked. Output contract: reply with exactly one fenced code block "
    "(```python) holding the complete replacement for the selected code and nothing "
    "else: no explanation before or after it. Keep the code's behaviour unless told "
    "otherwise, keep its indentation style, and keep names that other code uses."
)


class Coalescer:
    """The first text at once, then at most one flush per INTERVAL; close flushes."""

    def __init__(self, flush: Callable[[str], None]) -> None:
        self.flush = flush
        self.pending: list[str] = []
        self.last = float("-inf")
        self.timer: asyncio.TimerHandle | None = None

    def push(self, text: str) -> None:
        self.pending.append(text)
        if self.timer is None:
            wait = self.last + INTERVAL - time.monotonic()
            if wait <= 0:
                self.send()
            else:
                self.timer = asyncio.get_running_loop().call_later(wait, self.send)

    def send(self) -> None:
        self.timer = None
        if self.pending:
            text = "".join(self.pending)
            self.pending.clear()
            self.last = time.monotonic()
            self.flush(text)

    def close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.send()


def chat_body(model: str, system: str, user: str) -> dict[str, Any]:
    return {"model": model, "stream": True, "stream_options": {"include_usage": True},
            "messages": [{"role": "system", "content": system},
                         {"role": "user", "content": user}]}


async def read_stream(
    client: httpx.AsyncClient, url: str, body: dict[str, Any], key: str,
    on_text: Callable[[str], None],
) -> dict[str, Any] | None:
    """POST ``body`` and hand on each content delta; returns the usage chunk's usage."""
    usage: dict[str, Any] | None = None
    headers = {"authorization": f"Bearer {key}", "accept": "text/event-stream"}
    async with client.stream("POST", url, json=body, headers=headers) as response:
        buffer = b""
        async for data in response.aiter_bytes():  # to the end: the connection is reused
            buffer += data
            *events, buffer = buffer.split(b"\n\n")
            for raw in events:
                if not raw.startswith(b"data: ") or raw == b"data: [DONE]":
                    continue
                chunk = json.loads(raw[6:])
                if chunk.get("usage"):
                    usage = chunk["usage"]
                for choice in chunk.get("choices") or ():
                    content = choice["delta"].get("content")
                    if content:
                        on_text(content)
    return usage


def strip_fence(answer: str) -> str:
    lines = answer.splitlines(keepends=True)
    opening = next((i for i, line in enumerate(lines) if line.lstrip().startswith("```")), None)
    if opening is None:
        return answer
    body = lines[opening + 1:]
    closing = next((i for i, line in enumerate(body) if line.lstrip().startswith("```")),
                   len(body))
    return "".join(body[:closing])


NES_DEBOUNCE = 0.25  # as lspilot's next edits
NES_BEFORE, NES_AFTER, NES_CONTEXT = 4, 8, 30  # lspilot's editable region and context
NES_START, NES_END = "<|editable_region_start|>", "<|editable_region_end|>"
NES_CURSOR = "<|user_cursor_is_here|>"
NES_SYSTEM = ("Predict the programmer's next edit from their recent edit. Rewrite the code "
              f"between {NES_START} and {NES_END}; answer with one fenced code block.")


def nes_edits(lines: list[str], first: int, region: list[str], new: list[str], uri: str,
              version: int) -> list[dict[str, Any]]:
    """One edit per changed run of whole lines (ASCII: characters are UTF-16 units)."""
    edits = []
    matcher = difflib.SequenceMatcher(a=region, b=new, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        text = "".join(line + "\n" for line in new[j1:j2])
        range_ = {"start": {"line": first + i1, "character": 0},
                  "end": {"line": first + i2, "character": 0}}
        edits.append({"text": text, "newText": text, "range": range_,
                      "textDocument": {"uri": uri, "version": version}})
    return edits


def make_server() -> LanguageServer:
    server = LanguageServer("lspilot-floor", "0")
    options: dict[str, Any] = {}
    http: list[httpx.AsyncClient] = []  # made on the first refactor, as lspilot does

    @server.feature(types.INITIALIZE)
    def initialize(ls: LanguageServer, params: types.InitializeParams) -> None:
        options.update(params.initialization_options or {})

    @server.feature(types.TEXT_DOCUMENT_CODE_ACTION)
    def code_action(ls: LanguageServer, params: types.CodeActionParams) -> list[Any]:
        return []

    @server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION)
    def inline(ls: LanguageServer, params: types.InlineCompletionParams
               ) -> types.InlineCompletionList:
        position = params.position
        return types.InlineCompletionList(items=[types.InlineCompletionItem(
            insert_text="return total\n",
            range=types.Range(start=position, end=position))])

    changed: dict[str, float] = {}  # uri → when its last change was handled
    seen: dict[str, str] = {}  # uri → its text at the previous next-edit request
    asking: dict[str, asyncio.Task[list[dict[str, Any]]]] = {}

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: LanguageServer, params: types.DidOpenTextDocumentParams) -> None:
        seen[params.text_document.uri] = params.text_document.text

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: LanguageServer, params: types.DidChangeTextDocumentParams) -> None:
        changed[params.text_document.uri] = time.monotonic()

    async def next_edit(ls: LanguageServer, uri: str, line: int) -> list[dict[str, Any]]:
        quiet = changed.get(uri, 0.0) + NES_DEBOUNCE - time.monotonic()
        if quiet > 0:
            await asyncio.sleep(quiet)
        document = ls.workspace.get_text_document(uri)
        version, source = document.version or 0, document.source
        lines = source.split("\n")
        first, last = max(0, line - NES_BEFORE), min(len(lines), line + NES_AFTER + 1)
        region = lines[first:last]
        diff = "".join(difflib.unified_diff(seen.get(uri, source).splitlines(keepends=True),
                                            source.splitlines(keepends=True), n=1))
        seen[uri] = source
        code = "\n".join([*lines[max(0, first - NES_CONTEXT):first], NES_START,
                          *region[:line - first], NES_CURSOR + region[line - first],
                          *region[line - first + 1:], NES_END, *lines[last:last + NES_CONTEXT]])
        name = document.path.rsplit("/", 1)[-1]
        user = (f"File: {name} (python)\n\nRecent edits:\n```diff\n{diff}```\n\n"
                f"Code:\n```python\n{code}\n```")
        if not http:
            http.append(httpx.AsyncClient(headers={"user-agent": "lspilot-floor"}))
        parts: list[str] = []
        await read_stream(http[0], options["baseUrl"].rstrip("/") + "/chat/completions",
                          chat_body(options.get("model", "bench-model"), NES_SYSTEM, user),
                          options.get("apiKey", ""), parts.append)
        current = ls.workspace.get_text_document(uri)
        if current.version != version:
            return []
        code = strip_fence("".join(parts))
        new = (code[:-1] if code.endswith("\n") else code).split("\n")
        return nes_edits(lines, first, region, new, uri, version)

    @server.feature("textDocument/copilotInlineEdit")
    async def copilot_inline_edit(ls: LanguageServer, params: Any) -> dict[str, Any]:
        uri = str(params.textDocument.uri)
        previous = asking.pop(uri, None)
        if previous is not None:
            previous.cancel()  # superseded: its upstream stream is closed
        task = asyncio.get_running_loop().create_task(
            next_edit(ls, uri, int(params.position.line)))
        asking[uri] = task
        try:
            return {"edits": await task}
        except asyncio.CancelledError:
            if not task.cancelled():
                raise  # the request itself was cancelled
            return {"edits": []}
        finally:
            if asking.get(uri) is task:
                del asking[uri]

    @server.command("lspilot.refactor")
    async def refactor(ls: LanguageServer, *args: Any) -> dict[str, Any]:
        arguments = args[0]
        uri: str = arguments["uri"]
        start, end = arguments["range"]["start"], arguments["range"]["end"]
        document = ls.workspace.get_text_document(uri)
        version = document.version
        lines = document.lines
        selected = "".join(lines[start["line"]:end["line"]])  # whole lines: the benchmark's
        token = f"lspilot-{uuid.uuid4()}"
        progress = ls.work_done_progress
        await progress.create_async(token)
        progress.begin(token, types.WorkDoneProgressBegin(
            title=TITLE, message="Asking the model…", cancellable=True))
        parts: list[str] = []
        chars = 0

        def flush(delta: str) -> None:
            ls.protocol.notify("lspilot/stream", {
                "token": token, "command": "lspilot.refactor", "action": "refactor",
                "uri": uri, "delta": delta, "done": False})
            progress.report(token, types.WorkDoneProgressReport(
                message=f"{chars:,} chars", cancellable=True))

        coalescer = Coalescer(flush)

        def on_text(text: str) -> None:
            nonlocal chars
            chars += len(text)
            parts.append(text)
            coalescer.push(text)

        if not http:
            http.append(httpx.AsyncClient(headers={"user-agent": "lspilot-floor"}))
        user = (f"Rewrite the selected code.\n\nFile: {document.path}\n```python\n"
                f"{document.source}```\n\nThe selected code:\n```python\n{selected}```\n\n"
                f"Instruction from the user: {arguments.get('instruction') or ''}")
        try:
            usage = await read_stream(
                http[0], options["baseUrl"].rstrip("/") + "/chat/completions",
                chat_body(options.get("model", "bench-model"), SYSTEM, user),
                options.get("apiKey", ""), on_text)
        finally:
            coalescer.close()
        text = "".join(parts)
        edit = types.WorkspaceEdit(document_changes=[types.TextDocumentEdit(
            text_document=types.OptionalVersionedTextDocumentIdentifier(uri=uri, version=version),
            edits=[types.TextEdit(
                range=types.Range(start=types.Position(start["line"], start["character"]),
                                  end=types.Position(end["line"], end["character"])),
                new_text=strip_fence(text))])])
        await ls.workspace_apply_edit_async(
            types.ApplyWorkspaceEditParams(edit=edit, label=TITLE))
        progress.end(token, types.WorkDoneProgressEnd(message="Done"))
        progress.tokens.pop(token, None)  # as lspilot: the token map must not grow
        ls.protocol.notify("lspilot/stream", {
            "token": token, "command": "lspilot.refactor", "action": "refactor",
            "uri": uri, "delta": "", "done": True})
        return {"status": "done", "text": text, "error": None, "usage": usage and {
            "promptTokens": usage.get("prompt_tokens"),
            "completionTokens": usage.get("completion_tokens"),
            "totalTokens": usage.get("total_tokens")}}

    return server


class RawReader:
    """No HTTP library: one kept-alive asyncio connection, the request written by hand,
    the body read until its last chunk; the SSE decoded as ``read_stream`` does."""

    def __init__(self, url: str) -> None:
        split = httpx.URL(url)
        self.host, self.port, self.path = split.host, split.port or 80, split.raw_path
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def read(self, body: dict[str, Any], on_text: Callable[[str], None]) -> None:
        if self.streams is None:
            self.streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self.streams
        payload = json.dumps(body).encode()
        writer.write(b"POST %b HTTP/1.1\r\nhost: %b\r\ncontent-type: application/json\r\n"
                     b"content-length: %d\r\n\r\n%b"
                     % (self.path, self.host.encode(), len(payload), payload))
        buffer = b""
        while not buffer.endswith(b"\r\n0\r\n\r\n"):
            data = await reader.read(65536)
            if not data:
                raise ConnectionError("the upstream closed the connection")
            buffer += data
        _, _, chunked = buffer.partition(b"\r\n\r\n")
        events, position = [], 0  # undo the chunked encoding, then split the events
        while (end := chunked.find(b"\r\n", position)) != -1:
            size = int(chunked[position:end], 16)
            events.append(chunked[end + 2:end + 2 + size])
            position = end + 4 + size
        for raw in b"".join(events).split(b"\n\n"):
            if raw.startswith(b"data: ") and raw != b"data: [DONE]":
                for choice in json.loads(raw[6:]).get("choices") or ():
                    if content := choice["delta"].get("content"):
                        on_text(content)


def stream_reader(url: str) -> None:
    """The bare clients: for each line on stdin (``httpx`` or ``raw``) one streamed read,
    and its CPU time and wall time on stdout."""
    loop = asyncio.new_event_loop()
    client = httpx.AsyncClient(headers={"user-agent": "lspilot-floor"})
    raw = RawReader(url)
    body = chat_body("bench-model", SYSTEM, "Rewrite the selected code.")
    for line in sys.stdin:
        parts: list[str] = []
        cpu, wall = time.process_time(), time.perf_counter()
        if line.strip() == "raw":
            loop.run_until_complete(raw.read(body, parts.append))
        else:
            loop.run_until_complete(read_stream(client, url, body, "sk-bench", parts.append))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        print(json.dumps({"cpu": cpu, "wall": wall, "chars": len("".join(parts))}), flush=True)
    loop.run_until_complete(client.aclose())
    loop.close()


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--reader":
        stream_reader(sys.argv[2])
    else:
        make_server().start_io()


if __name__ == "__main__":
    main()
