"""Whether an answer to Write tests holds a test, and what to say when it does not; pure.

A model that writes the function again, or only an import, has not written tests: that
answer is not applied as if it were (``no_tests``).
"""

from __future__ import annotations

import ast
import re

from lspilot.errors import LspilotError

_JS = ("javascript", "typescript", "javascriptreact", "typescriptreact")
# A test function or test case, per language (the names each framework collects).
_TEST_PATTERNS: dict[str, re.Pattern[str]] = {
    "python": re.compile(
        r"^[ \t]*(?:async[ \t]+)?def[ \t]+test\w*[ \t]*\(|^[ \t]*class[ \t]+Test\w*", re.M),
    "js": re.compile(r"(?<![\w.$])(?:it|test)(?:\.\w+)?[ \t]*\("),
    "go": re.compile(r"^[ \t]*func[ \t]+Test\w*[ \t]*\(", re.M),
    "rust": re.compile(r"#\[(?:\w+::)?test\]"),
    "java": re.compile(r"@(?:Test|ParameterizedTest)\b"),
    "csharp": re.compile(r"\[(?:Test|Fact|Theory|TestMethod)\b"),
    "ruby": re.compile(r"^[ \t]*(?:def[ \t]+test_\w*|it[ \t(]+['\"])", re.M),
    "php": re.compile(r"function[ \t]+test\w*[ \t]*\(|@test\b"),
}
_SHAPES = {
    "python": "`def test_…():` functions (or a `class Test…`) with assert statements",
    "js": "`test(…)` or `it(…)` cases with expect",
    "go": "`func TestXxx(t *testing.T)` functions",
    "rust": "`#[test]` functions",
    "java": "`@Test` methods",
    "csharp": "`[Test]`/`[Fact]` methods",
    "ruby": "`def test_…` methods or `it '…'` examples",
    "php": "`public function test…()` methods",
}


class NoTests(LspilotError):
    """Write tests: the answer held no test even when asked again; nothing was written."""

    kind = "no_tests"


def _family(language: str) -> str:
    return "js" if language in _JS else language


def has_tests(language: str, code: str | None) -> bool:
    """Whether ``code`` holds a test for ``language`` (a language lspilot has no pattern for
    is taken at its word)."""
    if code is None or not code.strip():
        return False
    pattern = _TEST_PATTERNS.get(_family(language))
    return pattern is None or pattern.search(code) is not None


def problem(language: str, code: str | None) -> str:
    """What was wrong with the answer, said to the model when it is asked once more."""
    shape = _SHAPES.get(_family(language), "test functions")
    what = "no code" if code is None or not code.strip() else "code but no test"
    return (f"Your answer held {what}: it must be tests of the code, not the code again. "
            f"Write {shape} that call the code under test and check its results. Reply with "
            "exactly one fenced code block and nothing else.")


def failure(language: str, code: str | None) -> NoTests:
    shape = _SHAPES.get(_family(language), "test functions")
    what = "no code" if code is None or not code.strip() else f"code but no test ({shape})"
    return NoTests(f"The model's answer held {what}, even when asked once more, so nothing was "
                   "written. Try again, add an instruction, or use a stronger model.")


def complete_python_tests(code: str) -> str:
    """Python tests cut short (maxTokens) without their unfinished last part, when that
    makes them parse: the tests that were complete still run."""
    try:
        ast.parse(code)
        return code
    except SyntaxError:
        pass
    starts = [m.start() for m in re.finditer(r"^(?:def|class|async def|@)", code, re.M)]
    for start in reversed(starts):
        head = code[:start].rstrip() + "\n"
        try:
            ast.parse(head)
        except SyntaxError:
            continue
        if has_tests("python", head):
            return head
    return code
