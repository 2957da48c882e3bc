"""Conversations kept owner-only under the cache directory, a bounded number of them.

One JSON file per conversation (``<id>.json`` in a 0700 folder, 0600 files): a restart of
the server finds them again; past ``MAX_CONVERSATIONS`` the least recently used go.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

from attrs import define, field

from lspilot import redact

MAX_CONVERSATIONS = 50


@define
class Turn:
    role: str  # user | assistant | tool (agent mode)
    content: str  # what the model saw: a user's message with the code it was about
    shown: str = ""  # what the user typed, shown when the conversation is reopened
    # Agent mode: an assistant turn's tool calls ({"id", "name", "arguments"}), and the
    # call a tool turn answers.
    tool_calls: list[dict[str, str]] = field(factory=list)
    tool_call_id: str = ""

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.shown:
            data["shown"] = self.shown
        if self.tool_calls:
            data["toolCalls"] = self.tool_calls
        if self.tool_call_id:
            data["toolCallId"] = self.tool_call_id
        return data

    @classmethod
    def from_json(cls, data: Any) -> Turn | None:
        if not isinstance(data, dict) or data.get("role") not in ("user", "assistant", "tool") \
                or not isinstance(data.get("content"), str):
            return None
        calls = data.get("toolCalls")
        tool_calls = [c for c in calls if isinstance(c, dict) and all(
            isinstance(c.get(k), str) for k in ("id", "name", "arguments"))] if isinstance(
            calls, list) else []
        call_id = data.get("toolCallId")
        shown = data.get("shown")
        return cls(data["role"], data["content"], shown if isinstance(shown, str) else "",
                   tool_calls, call_id if isinstance(call_id, str) else "")


@define
class Conversation:
    id: str
    turns: list[Turn] = field(factory=list)
    updated: float = field(factory=time.time)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "updated": self.updated,
                "turns": [t.to_json() for t in self.turns]}

    @property
    def title(self) -> str:
        """The first message, on one line: how a list of conversations names this one."""
        first = next((t.shown or t.content for t in self.turns if t.role == "user"), "")
        line = " ".join(first.split())
        return line if len(line) <= 80 else line[:79] + "…"

    @classmethod
    def from_json(cls, data: Any) -> Conversation | None:
        if not isinstance(data, dict) or not isinstance(data.get("id"), str):
            return None
        turns = [turn for turn in (Turn.from_json(t) for t in data.get("turns", []))
                 if turn is not None]
        updated = data.get("updated")
        return cls(data["id"], turns, float(updated) if isinstance(updated, int | float)
                   else 0.0)


class ConversationStore:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def new(self) -> Conversation:
        return Conversation(f"chat-{uuid.uuid4().hex[:12]}")

    def get(self, conversation_id: str) -> Conversation | None:
        path = self._path(conversation_id)
        if path is None:
            return None
        try:
            return Conversation.from_json(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            return None

    def save(self, conversation: Conversation) -> None:
        conversation.updated = time.time()
        path = self._path(conversation.id)
        if path is None:
            return
        with contextlib.suppress(OSError):  # then it lives only as long as this session
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.folder.chmod(0o700)
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                # Never the key, though a message or an answer quoted it.
                handle.write(redact.scrub_json(json.dumps(conversation.to_json())))
            self._prune()

    def all(self) -> list[Conversation]:
        """Every kept conversation, the most recently used first."""
        found = [self.get(path.stem) for path in self.folder.glob("chat-*.json")]
        return sorted((c for c in found if c is not None), key=lambda c: -c.updated)

    def forget(self, conversation_id: str | None) -> list[str]:
        """Forget one conversation, or all; the ids forgotten."""
        paths = [self._path(conversation_id)] if conversation_id else sorted(
            self.folder.glob("chat-*.json"))
        forgotten = []
        for path in paths:
            if path is not None and path.exists():
                with contextlib.suppress(OSError):
                    path.unlink()
                    forgotten.append(path.stem)
        return forgotten

    def _prune(self) -> None:
        files = sorted(self.folder.glob("chat-*.json"), key=lambda p: p.stat().st_mtime)
        for old in files[:-MAX_CONVERSATIONS]:
            with contextlib.suppress(OSError):
                old.unlink()

    def _path(self, conversation_id: str) -> Path | None:
        # Ids are ours: anything else (a path, "..") names no conversation.
        if not conversation_id.startswith("chat-") or not conversation_id[5:].isalnum():
            return None
        return self.folder / f"{conversation_id}.json"
