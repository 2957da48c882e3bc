"""The one place that decides "may I?": the key going to a host, tests and commands
running, agent tools, MCP servers.

The rule everywhere: only the user's own settings (environment, the settings file,
``initializationOptions``) may loosen a decision. A workspace's settings often come from
files inside the project, so what they ask for is asked about, and what they refuse stays
refused. An "always" answer approves exactly what was shown (this command, in this
folder), never whatever comes later under the same name.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Literal

from attrs import define

Ask = Callable[[str, list[str]], Awaitable[str | None]]
Policy = Literal["auto", "ask", "never"]


class Remembered:
    """Answers the user gave "always" to, kept across restarts, owner-only.

    Written atomically (a temporary file renamed over it, so a link planted at the path is
    replaced, never followed) and merged under a lock with what other lspilot processes
    sharing the cache wrote meanwhile. A file that cannot be read allows nothing.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._entries: set[str] | None = None

    def allows(self, entry: str) -> bool:
        if self._entries is None or entry not in self._entries:
            self._entries = self._read()  # another process may have allowed it since
        return entry in self._entries

    def allow(self, entry: str) -> None:
        entries = (self._entries or set()) | {entry}
        self._entries = entries
        with contextlib.suppress(OSError):  # then it is asked again after a restart
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            lock = os.open(self.path.with_name(self.path.name + ".lock"),
                           os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            try:
                fcntl.flock(lock, fcntl.LOCK_EX)
                entries |= self._read()
                self._entries = entries
                descriptor, temporary = tempfile.mkstemp(dir=self.path.parent,
                                                         prefix=".remembered-")
                try:
                    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                        json.dump(sorted(entries), handle)
                    os.replace(temporary, self.path)
                except BaseException:
                    with contextlib.suppress(OSError):
                        os.unlink(temporary)
                    raise
            finally:
                os.close(lock)

    def _read(self) -> set[str]:
        try:
            descriptor = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return set()  # missing, or a link planted in lspilot's cache: nothing allowed
        try:
            with os.fdopen(descriptor, encoding="utf-8") as handle:
                loaded = json.loads(handle.read(1_000_000))
        except (OSError, ValueError):
            return set()
        if not isinstance(loaded, list):
            return set()
        return {entry for entry in loaded if isinstance(entry, str)}


def command_entry(scope: str, argv: Sequence[str]) -> str:
    """What an "always" for ``argv`` in ``scope`` (a folder, or a purpose) remembers."""
    return json.dumps([scope, list(argv)])


@define(frozen=True)
class Question:
    """A question naming exactly what would happen, and its answers' titles."""

    message: str
    allow: str
    deny: str
    always: str | None = None  # remembered in ``remembered`` under ``entry``

    def titles(self) -> list[str]:
        return [self.allow, *([self.always] if self.always else []), self.deny]


def effective_policy(policy: Policy, chosen_by_workspace: bool) -> Policy:
    """A workspace's settings may only tighten: its "auto" is asked about."""
    if policy == "auto" and chosen_by_workspace:
        return "ask"
    return policy


async def decide(policy: Policy, question: Question, ask: Ask | None, *,
                 remembered: Remembered | None = None, entry: str | None = None) -> bool:
    """Whether to go ahead. ``ask`` None: the user cannot be asked now, which is a no."""
    if policy == "never":
        return False
    if remembered is not None and entry is not None and remembered.allows(entry):
        return True
    if policy == "auto":
        return True
    if ask is None:
        return False
    answer = await ask(question.message, question.titles())
    if answer is not None and answer == question.always and remembered is not None \
            and entry is not None:
        remembered.allow(entry)
        return True
    return answer == question.allow
