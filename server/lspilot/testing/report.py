"""What a test run's output says: how many passed and failed, in words; pure."""

from __future__ import annotations

import re

from attrs import define

# The output sent back to the model and kept in the answer: the end says most.
OUTPUT_CHARS = 6000


@define(frozen=True)
class Counts:
    passed: int
    failed: int

    @property
    def total(self) -> int:
        return self.passed + self.failed


def _number(pattern: str, text: str) -> int:
    return sum(int(n) for n in re.findall(pattern, text, re.M))


def counts(output: str, exit_code: int | None) -> Counts:
    """Read the counts from the runners lspilot knows; a bare exit code otherwise."""
    text = output
    # pytest: "3 passed, 1 failed, 1 error in 0.12s"
    summary = re.findall(r"=+ (.*?) in [\d.]+s", text) or re.findall(
        r"^(\d+ (?:passed|failed).*?) in [\d.]+s", text, re.M)
    if summary:
        last = summary[-1]
        return Counts(_number(r"(\d+) passed", last),
                      _number(r"(\d+) failed", last) + _number(r"(\d+) errors?", last))
    # unittest: "Ran 4 tests" then "OK" or "FAILED (failures=1, errors=1)"
    ran = re.search(r"^Ran (\d+) tests?", text, re.M)
    if ran:
        bad = _number(r"failures=(\d+)", text) + _number(r"errors=(\d+)", text)
        return Counts(int(ran.group(1)) - bad, bad)
    # jest / vitest: "Tests: 1 failed, 3 passed, 4 total" / "Tests  1 failed | 3 passed"
    jest = re.search(r"^\s*Tests:?\s+(.*)$", text, re.M)
    if jest:
        return Counts(_number(r"(\d+) passed", jest.group(1)),
                      _number(r"(\d+) failed", jest.group(1)))
    # cargo: "test result: ok. 3 passed; 1 failed"
    if "test result:" in text:
        return Counts(_number(r"(\d+) passed;", text), _number(r"(\d+) failed;", text))
    # node --test: "# pass 3" "# fail 1"; go test -v: "--- PASS" / "--- FAIL"
    if re.search(r"^# pass \d+", text, re.M):
        return Counts(_number(r"^# pass (\d+)", text), _number(r"^# fail (\d+)", text))
    if "--- PASS" in text or "--- FAIL" in text:
        return Counts(text.count("--- PASS"), text.count("--- FAIL"))
    return Counts(1, 0) if exit_code == 0 else Counts(0, 1)


def trimmed(output: str, limit: int = OUTPUT_CHARS) -> str:
    """The output cut to ``limit``: its start (what ran) and most of its end (what failed)."""
    if len(output) <= limit:
        return output
    head = limit // 5
    return output[:head] + "\n… (output cut) …\n" + output[-(limit - head):]


def words(found: Counts, *, timed_out: bool, loaded: bool) -> str:
    if timed_out:
        return "the tests did not finish in time (testTimeout)"
    if not loaded:
        return "the tests did not load"
    if found.failed == 0:
        return f"{found.total} test{'s' if found.total != 1 else ''}, all pass"
    fails = "fails" if found.failed == 1 else "fail"
    return f"{found.passed} pass, {found.failed} still {fails}"
