"""Reading the API key from a secret manager: ``apiKeyCommand``, an argv list, no shell."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from lspilot.settings import KeyFormError, checked_key

log = logging.getLogger(__name__)

KEY_COMMAND_TIMEOUT = 15.0


async def resolve_key_command(argv: Sequence[str]) -> tuple[str | None, str | None]:
    """Run the command; returns (key, None) or (None, a message naming the problem)."""
    name = argv[0]
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        return None, f"apiKeyCommand: could not start {name!r}: {exc.strerror or exc}."
    try:
        out, err = await asyncio.wait_for(process.communicate(), KEY_COMMAND_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        return None, f"apiKeyCommand: {name!r} did not finish within {KEY_COMMAND_TIMEOUT:g} s."
    if process.returncode != 0:
        detail = err.decode(errors="replace").strip().splitlines()
        tail = f": {detail[-1][:200]}" if detail else ""
        return None, f"apiKeyCommand: {name!r} exited with status {process.returncode}{tail}."
    key = out.decode(errors="replace").strip()
    if not key:
        return None, f"apiKeyCommand: {name!r} printed no key."
    try:
        return checked_key(key), None
    except KeyFormError as exc:
        return None, f"apiKeyCommand: what {name!r} printed is not a key: {exc}."
