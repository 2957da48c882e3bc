"""The `lspilot` program: serve LSP over stdio or TCP, or check the configuration."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import BinaryIO

from lspilot import __version__, logs


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lspilot",
        description="An AI copilot language server: explain, refactor and write tests for "
        "selected code, backed by any OpenAI-compatible endpoint.",
    )
    parser.add_argument("--version", action="version", version=f"lspilot {__version__}")
    parser.add_argument("--stdio", action="store_true", help="serve LSP on stdin/stdout (default)")
    parser.add_argument("--tcp", action="store_true", help="serve one client over TCP")
    parser.add_argument("--host", default="127.0.0.1", help="TCP host (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=2087, help="TCP port (default 2087)")
    parser.add_argument("--log-level", default=os.environ.get("LSPILOT_LOG_LEVEL", "INFO"),
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="log level")
    parser.add_argument("--log-file", metavar="PATH", default=os.environ.get("LSPILOT_LOG_FILE"),
                        help="also write the whole log to PATH (appended, owner-only); the "
                        "editor shows it otherwise (stderr until the editor is connected)")
    parser.add_argument("--local", action="store_true",
                        help="use a local model through llama.cpp, started by lspilot (the same "
                        "as LSPILOT_BASE_URL=local; needs: pip install 'lspilot[local]')")
    sub = parser.add_subparsers(dest="subcommand")
    check = sub.add_parser(
        "check",
        help="resolve the settings, print them (key redacted), send one tiny request",
    )
    check.add_argument("--settings", metavar="JSON",
                       help="settings as JSON (as initializationOptions would give them)")
    sub.add_parser(
        "acp",
        help="serve the Agent Client Protocol (ACP v1) on stdin/stdout, for editors that host "
        "agents (Zed, codecompanion.nvim, avante.nvim, agent-shell); settings from the "
        "environment and the settings file",
    )
    demo = sub.add_parser(
        "demo",
        help="play the editor: run Explain, Refactor and Write tests on a file through a real "
        "lspilot server, showing the stream, progress and diffs (files change only with --apply)",
    )
    # Defined here, not in lspilot.demo: importing the demo would slow every server start.
    demo.add_argument("file", nargs="?",
                      help="the file to work on (default: a bundled sample, in a scratch copy)")
    demo.add_argument("--range", metavar="L1-L2",
                      help="the lines to select, 1-based and inclusive (default: the whole "
                      "file; the sample's function)")
    demo.add_argument("--apply", action="store_true",
                      help="write the edits to the files (default: only show them as diffs)")
    demo.add_argument("--no-run", action="store_true",
                      help="do not run the tests Write tests wrote (by default the demo runs "
                      "them, and has them repaired, in its scratch copy of the sample)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.local:
        os.environ["LSPILOT_BASE_URL"] = "local"
    if args.subcommand == "demo":
        from lspilot.demo import main as demo

        return demo(args)
    if args.subcommand == "check":
        return asyncio.run(check(args.settings))
    logs.setup(args.log_level, args.log_file)
    if args.subcommand == "acp":
        from lspilot.acp.main import serve as serve_acp

        return serve_acp(_claim_stdout())
    channel = None if args.tcp else _claim_stdout()
    from lspilot.server import create_server  # heavy imports only when serving

    server = create_server()
    if channel is None:
        server.start_tcp(args.host, args.port)
    else:
        server.start_io(stdout=channel)
    return server.exit_code


def _claim_stdout() -> BinaryIO:
    """Give the LSP channel its own descriptor, before anything else can print.

    File descriptor 1 and ``sys.stdout`` then lead to stderr: a stray print, a C
    library or a child process that inherits stdout can never corrupt the frames.
    """
    sys.stdout.flush()
    channel = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return channel


async def check(settings_json: str | None) -> int:
    import attrs

    from lspilot.backends import backend_for
    from lspilot.keys import resolve_key_command
    from lspilot.llm.client import ChatClient
    from lspilot.llm.endpoint import Endpoint
    from lspilot.llm.errors import UpstreamError
    from lspilot.llm.wire import ChatMessage, ChatRequest
    from lspilot.local import LocalModelError, default_cache_dir
    from lspilot.local.manager import LocalModel
    from lspilot.settings import (
        ApiKey,
        Layer,
        environment_layer,
        redacted,
        resolve,
    )
    from lspilot.settings_file import settings_file_layer, settings_path
    from lspilot.usage import price_for

    file_layer, file_problems = settings_file_layer(os.environ)
    layers = [environment_layer(os.environ), file_layer]
    if settings_json:
        try:
            values = json.loads(settings_json)
        except ValueError as exc:
            print(f"lspilot check: --settings is not JSON: {exc}")
            return 1
        layers.append(Layer("--settings", values if isinstance(values, dict) else {}))
    resolved = resolve(layers)
    print(json.dumps(redacted(resolved.settings), indent=2))
    if file_layer.values:
        print(f"settings file: {settings_path(os.environ)}")
    # lspilot acp has no editor settings: the environment and the settings file are all.
    print("lspilot acp would use these settings" + (
        " without --settings (an ACP client sends none: only the environment and the "
        "settings file count)" if settings_json else
        " (the environment and the settings file)"))
    for problem in [*file_problems, *resolved.problems]:
        print(f"warning: {problem}")
    settings = resolved.settings
    if settings.api_key is None and settings.api_key_command:
        key, refused = await resolve_key_command(settings.api_key_command)
        if key is None:
            print(f"lspilot check: {refused}")
            return 1
        settings = attrs.evolve(settings, api_key=ApiKey(key))
    price = price_for(settings.model, settings.prices)
    if price is None:
        print(f"price: unknown for {settings.model} (set prices to count cost)")
    else:
        print(f"price: {settings.model}: ${price.input:g} per 1M tokens in, "
              f"${price.output:g} per 1M out")
    local = None
    if backend_for(settings).local:
        local = LocalModel(default_cache_dir())
        try:
            settings = await local.endpoint_settings(settings, None)
        except LocalModelError as exc:
            print(f"lspilot check: {exc}")
            return 1
    client = ChatClient(verify_tls=settings.verify_tls)
    request = ChatRequest(
        model=settings.model,
        messages=(ChatMessage("user", "Reply with the single word: ok"),),
        stream=False,
        max_tokens=settings.max_tokens,  # the local model's cap, or the user's maxTokens
    )
    started = time.monotonic()
    try:
        text, _usage = await client.complete(request, Endpoint.from_settings(settings))
    except UpstreamError as exc:
        print(f"lspilot check: {exc}")
        return 1
    finally:
        await client.aclose()
        if local is not None:
            await local.aclose()
    print(f"OK: {settings.model} at {settings.base_url} answered in "
          f"{time.monotonic() - started:.1f} s: {text.strip()[:80]!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
