"""Chat's pure parts: the turn's messages within budget, code blocks, #file:, the store."""

from __future__ import annotations

import os
from pathlib import Path

from lspilot.chat import conversations, prompt
from lspilot.chat.conversations import ConversationStore, Turn


def test_history_fills_the_budget_newest_first_and_starts_with_the_user() -> None:
    history = [Turn("user", "a" * 50), Turn("assistant", "b" * 50),
               Turn("user", "c" * 50), Turn("assistant", "d" * 50)]
    budget = len(prompt.SYSTEM) + len("now") + 120
    built = prompt.build("now", history, [], budget)
    assert [m.content[0] for m in built.messages[1:]] == ["c", "d", "n"]
    assert built.dropped_turns == 2
    roomy = prompt.build("now", history, [], 100_000)
    assert roomy.dropped_turns == 0 and len(roomy.messages) == 6


def test_the_current_message_and_its_code_are_never_dropped() -> None:
    code = prompt.Context("a.py lines 1-2", "python", "x = 1\n")
    built = prompt.build("why?", [Turn("user", "old")], [code], 10)
    assert built.messages[-1].content == "why?\n\na.py lines 1-2:\n```python\nx = 1\n```"
    assert built.dropped_turns == 1 and built.current == built.messages[-1].content


def test_code_blocks_and_file_references() -> None:
    answer = "One:\n```python\na = 1\n```\nTwo:\n~~~\nb = 2\n~~~\n"
    assert prompt.code_blocks(answer) == ["a = 1\n", "b = 2\n"]
    assert prompt.file_references("see #file:src/x.py, and #file:y.md.") == ["src/x.py", "y.md"]


def test_the_store_keeps_conversations_owner_only_and_bounded(tmp_path: Path,
                                                              monkeypatch) -> None:
    monkeypatch.setattr(conversations, "MAX_CONVERSATIONS", 3)
    store = ConversationStore(tmp_path / "chats")
    made = []
    for index in range(5):
        conversation = store.new()
        conversation.turns.append(Turn("user", f"q{index}"))
        store.save(conversation)
        os.utime(tmp_path / "chats" / f"{conversation.id}.json", (index, index))
        made.append(conversation.id)
    store.save(store.get(made[-1]) or store.new())  # prunes
    left = sorted(p.stem for p in (tmp_path / "chats").iterdir())
    assert len(left) == 3 and made[0] not in left
    assert oct((tmp_path / "chats").stat().st_mode & 0o777) == "0o700"
    assert store.get("../etc/passwd") is None and store.get("chat-nope") is None
    assert store.forget(None) == left
