"""The three built-in actions and custom ones, end to end through the real server."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from lsprotocol import types
from pygls.uris import from_fs_path

from tests.e2e.harness import capabilities, range_of, session
from tests.fake_upstream import Reply

SOURCE = (
    "import math\n"
    "\n"
    "\n"
    "class Shapes:\n"
    "    def area(self, r):\n"
    "        result = math.pi * r * r\n"
    "        return result\n"
    "\n"
    "\n"
    "print(Shapes().area(2))\n"
)
METHOD = "    def area(self, r):\n        result = math.pi * r * r\n        return result\n"
ANSWER = [
    "Sure, here is a simpler version:\n",
    "```python\n",
    "def area(self, r):\n",
    "    return math.pi * r ** 2\n",
    "```\n",
    "It drops the temporary variable.\n",
]


def code_action_params(uri: str, range_: types.Range, only: list[str] | None = None):
    return types.CodeActionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        range=range_,
        context=types.CodeActionContext(diagnostics=[], only=only),
    )


async def test_code_actions_offer_every_action_for_a_range(upstream, workspace):
    custom = {"id": "docstrings", "title": "Add docstrings", "prompt": "Add docstrings.",
              "apply": "replace"}
    async with session(upstream, workspace, init_options={"actions": [custom]}) as editor:
        uri = editor.open("shapes.py", SOURCE)
        offered = await editor.client.text_document_code_action_async(
            code_action_params(uri, range_of(SOURCE, METHOD))
        )
        titles = {a.title: a for a in offered}
        assert set(titles) == {"lspilot: Explain", "lspilot: Refactor", "lspilot: Write tests",
                               "Add docstrings"}
        assert titles["lspilot: Refactor"].command.command == "lspilot.refactor"
        assert titles["Add docstrings"].command.command == "lspilot.run"
        assert titles["Add docstrings"].command.arguments[0]["action"] == "docstrings"

        empty = types.Range(types.Position(4, 4), types.Position(4, 4))
        assert not await editor.client.text_document_code_action_async(
            code_action_params(uri, empty))

        rewrite_only = await editor.client.text_document_code_action_async(
            code_action_params(uri, range_of(SOURCE, METHOD), only=["refactor.rewrite"])
        )
        assert [a.title for a in rewrite_only] == ["lspilot: Refactor"]
        quickfix_only = await editor.client.text_document_code_action_async(
            code_action_params(uri, range_of(SOURCE, METHOD), only=["quickfix"])
        )
        assert not quickfix_only


@pytest.mark.parametrize("encoding", ["utf-16", "utf-8"])
async def test_form_feeds_and_unicode_line_separators_are_not_line_ends(
    upstream, workspace, encoding
):
    """LSP ends lines at \\n, \\r\\n and \\r only: the prompt and the edit see the
    editor's lines even after a form-feed page break, U+2028 in a string, \\x85 or \\v."""
    source = ("import math\n\f\n"
              "SEP = 'a\u2028b\u2029c\x85d\ve'  # not line ends for the editor\n"
              "\n\nclass Shapes:\n" + METHOD + "\n\nprint(Shapes().area(2))\n")
    upstream.enqueue(Reply.stream(ANSWER))
    caps = capabilities(encodings=[encoding]) if encoding != "utf-16" else None
    async with session(upstream, workspace, caps=caps) as editor:
        assert editor.encoding == encoding
        uri = editor.open("shapes.py", source)
        selection = range_of(source, METHOD, encoding)
        assert selection.start.line == 6  # as the editor counts: 0-based line 6
        result = await editor.run("lspilot.refactor", uri, selection)
        assert result["status"] == "done", result
        user = upstream.requests[0].json["messages"][1]["content"]
        assert f"The selected code (lines 7-9):\n```python\n{METHOD}```" in user, user
        assert editor.text(uri) == source.replace(
            METHOD, "    def area(self, r):\n        return math.pi * r ** 2\n")


async def test_refactor_replaces_exactly_the_selection(upstream, workspace):
    upstream.enqueue(Reply.stream(ANSWER))
    async with session(upstream, workspace) as editor:
        uri = editor.open("shapes.py", SOURCE)
        result = await editor.run("lspilot.refactor", uri, range_of(SOURCE, METHOD),
                                  instruction="use ** for powers")
        assert result["status"] == "done", result
        assert result["text"] == "".join(ANSWER)
        assert result["usage"]["completionTokens"] == len(ANSWER)
        assert editor.text(uri) == SOURCE.replace(
            METHOD, "    def area(self, r):\n        return math.pi * r ** 2\n"
        )
        # One versioned edit that replaces exactly the selected range.
        (params,) = editor.edits
        (doc_edit,) = params.edit.document_changes
        assert doc_edit.text_document.version == 1
        assert doc_edit.edits[0].range == range_of(SOURCE, METHOD)

        sent = upstream.requests[0].json
        assert sent["model"] == "gpt-5-4-mini"
        assert sent["stream"] is True
        assert "temperature" not in sent and "max_tokens" not in sent
        system, user = sent["messages"]
        assert system["role"] == "system" and "exactly one fenced code block" in system["content"]
        assert METHOD in user["content"]
        assert "import math" in user["content"]  # the code around the selection
        assert "print(Shapes().area(2))" in user["content"]
        assert "File: shapes.py" in user["content"] and "Language: python" in user["content"]
        assert "Instruction from the user: use ** for powers" in user["content"]
        assert upstream.requests[0].headers["authorization"] == "Bearer sk-test-0123456789abcdef"


async def test_explain_streams_and_shows_a_markdown_document(upstream, workspace):
    chunks = ["`area` computes ", "the area of a circle.\n\n", "It uses **math.pi**."]
    upstream.enqueue(Reply.stream(chunks, delay=0.01))
    async with session(upstream, workspace) as editor:
        uri = editor.open("shapes.py", SOURCE)
        result = await editor.run("lspilot.explain", uri, range_of(SOURCE, METHOD))
        assert result["status"] == "done"
        assert editor.text(uri) == SOURCE and not editor.edits
        assert editor.stream_text() == "".join(chunks)
        (shown,) = editor.client.shown_documents
        assert shown.uri.endswith(".md")
        shown_path = Path(shown.uri.removeprefix("file://"))
        assert shown_path.read_text() == "".join(chunks) + "\n"
        # In the user's cache, readable by the user alone.
        assert shown_path.is_relative_to(workspace.parent / "cache" / "lspilot")
        assert shown_path.stat().st_mode & 0o777 == 0o600
        assert shown_path.parent.stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize("link", ["folder", "file"])
async def test_explain_never_writes_through_a_symbolic_link(upstream, workspace, link):
    upstream.enqueue(Reply.stream(["It computes the area."]))
    elsewhere = workspace.parent / "elsewhere"
    elsewhere.mkdir()
    victim = elsewhere / "victim.txt"
    victim.write_text("precious\n")
    folder = workspace.parent / "cache" / "lspilot" / "explanations"
    folder.parent.mkdir(parents=True)
    if link == "folder":
        folder.symlink_to(elsewhere)
    else:
        folder.mkdir()
        (folder / "shapes.py-L5-7.explanation.md").symlink_to(victim)
    async with session(upstream, workspace) as editor:
        uri = editor.open("shapes.py", SOURCE)
        result = await editor.run("lspilot.explain", uri, range_of(SOURCE, METHOD))
        assert result["status"] == "done"
        assert not editor.client.shown_documents
        messages = [m.message for m in editor.client.messages]
        assert messages[-1] == "It computes the area."  # the answer, as a message
        assert any("Not writing the explanation" in m and "symbolic link" in m
                   for m in messages)
    assert sorted(p.name for p in elsewhere.iterdir()) == ["victim.txt"]
    assert victim.read_text() == "precious\n"
    assert not [p for p in folder.parent.rglob("*.tmp")]


async def test_explain_falls_back_to_a_message(upstream, workspace):
    upstream.enqueue(Reply.stream(["It adds numbers."]))
    caps = capabilities(show_document=False)
    async with session(upstream, workspace, caps=caps) as editor:
        uri = editor.open("shapes.py", SOURCE)
        result = await editor.run("lspilot.explain", uri, range_of(SOURCE, METHOD))
        assert result["status"] == "done"
        assert [m.message for m in editor.client.messages] == ["It adds numbers."]


async def test_explain_show_none_leaves_rendering_to_the_plugin(upstream, workspace):
    upstream.enqueue(Reply.stream(["It adds numbers."]))
    async with session(upstream, workspace, init_options={"explainShow": "none"}) as editor:
        uri = editor.open("shapes.py", SOURCE)
        await editor.run("lspilot.explain", uri, range_of(SOURCE, METHOD))
        assert not editor.client.shown_documents and not editor.client.messages
        assert editor.stream_text() == "It adds numbers."


TESTS_ANSWER = ["```python\n", "from shapes import Shapes\n\n\n", "def test_area():\n",
                "    assert Shapes().area(1) > 3\n", "```\n"]


async def test_write_tests_creates_the_test_file_in_tests_folder(upstream, workspace):
    (workspace / "tests").mkdir()
    upstream.enqueue(Reply.stream(TESTS_ANSWER))
    async with session(upstream, workspace) as editor:
        uri = editor.open("pkg/shapes.py", SOURCE)
        result = await editor.run("lspilot.writeTests", uri, range_of(SOURCE, METHOD))
        assert result["status"] == "done", result
        test_file = workspace / "tests" / "test_shapes.py"
        assert test_file.read_text() == "".join(TESTS_ANSWER[1:-1])
        changes = editor.edits[0].edit.document_changes
        assert isinstance(changes[0], types.CreateFile)
        assert changes[0].uri == from_fs_path(str(test_file))
        assert editor.client.shown_documents[-1].uri == from_fs_path(str(test_file))
        assert "tests/test_shapes.py" in upstream.requests[0].json["messages"][0]["content"]


async def test_write_tests_beside_the_module_without_tests_folder(upstream, workspace):
    upstream.enqueue(Reply.stream(TESTS_ANSWER))
    async with session(upstream, workspace) as editor:
        uri = editor.open("pkg/shapes.py", SOURCE)
        result = await editor.run("lspilot.writeTests", uri, range_of(SOURCE, METHOD))
        assert result["status"] == "done"
        assert (workspace / "pkg" / "test_shapes.py").exists()


async def test_write_tests_appends_to_an_existing_file(upstream, workspace):
    existing = "import pytest\n\n\ndef test_old():\n    assert 1 + 1 == 2\n"
    (workspace / "test_shapes.py").write_text(existing)
    upstream.enqueue(Reply.stream(TESTS_ANSWER))
    async with session(upstream, workspace) as editor:
        uri = editor.open("shapes.py", SOURCE)
        result = await editor.run("lspilot.writeTests", uri, range_of(SOURCE, METHOD))
        assert result["status"] == "done"
        text = (workspace / "test_shapes.py").read_text()
        assert text == existing + "\n" + "".join(TESTS_ANSWER[1:-1])
        assert not any(isinstance(c, types.CreateFile)
                       for c in editor.edits[0].edit.document_changes)


async def test_write_tests_appends_to_an_open_test_file_at_its_version(upstream, workspace):
    existing = "def test_old():\n    pass\n"
    upstream.enqueue(Reply.stream(TESTS_ANSWER))
    async with session(upstream, workspace) as editor:
        test_uri = editor.open("test_shapes.py", existing)
        uri = editor.open("shapes.py", SOURCE)
        await editor.run("lspilot.writeTests", uri, range_of(SOURCE, METHOD))
        assert editor.text(test_uri) == existing + "\n" + "".join(TESTS_ANSWER[1:-1])


@pytest.mark.parametrize(
    ("name", "language", "expected", "tests"),
    [
        ("src/util.ts", "typescript", "src/util.test.ts", "test('adds', () => {});\n"),
        ("lib/math.js", "javascript", "lib/math.test.js", "it('adds', () => {});\n"),
        ("calc/calc.go", "go", "calc/calc_test.go", "func TestAdd(t *testing.T) {}\n"),
        ("src/main/java/com/acme/Calc.java", "java", "src/test/java/com/acme/CalcTest.java",
         "@Test void adds() {}\n"),
    ],
)
async def test_write_tests_follows_each_language(upstream, workspace, name, language, expected,
                                                 tests):
    upstream.enqueue(Reply.stream(["```\n", tests, "```\n"]))
    async with session(upstream, workspace) as editor:
        uri = editor.open(name, "code line\nmore code\n", language=language)
        range_ = types.Range(types.Position(0, 0), types.Position(2, 0))
        result = await editor.run("lspilot.writeTests", uri, range_)
        assert result["status"] == "done", result
        assert (workspace / expected).read_text() == tests


@pytest.mark.parametrize(
    ("name", "language", "not_a_test", "a_test"),
    [
        ("calc.py", "python", "def add(a, b):\n    return a + b\n",
         "from calc import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n"),
        ("calc.go", "go", "func Add(a, b int) int { return a + b }\n",
         "func TestAdd(t *testing.T) {}\n"),
        ("calc.ts", "typescript", "export function add(a, b) { return a + b; }\n",
         "test('adds', () => { expect(add(1, 2)).toBe(3); });\n"),
    ],
)
async def test_an_answer_without_tests_is_asked_again_saying_what_was_wrong(
        upstream, workspace, name, language, not_a_test, a_test):
    upstream.enqueue(Reply.stream(["```\n", not_a_test, "```\n"]),
                     Reply.stream(["```\n", a_test, "```\n"]))
    async with session(upstream, workspace, init_options={"runTests": "never"}) as editor:
        uri = editor.open(name, not_a_test, language=language)
        result = await editor.run("lspilot.writeTests", uri, range_of(not_a_test, not_a_test))
        assert result["status"] == "done", result
        retry = upstream.wait_for_requests(2)[1].json["messages"]
        # the first answer is shown to the model with what was wrong with it
        assert retry[-2] == {"role": "assistant", "content": f"```\n{not_a_test}```\n"}
        assert "code but no test" in retry[-1]["content"]
        written = next(p for p in workspace.rglob("*") if p.is_file() and p.name != name)
        assert written.read_text() == a_test


async def test_no_tests_twice_fails_as_no_tests_and_writes_nothing(upstream, workspace):
    code = "def add(a, b):\n    return a + b\n"
    again = Reply.stream(["Here is the function:\n```python\n", code, "```\n"])
    upstream.enqueue(again, Reply.stream(["I cannot write tests for this."]))
    async with session(upstream, workspace) as editor:
        uri = editor.open("calc.py", code)
        result = await editor.run("lspilot.writeTests", uri, range_of(code, code))
        assert result["status"] == "failed", result
        assert result["error"]["type"] == "no_tests"
        assert "nothing was written" in result["error"]["message"]
        assert len(upstream.wait_for_requests(2)) == 2
        assert sorted(p.name for p in workspace.iterdir()) == ["calc.py"]  # no test file
        assert editor.edits == []


async def test_write_tests_for_rust_appends_a_test_module(upstream, workspace):
    code = "pub fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n"
    answer = "```rust\n#[test]\nfn adds() {\n    assert_eq!(add(1, 2), 3);\n}\n```"
    upstream.enqueue(Reply.stream([answer]))
    async with session(upstream, workspace) as editor:
        uri = editor.open("src/lib.rs", code, language="rust")
        result = await editor.run("lspilot.writeTests", uri, range_of(code, code))
        assert result["status"] == "done", result
        assert editor.text(uri) == code + (
            "\n#[cfg(test)]\nmod tests {\n    use super::*;\n\n    #[test]\n    fn adds() {\n"
            "        assert_eq!(add(1, 2), 3);\n    }\n}\n"
        )


async def test_write_tests_refuses_a_path_outside_the_workspace(upstream, workspace, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    os.symlink(outside, workspace / "tests")
    async with session(upstream, workspace) as editor:
        uri = editor.open("shapes.py", SOURCE)
        result = await editor.run("lspilot.writeTests", uri, range_of(SOURCE, METHOD))
        assert result["status"] == "failed"
        assert result["error"]["type"] == "outside_workspace"
        assert "outside the workspace" in result["error"]["message"]
        assert not list(outside.iterdir()) and not editor.edits
        assert not upstream.requests  # refused before asking the model


@pytest.mark.parametrize("kind", ["folder", "latin-1"])
async def test_write_tests_refuses_an_unusable_test_file_before_asking(upstream, workspace,
                                                                      kind):
    target = workspace / "tests" / "test_shapes.py"
    if kind == "folder":
        target.mkdir(parents=True)
        expected = "is a folder"
    else:
        target.parent.mkdir()
        target.write_bytes("# caf\xe9\n".encode("latin-1"))
        expected = "is not UTF-8 text (byte 5 is not)"
    async with session(upstream, workspace) as editor:
        uri = editor.open("shapes.py", SOURCE)
        result = await editor.run("lspilot.writeTests", uri, range_of(SOURCE, METHOD))
        assert result["status"] == "failed"
        assert result["error"]["type"] == "test_file"
        assert f"The test file {target} {expected}" in result["error"]["message"]
        assert not upstream.requests and not editor.edits  # refused before asking the model


async def test_custom_action_runs_through_the_generic_command(upstream, workspace):
    custom = {
        "id": "newcomer",
        "title": "Explain for a newcomer",
        "prompt": "Explain {selection} from {fileName} to someone new to {language}.",
        "apply": "show",
        "model": "tiny-model",
        "temperature": 0.2,
    }
    upstream.enqueue(Reply.stream(["Think of it as a recipe."]))
    async with session(upstream, workspace, init_options={"actions": [custom]}) as editor:
        uri = editor.open("shapes.py", SOURCE)
        result = await editor.run("lspilot.run", uri, range_of(SOURCE, METHOD),
                                  extra={"action": "newcomer"})
        assert result["status"] == "done"
        assert {(s["command"], s["action"]) for s in editor.streams} == {
            ("lspilot.run", "newcomer")}
        sent = upstream.requests[0].json
        assert sent["model"] == "tiny-model" and sent["temperature"] == 0.2
        assert sent["messages"][1]["content"] == (
            f"Explain {METHOD} from shapes.py to someone new to python."
        )


async def test_builtin_prompt_and_parameters_can_be_overridden(upstream, workspace):
    override = {"id": "refactor", "prompt": "Rewrite it in a functional style.", "maxTokens": 99}
    upstream.enqueue(Reply.stream(ANSWER))
    async with session(upstream, workspace, init_options={"actions": [override]}) as editor:
        uri = editor.open("shapes.py", SOURCE)
        await editor.run("lspilot.refactor", uri, range_of(SOURCE, METHOD))
        sent = upstream.requests[0].json
        assert sent["max_tokens"] == 99
        assert sent["messages"][1]["content"].startswith("Rewrite it in a functional style.")


async def test_diagnostics_from_code_action_context_reach_the_prompt(upstream, workspace):
    upstream.enqueue(Reply.stream(ANSWER))
    async with session(upstream, workspace) as editor:
        uri = editor.open("shapes.py", SOURCE)
        range_ = range_of(SOURCE, METHOD)
        inside = types.Diagnostic(range=types.Range(types.Position(5, 8), types.Position(5, 14)),
                                  message="local variable is redundant", source="lint",
                                  severity=types.DiagnosticSeverity.Warning)
        elsewhere = types.Diagnostic(range=types.Range(types.Position(0, 0), types.Position(0, 4)),
                                     message="unused import elsewhere")
        await editor.client.text_document_code_action_async(types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri), range=range_,
            context=types.CodeActionContext(diagnostics=[inside, elsewhere])))
        await editor.run("lspilot.refactor", uri, range_)
        user = upstream.requests[0].json["messages"][1]["content"]
        assert "line 6: warning: local variable is redundant (lint)" in user
        assert "unused import elsewhere" not in user


@pytest.mark.parametrize("encoding", ["utf-16", "utf-8", "utf-32"])
async def test_non_ascii_selections_are_cut_exactly(upstream, workspace, encoding):
    text = 'greeting = "héllo 🌍 世界"\nname = "数据 😀 ok"\nlast = 1\n'
    selected = '"数据 😀 ok"'
    upstream.enqueue(Reply.stream(['```python\n"数据 🎉 ok"\n```']))
    caps = capabilities(encodings=[encoding])
    async with session(upstream, workspace, caps=caps) as editor:
        assert editor.encoding == encoding
        uri = editor.open("hello.py", text)
        result = await editor.run("lspilot.refactor", uri, range_of(text, selected, encoding))
        assert result["status"] == "done", result
        user = upstream.requests[0].json["messages"][1]["content"]
        assert f"```python\n{selected}\n```" in user
        assert editor.text(uri) == text.replace(selected, '"数据 🎉 ok"')


async def test_write_tests_when_the_editor_cannot_create_files(upstream, workspace):
    # Stock Neovim does not announce resource operations: the server makes the empty
    # file itself (inside the workspace) and fills it through applyEdit.
    upstream.enqueue(Reply.stream(TESTS_ANSWER))
    async with session(upstream, workspace, caps=capabilities(create_files=False)) as editor:
        uri = editor.open("shapes.py", SOURCE)
        result = await editor.run("lspilot.writeTests", uri, range_of(SOURCE, METHOD))
        assert result["status"] == "done", result
        assert (workspace / "test_shapes.py").read_text() == "".join(TESTS_ANSWER[1:-1])
        assert not any(isinstance(c, types.CreateFile)
                       for c in editor.edits[0].edit.document_changes)


CONFIRMING = {"confirmEdits": True}


async def test_a_declined_preview_is_not_applied_and_not_a_failure(upstream, workspace):
    upstream.enqueue(Reply.stream(ANSWER))
    async with session(upstream, workspace, caps=capabilities(annotations=True),
                       init_options=CONFIRMING) as editor:
        editor.apply_mode = "decline"
        uri = editor.open("shapes.py", SOURCE)
        result = await editor.run("lspilot.refactor", uri, range_of(SOURCE, METHOD), token="d1")
        assert result["status"] == "cancelled", result
        assert result["error"] == {"type": "declined", "message": "Not applied: you declined it."}
        assert result["text"] == "".join(ANSWER)  # the answer is still the user's to read
        assert editor.text(uri) == SOURCE
        assert editor.progress("d1")[-1].message == "Not applied: you declined it."
        assert not [m for m in editor.client.messages if m.type == types.MessageType.Error]
        # While the preview was out, the progress said so and offered no Cancel.
        (at_edit,) = editor.progress_at_edits
        waiting = at_edit["d1"]
        assert waiting.message == "Waiting for your review…" and waiting.cancellable is False


async def test_a_reviewed_edit_makes_the_progress_cancellable_again(upstream, workspace):
    upstream.enqueue(Reply.stream(ANSWER))
    async with session(upstream, workspace, caps=capabilities(annotations=True),
                       init_options=CONFIRMING) as editor:
        uri = editor.open("shapes.py", SOURCE)
        result = await editor.run("lspilot.refactor", uri, range_of(SOURCE, METHOD), token="r1")
        assert result["status"] == "done" and result["error"] is None
        reports = [p for p in editor.progress("r1") if p.kind == "report"]
        waiting = next(i for i, p in enumerate(reports)
                       if p.message == "Waiting for your review…")
        assert reports[waiting].cancellable is False
        assert reports[waiting + 1].cancellable is True


async def test_without_confirm_edits_a_refused_edit_still_fails(upstream, workspace):
    upstream.enqueue(Reply.stream(ANSWER))
    async with session(upstream, workspace) as editor:
        editor.apply_mode = "decline"  # no preview was asked for: the editor could not apply it
        uri = editor.open("shapes.py", SOURCE)
        result = await editor.run("lspilot.refactor", uri, range_of(SOURCE, METHOD), token="f1")
        assert result["status"] == "failed" and result["error"]["type"] == "edit_rejected"
        assert not [p for p in editor.progress("f1")
                    if getattr(p, "message", None) == "Waiting for your review…"]


async def test_refactor_keeps_the_blank_lines_the_selection_ended_with(upstream, workspace):
    source = "def first():\n    return 1\n\n\ndef second():\n    return 2\n"
    selected = "def first():\n    return 1\n\n\n"  # selected down to the next def
    upstream.enqueue(Reply.stream(["```python\ndef first():\n    return 10\n```\n"]))
    async with session(upstream, workspace) as editor:
        uri = editor.open("two.py", source)
        result = await editor.run("lspilot.refactor", uri, range_of(source, selected))
        assert result["status"] == "done", result
        assert editor.text(uri) == "def first():\n    return 10\n\n\ndef second():\n    return 2\n"
