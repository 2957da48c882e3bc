"""Tests that run: after Write tests, run the new tests, repair them, say what passed.

Model-written code runs only when the user said so (lspilot.consent): ``runTests`` ``ask``
(the default) asks each time, with the exact command, until the user answers "Always in
this workspace" for that command; ``always`` is taken only from the user's own settings (a
workspace's settings that ask for it, or that choose the command, are asked about all the
same, and "Always" approves the command shown, not another one chosen later). Only the tests
lspilot wrote are ever replaced by a repair, never the user's.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.uris import from_fs_path

from lspilot import consent
from lspilot.actions import small_model_tests, test_answers
from lspilot.actions.appliers import WriteTestFile
from lspilot.actions.extract import extract_code
from lspilot.actions.registry import Action
from lspilot.actions.results import WrittenTests, test_code
from lspilot.actions.small_model_tests import Prefill
from lspilot.edits import EditTarget, replacement_edit
from lspilot.jobs.job import EditDeclined, Job, shown_title
from lspilot.requests import chat_request
from lspilot.services import Services
from lspilot.testing import commands, diagnose, report, runner
from lspilot.testing.repair import repair_messages
from lspilot.text import position_of
from lspilot.workspace import encoding_of, language_of, relative, root_for

log = logging.getLogger(__name__)

RUN, ALWAYS, NOT_NOW = "Run", "Always in this workspace", "Not now"
RUNNING_THE_TESTS = "Running the tests…"
# pytest's exit codes for "did not get to run the tests": interrupted (a collection
# error), usage error, no tests collected.
PYTEST_NOT_LOADED = (2, 4, 5)
_RUN_TESTS_POLICY: dict[str, consent.Policy] = {"always": "auto", "ask": "ask",
                                                "never": "never"}


class TestRuns:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.always = consent.Remembered(services.cache_dir / "run-tests-always.json")

    async def after_writing(self, job: Job, applier: WriteTestFile, action: Action,
                            code_under_test: str, prefill: Prefill | None = None,
                            max_tokens: int | None = None,
                            ) -> tuple[dict[str, Any] | None, str | None]:
        """Run the tests ``applier`` wrote, repairing them; (the answer's ``tests``, words).
        ``prefill``: a small local model's answers are begun for it, repairs too; the
        repairs are capped as the tests' answer was (``max_tokens``)."""
        written = applier.written
        if written is None:
            return None, None
        settings = job.settings
        document = applier.snap.document
        language = language_of(document)
        root = root_for(self.services.workspace, Path(document.path))
        template = commands.command_for(language, settings.test_command, root)
        if template is None:
            return None, (f"no test command known for {language}: set testCommand to run "
                          "the tests")
        test_path = applier.test.path
        argv = commands.expand(template, root, test_path)
        if not await self._may_run(document.uri, root, template, argv):
            return None, None
        job.resume()
        environment = runner.clean_environment(os.environ, self._secrets())
        rounds = 0
        note = ""
        pytest_missing = False
        while True:
            self._sync_to_disk(written, test_path)
            job.report(RUNNING_THE_TESTS)
            try:
                run = await runner.run(argv, root, limit_seconds=settings.test_timeout,
                                       env=environment)
            except runner.TestCommandFailed as exc:
                log.info("Test run: `%s` in %s did not start: %s", commands.shown(argv), root,
                         exc.problem)
                setup = self._setup(language, argv, root, test_path, document.source,
                                    Path(document.path), environment)
                return self._not_run(action, setup, exc.problem, "", rounds)
            found = report.counts(run.output, run.exit_code)
            log.info("Test run: %s; %d passed, %d failed", runner.describe(run, root),
                     found.passed, found.failed)
            if (language == "python" and language not in settings.test_command
                    and commands.NO_PYTEST in run.output and not pytest_missing):
                log.info("Test run: no pytest for %s; trying unittest", argv[0])
                pytest_missing = True
                argv = commands.expand(commands.unittest_command(template), root, test_path)
                continue  # this Python has no pytest: unittest runs pytest-free tests too
            setup = self._setup(language, argv, root, test_path, document.source,
                                Path(document.path), environment, pytest_missing)
            problem = diagnose.problem(setup, run.output, run.exit_code)
            if problem is not None and not run.timed_out:
                # Not the tests' fault: a repair cannot help, so none is asked for.
                log.info("Test run: no test ran (%s); not repaired", problem)
                return self._not_run(action, setup, problem, run.output, rounds)
            passed = run.exit_code == 0
            if passed or run.timed_out or rounds >= settings.test_repair_rounds:
                break
            rounds += 1
            job.report(f"Repairing the tests (round {rounds} of {settings.test_repair_rounds})…")
            log.info("Test repair round %d of %d: %d failed; asking the model", rounds,
                     settings.test_repair_rounds, found.failed)
            try:
                repaired = await self._repair(job, applier, action, written,
                                              code_under_test, commands.shown(argv),
                                              run.output, prefill, max_tokens)
            except EditDeclined:
                log.info("Test repair round %d: declined by the user", rounds)
                note = "; the repair was not applied: you declined it"
                break
            if repaired is None:
                log.info("Test repair round %d: the test file changed; not repaired", rounds)
                note = "; the test file changed where lspilot's tests were, so they were not " \
                       "repaired"
                break
            log.info("Test repair round %d: %s", rounds, "the new tests applied"
                     if repaired is not written else "the answer held no tests; kept as they were")
            written = repaired
        loaded = not (language == "python" and run.exit_code in PYTEST_NOT_LOADED
                      and "pytest" in argv[1:3])
        words = report.words(found, timed_out=run.timed_out, loaded=loaded) + note
        tests = {"command": commands.shown(argv), "passed": found.passed,
                 "failed": found.failed if not passed else 0, "rounds": rounds,
                 "output": report.trimmed(run.output), "ran": True}
        self.services.editor.show_message(
            types.MessageType.Info if passed else types.MessageType.Warning,
            f"{shown_title(action.title)}: {words}")
        return tests, words

    def _setup(self, language: str, argv: list[str], root: Path, test_path: Path,
               source: str, source_path: Path, environment: dict[str, str],
               pytest_missing: bool = False) -> diagnose.RunSetup:
        def in_project(module: str) -> bool:
            folders = {root, root / "src", source_path.parent}
            return any((folder / f"{module}.py").is_file()
                       or (folder / module / "__init__.py").is_file() for folder in folders)

        return diagnose.RunSetup(
            language=language, argv=argv,
            interpreter=argv[0] if os.sep in argv[0]
            else shutil.which(argv[0], path=environment.get("PATH")) or argv[0],
            test_name=relative(test_path, root), source_name=source_path.name,
            source_imports=diagnose.top_level_imports(source) if language == "python"
            else frozenset(),
            in_project=in_project, pytest_missing=pytest_missing)

    def _not_run(self, action: Action, setup: diagnose.RunSetup, problem: str, output: str,
                 rounds: int) -> tuple[dict[str, Any], str]:
        """The answer's ``tests`` and the end's words for a run that never ran a test."""
        words = f"the tests did not run: {problem}. {diagnose.not_installed_hint(setup)}"
        tests = {"command": commands.shown(setup.argv), "passed": 0, "failed": 0,
                 "rounds": rounds, "output": report.trimmed(output), "ran": False,
                 "problem": problem}
        self.services.editor.show_message(types.MessageType.Warning,
                                          f"{shown_title(action.title)}: {words}")
        return tests, words

    async def _may_run(self, uri: str, root: Path, template: tuple[str, ...],
                       argv: list[str]) -> bool:
        """Asked with the exact command; "Always" remembers this command (its template,
        before ``{file}`` is filled in) in this folder, nothing wider."""
        settings = self.services.store.settings_for(uri)
        policy = _RUN_TESTS_POLICY[settings.run_tests]
        chosen_by_workspace = self.services.store.set_by_workspace(uri, ("runTests",
                                                                         "testCommand"))
        folder = from_fs_path(str(root)) or str(root)
        question = consent.Question(
            f"Run the new tests with `{commands.shown(argv)}`? This runs code the "
            "model wrote on your machine.", allow=RUN, always=ALWAYS, deny=NOT_NOW)
        return await consent.decide(
            consent.effective_policy(policy, chosen_by_workspace), question,
            self.services.editor.ask, remembered=self.always,
            entry=consent.command_entry(folder, template))

    async def _repair(self, job: Job, applier: WriteTestFile, action: Action,
                      written: WrittenTests, code_under_test: str, command: str,
                      output: str, prefill: Prefill | None,
                      cap: int | None) -> WrittenTests | None:
        settings = job.settings
        document = applier.snap.document
        root = root_for(self.services.workspace, Path(document.path))
        messages = repair_messages(
            language=language_of(document), source_name=Path(document.path).name,
            code=code_under_test, test_name=relative(applier.test.path, root),
            tests=written.code, command=command,
            output=report.trimmed(output, min(report.OUTPUT_CHARS,
                                              settings.context_budget_chars // 2)))
        request = chat_request(settings, messages, action=action, max_tokens=cap)
        if prefill is not None:
            raw, begun = prefill.request(messages, model=request.model,
                                         temperature=request.temperature, top_p=None,
                                         max_tokens=request.max_tokens)
            text = small_model_tests.finish(begun, (await job.stream(raw)).text)
        else:
            text = (await job.stream(request)).text
        language = language_of(document)
        code = extract_code(text)
        if code is not None and language == "python":
            code = test_answers.complete_python_tests(code)
            text = f"```python\n{code}```\n"
        if not test_answers.has_tests(language, code):
            return written  # a "repair" without tests is not applied: the tests stay
        new_code = test_code(applier.test, text)
        current, version = self._current(written, applier.test.path)
        start = written.start if current[written.start:written.start + len(written.code)] \
            == written.code else current.find(written.code)
        if start < 0:
            return None
        end = start + len(written.code)
        encoding = encoding_of(self.services.workspace)
        target = EditTarget(uri=written.uri, version=version, text=current,
                            end=position_of(current, len(current), encoding))
        edit = replacement_edit(
            target, types.Range(position_of(current, start, encoding),
                                position_of(current, end, encoding)),
            new_code, document_changes=self.services.editor.supports_document_changes,
            confirm=applier.confirm)
        job.applying()  # the edit must not be cut off half-way
        await applier.send_edit(edit)
        job.resume()
        return written.replaced(current[:start] + new_code + current[end:], start, new_code)

    def _current(self, written: WrittenTests, path: Path) -> tuple[str, int | None]:
        """The test file as the editor has it (open), else as on disk, and its version."""
        document = self.services.workspace.text_documents.get(written.uri)
        if document is not None and written.code in document.source:
            return document.source, document.version
        try:
            return path.read_text(encoding="utf-8"), None
        except OSError:
            return written.text, None

    def _sync_to_disk(self, written: WrittenTests, path: Path) -> None:
        """The editor may hold the test file unsaved: the run must see what lspilot wrote."""
        text, _ = self._current(written, path)
        if written.code not in text:
            text = written.text
        try:
            if path.read_text(encoding="utf-8") == text:
                return
        except OSError:
            pass
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")

    def _secrets(self) -> list[str]:
        key = self.services.store.settings.api_key
        return [key.reveal()] if key is not None else []
