"""Next edit suggestions' pure parts: the edit history and the answer turned into edits."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from lspilot.editor import OwnEdits
from lspilot.next_edits import prompt
from lspilot.next_edits.history import EditHistory


def test_keystrokes_on_one_line_coalesce_into_one_edit():
    history = EditHistory("total = 0\nprint(total)\n")
    for i in range(1, 6):  # `count` typed over `total` on line 0, key by key
        history.record(f"{'count'[:i]} = 0\nprint(total)\n", now=1.0 + i * 0.1, path="a.py")
    diffs = history.diffs("a.py")
    assert len(diffs) == 1
    assert "-total = 0" in diffs[0] and "+count = 0" in diffs[0]


def test_an_edit_elsewhere_or_after_a_pause_starts_a_new_one():
    history = EditHistory("a = 1\n\n\n\n\n\nb = 2\n")
    history.record("a = 10\n\n\n\n\n\nb = 2\n", now=1.0)
    history.record("a = 10\n\n\n\n\n\nb = 20\n", now=1.5)  # six lines away
    history.record("a = 100\n\n\n\n\n\nb = 20\n", now=9.0)  # after a pause
    assert len(history.diffs("x")) == 3


def _apply(lines: list[str], edits: list[prompt.LineEdit]) -> list[str]:
    text = "\n".join(lines)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line) + 1)
    for edit in sorted(edits, key=lambda e: (e.start_line, e.start_char), reverse=True):
        start = offsets[edit.start_line] + edit.start_char
        end = offsets[edit.end_line] + edit.end_char
        assert text[start:end] == edit.old
        text = text[:start] + edit.text + text[end:]
    return text.split("\n")


lines_strategy = st.lists(st.text(alphabet="ab _(),=x\t", max_size=12), min_size=1, max_size=8)


@given(old=lines_strategy, new=lines_strategy)
def test_the_edits_turn_the_region_into_the_answer_and_none_restates_text(old, new):
    region = prompt.Region(0, len(old), tuple(old))
    edits = prompt.edits(region, new)
    assert all(e.old != e.text for e in edits)
    result = _apply(old, edits)
    # The text is the region alone here; a deletion at its very end takes the newline
    # before it, so an all-empty result is one empty line.
    expected = list(new) + [""] * (_blank_tail(old) - _blank_tail(new))
    assert result == expected


def _blank_tail(lines: list[str]) -> int:
    n = 0
    while n < len(lines) and lines[-1 - n] == "":
        n += 1
    return n


def test_blank_lines_that_end_the_region_are_not_deleted():
    # Found by the nes benchmark (calendar.py): the region ended with the two blank lines
    # between two classes, the answer (fenced, so stripped of them) changed a line above,
    # and the suggestion also deleted one of the blank lines.
    old = ["    def f(self, day, width, upper=False):",
           "        return super().f(day, width)", "", ""]
    answer = "```python\n" + "\n".join([old[0], "        return super().f(day, width, upper)",
                                         "", ""]) + "\n```\n"
    new = prompt.rewritten(answer)
    assert new is not None
    edits = prompt.edits(prompt.Region(0, 4, tuple(old)), new)
    assert [(e.start_line, e.old, e.text) for e in edits] == [(1, "", ", upper")]


def test_a_renamed_word_is_shown_whole():
    region = prompt.Region(3, 4, ("    return width * height",))
    [edit] = prompt.edits(region, ["    return w * height"])
    assert (edit.start_line, edit.start_char, edit.end_char, edit.old, edit.text) == (
        3, 11, 16, "width", "w")


def test_a_change_not_made_by_the_user_ends_the_burst_and_is_not_theirs() -> None:
    history = EditHistory("a = 1\n")
    history.record("a = 2\n", 1.0, "f.py")
    history.adopt("a = 2\nb = 3\n", "f.py")
    assert history.changes == 0 and history.text == "a = 2\nb = 3\n"
    (diff,) = history.diffs("f.py")  # the user's burst, without lspilot's line
    assert "+a = 2" in diff and "b = 3" not in diff


def test_own_edits_claim_the_changes_they_cause() -> None:
    own = OwnEdits()
    own.sending({"u"})
    assert own.claims("u") and not own.claims("v")
    own.answered({"u"}, unchanged=set())
    assert not own.claims("u")  # the user's next change
    own.sending({"u"})
    own.answered({"u"}, unchanged={"u"})  # applied, its didChange not here yet
    assert own.claims("u") and not own.claims("u")
