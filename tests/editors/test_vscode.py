"""The VS Code extension, end to end, in a real VS Code.

code-server (VS Code's server and web workbench, from npm) runs on 127.0.0.1 with a private
profile and the freshly built ``editors/vscode/lspilot.vsix``; Debian's Chromium, driven by
playwright-core (``editors/vscode/e2e/run.mjs``), opens a workspace with a Python file. The
extension starts the real ``lspilot`` over stdio, which talks to the fake upstream. The scenario:
Refactor from the command palette (the editor's text changes as answered), Explain (the panel
renders the streamed markdown while it arrives), Refactor with instruction (typed in the input
box, sent upstream), a slow Refactor cancelled from the progress notification (the file stays as
it was; the upstream stream is closed), the light bulb and the action menu's keybinding, Write
tests (test_calc.py is created and shows the tests), two Explains on one file whose first fails
before it streams (each keeps its own text: runs are paired by their work-done token; the answer's
image is only a link, and the panel loads nothing remote), no notification showing an ended action
under a Cancel button, and the message with the fix when the server command is wrong. The server is
started through a spy that records its environment (VS Code's ``http.proxy`` reaches it, a local
host is never proxied) and writes a line to stderr (it must not show in the output channel).

The chat scenario types questions into the chat view's webview, as a user does, and checks the
streamed answer, its code block applied, inserted and copied, the history a later turn carries (on
the upstream's side), Stop, reopening a kept conversation and Ask lspilot about this. The chatux
scenario (issue 28) checks its code blocks as shown: highlighted in the theme's colours (light and
dark), a toolbar of icon buttons in their header, Copy only on a REPL transcript, Applied ✓ / Not
applied; and the explanation panel coming back after Developer: Reload Window.

A second scenario checks that the API key in VS Code's secret storage goes only to the host it was
stored for: a workspace pointing ``lspilot.baseUrl`` elsewhere makes the extension ask first, and a
refusal (remembered) keeps the key from being sent.

Needs ``bash editors/vscode/scripts/setup-e2e.sh`` first. Skipped when that hasn't run, except in
CI (``CI`` set), where a missing piece fails the test.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fake_upstream import FakeUpstream, Reply

pytestmark = pytest.mark.editor

REPO = Path(__file__).resolve().parents[2]
EXTENSION = REPO / "editors" / "vscode"
# LSPILOT_VSCODE_VSIX: test another build (e.g. an older one, to see these tests fail on it)
VSIX = Path(os.environ.get("LSPILOT_VSCODE_VSIX") or EXTENSION / "lspilot.vsix")
RUN_MJS = EXTENSION / "e2e" / "run.mjs"
E2E_HOME = Path(
    os.environ.get("LSPILOT_VSCODE_E2E_HOME") or Path.home() / ".cache" / "lspilot" / "vscode-e2e"
)
CODE_SERVER = E2E_HOME / "node_modules" / ".bin" / "code-server"
CHROMIUM = Path(os.environ.get("LSPILOT_CHROMIUM", "/usr/bin/chromium"))
SCENARIO_TIMEOUT = 300  # seconds for the browser part; each step has its own, shorter, limit

ORIGINAL = """\
import math


def add(x, y):
    result = x
    result = result + y
    return result


def area(r):
    return math.pi * r * r
"""
OLD_CODE = "result = result + y"
REFACTORED_CODE = "def add(a, b):\n    return a + b"
PREFIX = "import math\n\n\n"
SUFFIX = "\n\ndef area(r):\n    return math.pi * r * r"
EXPLAIN_CHUNKS = [
    "The function ",
    "`add` returns ",
    "the **sum** of ",
    "its two arguments.",
    "\n\n- `a`: the first\n",
    "- `b`: the second\n",
]
EXPLAIN_TEXT = "The function add returns the sum of its two arguments."
INSTRUCTION = "use exponentiation"
INSTRUCTED_CODE = "    return math.pi * r ** 2"
TEST_CODE = "def test_add():\n    assert add(1, 2) == 3"
# The second of two Explains on one file: plain words (a prefix of the text renders as a prefix),
# then an image whose URL would carry data out if the panel loaded it.
PAIRED_CHUNKS = [f"word{i} " for i in range(1, 16)]
PAIRED_TEXT = "".join(PAIRED_CHUNKS).strip()
STDERR_MARKER = "lspilot-e2e-stderr-marker: this line went to stderr only"
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


def _missing_prerequisites() -> list[str]:
    missing = []
    if shutil.which("node") is None:
        missing.append("node")
    if not CHROMIUM.exists():
        missing.append(str(CHROMIUM))
    if not CODE_SERVER.exists():
        missing.append(f"code-server in {E2E_HOME}")
    if not (E2E_HOME / "node_modules" / "playwright-core").exists():
        missing.append(f"playwright-core in {E2E_HOME}")
    if not VSIX.exists() and not (EXTENSION / "node_modules").exists():
        missing.append(f"{VSIX} (and the extension's node_modules to build it)")
    return missing


@pytest.fixture(scope="module")
def prerequisites() -> None:
    missing = _missing_prerequisites()
    if missing:
        message = (
            f"VS Code e2e prerequisites missing: {', '.join(missing)}; "
            "run `bash editors/vscode/scripts/setup-e2e.sh` (as root, Debian 12)"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def _fresh_vsix() -> Path:
    """The .vsix, rebuilt when the extension's sources are newer than it."""
    if os.environ.get("LSPILOT_VSCODE_VSIX"):
        return VSIX
    sources = [EXTENSION / "package.json", *(EXTENSION / "src").rglob("*.ts")]
    newest = max(p.stat().st_mtime for p in sources)
    if VSIX.exists() and VSIX.stat().st_mtime >= newest:
        return VSIX
    build = subprocess.run(
        ["npx", "--no-install", "vsce", "package", "--allow-missing-repository",
         "--out", str(VSIX)],
        cwd=EXTENSION,
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
    )
    assert build.returncode == 0, f"vsce package failed:\n{build.stdout}\n{build.stderr}"
    return VSIX


def _server_command() -> list[str]:
    # LSPILOT_E2E_SERVER: another server's command line (e.g. a snapshot of a commit, while this
    # checkout's server is being changed)
    if os.environ.get("LSPILOT_E2E_SERVER"):
        return shlex.split(os.environ["LSPILOT_E2E_SERVER"])
    for candidate in (Path(sys.executable).parent / "lspilot", REPO / ".venv" / "bin" / "lspilot"):
        if candidate.exists():
            return [str(candidate)]
    return [sys.executable, "-m", "lspilot"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _clean_env(home: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LSPILOT_", "OPENAI_", "VSCODE_", "XDG_"))
        and k != "NODE_OPTIONS"
        and k.upper() not in PROXY_VARS
    }
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_DATA_HOME=str(home / ".local" / "share"),
        XDG_CACHE_HOME=str(home / ".cache"),
    )
    return env


def _tail(path: Path, lines: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(none)"


@contextlib.contextmanager
def _code_server(cmd: list[str], env: dict[str, str], log: Path, port: int) -> Iterator[None]:
    """Runs code-server in its own process group and kills the whole group afterwards."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            cmd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"code-server exited with {process.returncode}:\n{_tail(log)}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"code-server did not answer /healthz within 60 s:\n{_tail(log)}")
            time.sleep(0.25)
        yield
    finally:
        # The extension host and the language server are children of code-server: end them all.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)


def _extension_logs(data_dir: Path) -> str:
    """The lspilot output channel (the server's log) and the extension host's log, if any."""
    parts = []
    for path in sorted(data_dir.glob("logs/**/*.log")):
        if "lspilot" in path.name or path.name in ("exthost.log", "remoteexthost.log"):
            parts.append(f"--- {path.relative_to(data_dir)}\n{_tail(path, 40)}")
    return "\n".join(parts) or "(no logs)"


def _output_channel(data_dir: Path) -> str:
    """The text of the extension's "lspilot" output channel, as code-server logged it."""
    files = [p for p in data_dir.glob("logs/**/*.log") if p.name.endswith("lspilot.log")]
    assert files, f"no lspilot output channel log under {data_dir / 'logs'}"
    return "\n".join(p.read_text(errors="replace") for p in sorted(files))


# A quiet, predictable workbench: no welcome page, tips, update checks or trust prompts.
QUIET_SETTINGS = {
    "workbench.startupEditor": "none",
    "workbench.tips.enabled": False,
    "workbench.enableExperiments": False,
    "workbench.editor.enablePreview": False,
    "telemetry.telemetryLevel": "off",
    "update.mode": "none",
    "extensions.autoCheckUpdates": False,
    "extensions.autoUpdate": False,
    "extensions.ignoreRecommendations": True,
    "security.workspace.trust.enabled": False,
    "editor.minimap.enabled": False,
    "files.autoSave": "off",
    "git.enabled": False,
}


@dataclass
class Profile:
    """One private VS Code profile and workspace, under the test's tmp_path."""

    root: Path
    artifacts: Path

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def extensions_dir(self) -> Path:
        return self.root / "extensions"

    @property
    def workspace(self) -> Path:
        return self.root / "workspace"

    @property
    def user_settings(self) -> Path:
        return self.data_dir / "User" / "settings.json"

    @property
    def args(self) -> list[str]:
        return ["--user-data-dir", str(self.data_dir), "--extensions-dir", str(self.extensions_dir)]


def _profile(tmp_path: Path, user_settings: dict[str, Any], workspace_settings: dict[str, Any],
             source: str = ORIGINAL) -> Profile:
    artifacts = Path(os.environ.get("LSPILOT_E2E_ARTIFACTS") or tmp_path / "artifacts")
    profile = Profile(tmp_path, artifacts)
    artifacts.mkdir(parents=True, exist_ok=True)
    for folder in (profile.home, profile.data_dir / "User", profile.extensions_dir,
                   profile.workspace / ".vscode"):
        folder.mkdir(parents=True)
    (profile.workspace / "calc.py").write_text(source)
    (profile.workspace / ".vscode" / "settings.json").write_text(json.dumps(workspace_settings))
    profile.user_settings.write_text(json.dumps({**QUIET_SETTINGS, **user_settings}, indent=2))
    install = subprocess.run(
        [str(CODE_SERVER), *profile.args, "--install-extension", str(_fresh_vsix()), "--force"],
        env=_clean_env(profile.home), capture_output=True, text=True, timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert install.returncode == 0, f"installing the vsix failed:\n{install.stdout}{install.stderr}"
    assert any(profile.extensions_dir.glob("lspilot.lspilot-*")), install.stdout
    return profile


def _run_scenario(profile: Profile, server_env: dict[str, str], scenario: str,
                  expect: dict[str, Any], *, trust: bool = False) -> None:
    """Starts code-server on the profile and runs run.mjs's scenario in Chromium against it.

    ``trust``: VS Code asks whether to trust the workspace (workspace trust on), else it trusts all.
    """
    port = _free_port()
    cmd = [
        str(CODE_SERVER), *profile.args,
        "--auth", "none", "--bind-addr", f"127.0.0.1:{port}",
        "--disable-telemetry", "--disable-update-check",
        *([] if trust else ["--disable-workspace-trust"]),
        "--disable-getting-started-override", "--ignore-last-opened",
        str(profile.workspace),
    ]
    log = profile.artifacts / f"code-server-{scenario}.log"
    browser_home = profile.root / "browser-home"
    browser_home.mkdir()
    with _code_server(cmd, {**_clean_env(profile.home), **server_env}, log, port):
        scenario_env = {
            **_clean_env(browser_home),
            "E2E_URL": f"http://127.0.0.1:{port}",
            "E2E_FOLDER": str(profile.workspace),
            "E2E_FILE": "calc.py",
            "E2E_ARTIFACTS": str(profile.artifacts),
            "E2E_HOME": str(E2E_HOME),
            "E2E_CHROMIUM": str(CHROMIUM),
            "E2E_SCENARIO": scenario,
            "E2E_EXPECT": json.dumps(expect),
            "E2E_TIMEOUT_S": str(SCENARIO_TIMEOUT - 20),
        }
        if os.environ.get("E2E_KEEP_GOING"):
            scenario_env["E2E_KEEP_GOING"] = os.environ["E2E_KEEP_GOING"]
        try:
            run = subprocess.run(
                ["node", str(RUN_MJS)], env=scenario_env, capture_output=True, text=True,
                timeout=SCENARIO_TIMEOUT, stdin=subprocess.DEVNULL,
            )
            output = run.stdout + run.stderr
            failed = run.returncode != 0
        except subprocess.TimeoutExpired as exc:
            output = f"{exc.stdout or ''}{exc.stderr or ''}\n(the scenario was killed after "
            output += f"{SCENARIO_TIMEOUT} s)"
            failed = True
        if failed:
            pytest.fail(
                f"the VS Code scenario {scenario!r} failed; screenshots and logs in "
                f"{profile.artifacts}\n{output}\n--- code-server log\n{_tail(log, 30)}\n"
                f"{_extension_logs(profile.data_dir)}"
            )


def _spy(tmp_path: Path, env_file: Path) -> list[str]:
    """A server command that records its environment, says something on stderr, then is lspilot."""
    spy = tmp_path / "lspilot-spy"
    server = " ".join(f"'{part}'" for part in _server_command())
    spy.write_text(
        "#!/bin/sh\n"
        f"env > '{env_file}'\n"
        f"echo '{STDERR_MARKER}' >&2\n"
        f'exec {server} "$@"\n'
    )
    spy.chmod(0o755)
    return [str(spy)]


def test_vscode_refactor_explain_cancel(
    prerequisites: None, upstream: FakeUpstream, tmp_path: Path
) -> None:
    env_file = tmp_path / "server-env.txt"
    proxy = f"http://127.0.0.1:{_free_port()}"  # nothing listens there: a proxied request fails
    spy = _spy(tmp_path, env_file)
    # A trusted workspace's program settings are ignored: only the user's settings say which
    # program runs (the extension reads them from the user's settings; their scope is "window").
    marker = tmp_path / "the-workspace-program-ran"
    workspace_program = tmp_path / "workspace-program"
    workspace_program.write_text(f"#!/bin/sh\ntouch '{marker}'\nexit 1\n")
    workspace_program.chmod(0o755)
    profile = _profile(
        tmp_path,
        user_settings={"lspilot.serverCommand": spy, "http.proxy": proxy},
        # temperature: a setting made in VS Code reaches the server (workspace/configuration);
        # no retries: the first of the two explains fails at once; verifyTls off: the server
        # logs a warning on each settings load (the upstream is plain http, so it changes nothing)
        # runTests never: Write tests ends when the tests are written, not after the server's
        # question whether to run them (not what this test is about)
        # no next edit suggestions: their requests would take the scripted replies
        workspace_settings={"lspilot.temperature": 0.25, "lspilot.maxRetries": 0,
                            "lspilot.verifyTls": False, "lspilot.runTests": "never",
                            "lspilot.nextEditSuggestions": False,
                            "lspilot.serverCommand": [str(workspace_program)],
                            "lspilot.pythonPath": str(workspace_program),
                            "lspilot.apiKeyCommand": [str(workspace_program)]},
    )

    # Replies in the scenario's order: refactor, explain, refactor with instruction, a slow
    # answer to cancel, an explain from the light bulb, tests, then two explains: the first
    # fails after 2.5 s without text, the second streams (and ends with an image).
    fence = "```python\n"
    leak_url = f"http://127.0.0.1:{upstream.port}/leak.png"
    failing = Reply(
        status=200, headers={"content-type": "text/event-stream"}, streaming=True, delay=2.5,
        pieces=[b": hold on\n\n",
                b'data: {"error": {"message": "the model is not loaded", "type": "server_error"}}'
                b"\n\n"],
    )
    upstream.enqueue(
        Reply.stream([fence, "def add(a, b):\n", "    return a + b\n", "```\n"], delay=0.02),
        # slow enough that the panel is seen between chunks, on a busy machine too
        Reply.stream(EXPLAIN_CHUNKS, delay=0.5),
        Reply.stream([fence, "def area(r):\n", INSTRUCTED_CODE + "\n", "```\n"], delay=0.02),
        Reply.stream(["slow "] * 1000, delay=0.1),
        Reply.stream(["Explained ", "from the light bulb."], delay=0.05),
        Reply.stream([fence, "from calc import add\n\n\n", TEST_CODE + "\n", "```\n"], delay=0.02),
        failing,
        Reply.stream([*PAIRED_CHUNKS, f"\n\n![x]({leak_url})\n"], delay=0.3),
    )
    upstream.default = Reply.stream(["unexpected extra request"])

    server_env = {
        "LSPILOT_BASE_URL": upstream.base_url,
        "LSPILOT_API_KEY": "test-key-vscode",
        "LSPILOT_MODEL": "fake-model",
    }
    expect = {
        "original": ORIGINAL,
        "oldCode": OLD_CODE,
        "refactoredCode": REFACTORED_CODE,
        "refactoredPrefix": PREFIX,
        "refactoredSuffix": SUFFIX,
        "explainText": EXPLAIN_TEXT,
        "explainHtml": "<strong>sum</strong>",
        "instruction": INSTRUCTION,
        "instructedCode": INSTRUCTED_CODE,
        "testFile": "test_calc.py",
        "testCode": TEST_CODE,
        "refactorLines": [4, 4],  # def add … return result
        "explainLines": [4, 2],   # the new add
        "cancelLines": [8, 2],    # def area … (instruction, then cancel)
        "pairedText": PAIRED_TEXT,
        "leakUrl": leak_url,
        "serverProgram": spy[0],
        "lightBulbText": "Explained from the light bulb.",
    }
    _run_scenario(profile, server_env, "main", expect)

    # What the upstream saw: eight streamed chat requests with the key, the model and the code,
    # and nothing else (the panel never fetched the answer's image).
    requests = upstream.wait_for_requests(8, timeout=5)
    assert [r.path for r in requests] == ["/v1/chat/completions"] * 8
    for request in requests:
        assert request.headers.get("authorization") == "Bearer test-key-vscode"
        # the environment's model: the schema's default for lspilot.model is not sent as a setting
        assert request.json["model"] == "fake-model"
        assert request.json["temperature"] == 0.25
        assert request.json["stream"] is True
    prompts = [json.dumps(r.json["messages"]) for r in requests]
    assert OLD_CODE in prompts[0]
    assert "return a + b" in prompts[1]
    assert "math.pi * r * r" in prompts[2] and INSTRUCTION in prompts[2]
    assert INSTRUCTED_CODE.strip() in prompts[3]
    assert "return a + b" in prompts[4]  # the light bulb's explain
    assert "return a + b" in prompts[5]
    # the two explains ran on the test file, the active editor then
    assert "def test_add" in prompts[6] and "def test_add" in prompts[7]
    # Cancelling closed the slow stream long before its 100 s were up.
    assert requests[3].client_closed.wait(5), "the cancelled request's stream was not closed"

    # The scenario saved the file: both refactors are on disk, the cancelled one is not.
    saved = profile.workspace.joinpath("calc.py").read_text()
    assert saved.startswith(PREFIX) and REFACTORED_CODE in saved, saved
    assert saved.rstrip("\n").endswith("def area(r):\n" + INSTRUCTED_CODE), saved
    assert OLD_CODE not in saved, saved
    # Write tests created the conventional test file (its text is checked in the editor).
    assert (profile.workspace / "test_calc.py").exists()
    # The spy (the user's serverCommand) started the server; the workspace's programs never ran.
    assert env_file.exists()
    assert not marker.exists()

    # VS Code's http.proxy reached the server; this machine's hosts are never proxied (the
    # upstream on 127.0.0.1 answered every request although nothing listens on the proxy).
    server_environ = dict(
        line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line
    )
    assert server_environ.get("HTTPS_PROXY") == proxy
    assert server_environ.get("HTTP_PROXY") == proxy
    no_proxy = server_environ.get("NO_PROXY", "").split(",")
    assert "127.0.0.1" in no_proxy and "localhost" in no_proxy, no_proxy

    # Each log line once: the server logs through window/logMessage; its stderr is not copied
    # into the same output channel.
    channel = _output_channel(profile.data_dir)
    assert STDERR_MARKER not in channel, channel
    # the server's own stderr format ("2026-12-01 21:28:30,123 WARNING lspilot..."), never copied
    stderr_lines = re.findall(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [A-Z]+ .*$", channel, re.M)
    assert stderr_lines == [], channel
    # the warning the server logs on each settings load, through window/logMessage
    tls = [line for line in channel.splitlines() if "TLS certificate checks are off" in line]
    assert tls and all(line.startswith("[Warn") for line in tls), channel


def test_vscode_api_key_stays_with_its_host(
    prerequisites: None, upstream: FakeUpstream, tmp_path: Path
) -> None:
    with FakeUpstream() as refused, FakeUpstream() as allowed:
        for server in (upstream, refused, allowed):
            server.default = Reply.stream(["The function adds."])
        profile = _profile(
            tmp_path,
            user_settings={"lspilot.serverCommand": _server_command()},
            workspace_settings={},
        )
        secret = "sk-secret-from-storage"
        expect = {
            "original": ORIGINAL,
            "secretKey": secret,
            "explainLines": [4, 3],
            "otherBaseUrl": refused.base_url,
            "otherHost": f"127.0.0.1:{refused.port}",
            "allowedBaseUrl": allowed.base_url,
            "allowedHost": f"127.0.0.1:{allowed.port}",
        }
        # No key in the environment: the only key is the one stored in secret storage.
        server_env = {"LSPILOT_BASE_URL": upstream.base_url, "LSPILOT_MODEL": "fake-model"}
        _run_scenario(profile, server_env, "key", expect)

        # Stored for the environment's endpoint: sent there.
        assert [r.headers.get("authorization") for r in upstream.requests] == [f"Bearer {secret}"]
        # Refused (twice asked for, once answered): the other host got nothing at all (the
        # server has no key, so it fails before sending).
        assert refused.requests == []
        # Allowed: sent.
        assert [r.headers.get("authorization") for r in allowed.requests] == [f"Bearer {secret}"]


def test_vscode_untrusted_workspace_cannot_pick_the_host_or_programs(
    prerequisites: None, upstream: FakeUpstream, tmp_path: Path
) -> None:
    marker = tmp_path / "the-workspace-program-ran"
    evil = tmp_path / "workspace-program"
    evil.write_text(f"#!/bin/sh\ntouch '{marker}'\necho sk-from-the-workspace\n")
    evil.chmod(0o755)
    upstream.default = Reply.stream(["The function ", "adds."])
    with FakeUpstream() as elsewhere:
        elsewhere.default = Reply.stream(["elsewhere"])
        profile = _profile(
            tmp_path,
            user_settings={
                "lspilot.serverCommand": _server_command(),
                "security.workspace.trust.enabled": True,
                "security.workspace.trust.startupPrompt": "always",
            },
            workspace_settings={
                "lspilot.baseUrl": elsewhere.base_url,
                "lspilot.serverCommand": [str(evil)],
                "lspilot.pythonPath": str(evil),
                "lspilot.apiKeyCommand": [str(evil)],
                "lspilot.verifyTls": False,
                "lspilot.model": "the-dearest-model",
            },
        )
        expect = {"original": ORIGINAL, "explainLines": [4, 3], "explainText": "The function adds."}
        server_env = {"LSPILOT_BASE_URL": upstream.base_url, "LSPILOT_API_KEY": "user-key",
                      "LSPILOT_MODEL": "fake-model"}
        _run_scenario(profile, server_env, "untrusted", expect, trust=True)

        # The user's endpoint and key; the workspace's host got nothing, its program never ran
        # (the server started, read its settings and answered before the explanation ended).
        assert [r.headers.get("authorization") for r in upstream.requests] == ["Bearer user-key"]
        assert upstream.requests[0].json["model"] == "fake-model"  # not the workspace's pick
        assert elsewhere.requests == []
        assert not marker.exists()


def _initialize_result(cmd: list[str]) -> dict[str, Any]:
    """The server's answer to `initialize` (it is then shut down), to ask what it can do."""
    def frame(message: dict[str, Any]) -> bytes:
        body = json.dumps(message).encode()
        return b"Content-Length: %d\r\n\r\n%s" % (len(body), body)

    process = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, env=_clean_env(Path.home()))
    assert process.stdin is not None and process.stdout is not None
    try:
        process.stdin.write(frame({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                                   "params": {"processId": None, "rootUri": None,
                                              "capabilities": {}}}))
        process.stdin.flush()
        while True:
            head = b""
            while not head.endswith(b"\r\n\r\n"):
                byte = process.stdout.read(1)
                assert byte, f"{cmd} ended before it answered initialize"
                head += byte
            length = int(re.search(rb"Content-Length: (\d+)", head).group(1))  # type: ignore[union-attr]
            body = json.loads(process.stdout.read(length))
            if body.get("id") == 1:
                process.stdin.write(frame({"jsonrpc": "2.0", "id": 2, "method": "shutdown"}))
                process.stdin.write(frame({"jsonrpc": "2.0", "method": "exit"}))
                process.stdin.flush()
                return dict(body["result"])
    finally:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
        if process.poll() is None:
            process.kill()
            process.wait()


# The built-in price of the default model gpt-5-4-mini: $0.15 per 1M tokens in, $0.90 out. The fake
# upstream reports 11 prompt tokens and a completion token per chunk.
USAGE_CHUNKS = ["The function ", "adds."]
USAGE_COST = "<$0.0001"  # (11 * 0.15 + 2 * 0.90) / 1e6 = $0.00000345, in issue 28's one format
USAGE_WORDS = f"11 tokens in, 2 out, {USAGE_COST}"


def test_vscode_usage_cost_and_status(
    prerequisites: None, upstream: FakeUpstream, tmp_path: Path
) -> None:
    """The end notification shows tokens and cost; the status item the model and session cost,
    a spinner while an action runs, and a menu (Show status, Cancel all)."""
    profile = _profile(
        tmp_path,
        user_settings={"lspilot.serverCommand": _server_command()},
        # no ghost text here: its requests would take the scripted replies
        workspace_settings={"lspilot.maxRetries": 0, "lspilot.inlineCompletions": False,
                            "lspilot.nextEditSuggestions": False},
    )
    upstream.enqueue(Reply.stream(USAGE_CHUNKS), Reply.stream(["slow "] * 1000, delay=0.1))
    upstream.default = Reply.stream(["unexpected extra request"])
    key = "sk-usage-test-key"
    # no LSPILOT_MODEL: the default model, whose price is built in
    server_env = {"LSPILOT_BASE_URL": upstream.base_url, "LSPILOT_API_KEY": key}
    expect = {
        "original": ORIGINAL,
        "explainLines": [4, 4],
        "model": "gpt-5-4-mini",
        "usageWords": USAGE_WORDS,
        "cost": USAGE_COST,
        "sessionLine": f"This session: 1 request, {USAGE_WORDS}",
        "apiKey": key,
    }
    _run_scenario(profile, server_env, "usage", expect)
    requests = upstream.wait_for_requests(2, timeout=5)
    assert [r.json["model"] for r in requests] == ["gpt-5-4-mini"] * 2
    assert requests[1].client_closed.wait(5), "Cancel all did not close the slow stream"
    assert profile.workspace.joinpath("calc.py").read_text() == ORIGINAL


GHOST_SOURCE = (ORIGINAL + "\n\ndef double(value):\n    return value *\n"
                "\n\ndef triple(paused_marker):\n    return paused_marker *\n")
GHOST_LINE = GHOST_SOURCE.splitlines().index("    return value *") + 1
PAUSED_LINE = GHOST_SOURCE.splitlines().index("    return paused_marker *") + 1
GHOST_SUGGESTION = "2 if value else 0"
# typed while paused: the keystroke that made the first suggestion's request, on a line of its own
PAUSED_MARKER = " "
RESUMED_TEXT = "resumed = "


def test_vscode_ghost_text_tab_and_pause(
    prerequisites: None, upstream: FakeUpstream, tmp_path: Path
) -> None:
    """Ghost text from the server's textDocument/inlineCompletion shows, Tab accepts it (the file
    changes), its usage reaches the status item, Pause from the status menu and Resume from the
    palette work (no upstream request for a line typed while paused; the provider's own proof that
    it asks nothing is test_vscode_inline_provider_speaks_lsp), Ctrl+Right accepts a word, and
    Alt+\\ asks at once (an Invoked request)."""
    server = _server_command()
    provider = _initialize_result(server)["capabilities"].get("inlineCompletionProvider")
    if provider is None or provider is False:
        message = (f"the server ({' '.join(server)}) does not advertise inlineCompletionProvider: "
                   "textDocument/inlineCompletion is not built there yet")
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    profile = _profile(
        tmp_path,
        user_settings={"lspilot.serverCommand": server},
        workspace_settings={"lspilot.maxRetries": 0},
        source=GHOST_SOURCE,
    )
    upstream.default = Reply.stream([GHOST_SUGGESTION])
    server_env = {"LSPILOT_BASE_URL": upstream.base_url, "LSPILOT_API_KEY": "sk-ghost"}
    expect = {
        "original": GHOST_SOURCE,
        "model": "gpt-5-4-mini",
        "ghostLine": GHOST_LINE,
        "pausedLine": PAUSED_LINE,
        "typed": " ",
        "suggestion": GHOST_SUGGESTION,
        "accepted": f"    return value * {GHOST_SUGGESTION}",
        "pausedMarker": PAUSED_MARKER,
        "resumedText": RESUMED_TEXT,
    }
    _run_scenario(profile, server_env, "ghost", expect)

    saved = profile.workspace.joinpath("calc.py").read_text()
    assert f"    return value * {GHOST_SUGGESTION}\n" in saved, saved
    assert "    return paused_marker * \n" in saved, saved
    # Ctrl+Right took one word of the suggestion, the rest was dismissed
    first_word, rest = GHOST_SUGGESTION.split(" ", 1)
    assert f"{RESUMED_TEXT}{first_word}" in saved and rest not in saved.split(RESUMED_TEXT)[1], saved
    prompts = [r.body.decode(errors="replace") for r in upstream.requests]
    (profile.artifacts / "upstream-requests.json").write_text(json.dumps(prompts, indent=1))
    assert prompts, "no completion request reached the upstream"
    # Paused, nothing was asked: every request that saw the text typed while paused was sent
    # after resuming (it also holds what was typed then).
    paused = [p for p in prompts if "return paused_marker * " in p]
    assert paused, "no request after resuming saw the text typed while paused"
    assert all(RESUMED_TEXT.strip() in p for p in paused), paused


# The chat view's scenario: a two-line question about the selected `add`, answered with a code block
# (and an image that must stay a link), applied to the selection; a second turn; a slow third one
# stopped; the conversation reopened; a question asked from the context menu, its block inserted.
CHAT_QUESTION = ["Can this be shorter?", "Keep the names."]
CHAT_CODE = "def add(x, y):\n    return x + y\n"
CHAT_CHUNKS = ["Here is a shorter ", "`add`", ":\n\n", "```python\n", CHAT_CODE, "```\n",
               "\nIt returns the **sum**.\n"]
CHAT_ANSWER_TEXT = "It returns the sum."
CHAT_APPLIED = ORIGINAL.replace(
    "    result = x\n    result = result + y\n    return result\n", "    return x + y\n")
CHAT_QUESTION_2 = "Does it work for floats?"
CHAT_ANSWER_2 = "Yes, it works for floats too."
CHAT_QUESTION_3 = "Explain it at length."
CHAT_ASK = "How do I print the area?"
CHAT_ASK_CODE = "print(area(1.0))\n"
CHAT_INSERTED = CHAT_APPLIED + CHAT_ASK_CODE


def test_vscode_chat_view(prerequisites: None, upstream: FakeUpstream, tmp_path: Path) -> None:
    """The chat view in a real VS Code: a question typed into its webview (Shift+Enter for a new
    line, Enter sends) streams its answer in as Markdown (its image only a link; the view's CSP
    allows nothing remote), Apply to selection puts its code block into the file (through
    lspilot.chatApply), Copy puts it on the clipboard, a second turn carries the first as history,
    Stop closes a streaming answer's upstream stream, New conversation and Open conversation…
    (lspilot.chatList) show the kept one again, and Ask lspilot about this from the editor's context
    menu asks about the selection in the view, whose Insert at cursor inserts its block."""
    profile = _profile(
        tmp_path,
        user_settings={"lspilot.serverCommand": _server_command()},
        # no ghost text here: its requests would take the scripted replies
        workspace_settings={"lspilot.maxRetries": 0, "lspilot.inlineCompletions": False,
                            "lspilot.nextEditSuggestions": False},
    )
    leak_url = f"http://127.0.0.1:{upstream.port}/chat-leak.png"
    answer_1 = [*CHAT_CHUNKS, f"\n![x]({leak_url})\n"]
    upstream.enqueue(
        # slow enough that the view is seen between chunks, on a busy machine too
        Reply.stream(answer_1, delay=0.4),
        Reply.stream(["Yes, it works ", "for floats too."], delay=0.05),
        Reply.stream(["slow "] * 1000, delay=0.1),
        Reply.stream(["Print it:\n\n", "```python\n", CHAT_ASK_CODE, "```\n"], delay=0.05),
    )
    upstream.default = Reply.stream(["unexpected extra request"])
    server_env = {"LSPILOT_BASE_URL": upstream.base_url, "LSPILOT_API_KEY": "sk-chat",
                  "LSPILOT_MODEL": "fake-model"}
    applied_lines = CHAT_APPLIED.splitlines()
    expect = {
        "original": ORIGINAL,
        "applyLines": [4, 4],  # def add … return result
        "questionLines": CHAT_QUESTION,
        "question2": CHAT_QUESTION_2,
        "question3": CHAT_QUESTION_3,
        "answerText": CHAT_ANSWER_TEXT,
        "answerHtml": "<strong>sum</strong>",
        "leakUrl": leak_url,
        "applied": CHAT_APPLIED,
        "copied": CHAT_CODE,
        "answer2Text": CHAT_ANSWER_2,
        "title": CHAT_QUESTION[0],
        "askLines": [applied_lines.index("def area(r):") + 1, 2],
        "askQuestion": CHAT_ASK,
        "askCode": CHAT_ASK_CODE,
        "inserted": CHAT_INSERTED,
    }
    _run_scenario(profile, server_env, "chat", expect)

    requests = upstream.wait_for_requests(4, timeout=5)
    (profile.artifacts / "upstream-requests.json").write_text(
        json.dumps([r.json for r in requests], indent=1))
    # four chat requests and nothing else: the answer's image was never fetched
    assert [r.path for r in requests] == ["/v1/chat/completions"] * 4
    first, second, stopped, asked = (r.json["messages"] for r in requests)
    # the first turn: the message as typed (two lines), with the selection it was about
    assert [m["role"] for m in first] == ["system", "user"]
    assert first[1]["content"].startswith("\n".join(CHAT_QUESTION) + "\n\n"), first[1]
    assert "calc.py lines 4-7 (selected)" in first[1]["content"], first[1]
    assert "result = result + y" in first[1]["content"], first[1]
    # the second carries the first as history: the same user message, then the whole answer
    assert [m["role"] for m in second] == ["system", "user", "assistant", "user"]
    assert second[1] == first[1]
    assert second[2]["content"] == "".join(answer_1)
    assert second[3]["content"].startswith(CHAT_QUESTION_2), second[3]
    # Stop closed the slow stream long before its 100 s were up
    assert stopped[-1]["content"].startswith(CHAT_QUESTION_3), stopped[-1]
    assert requests[2].client_closed.wait(5), "Stop did not close the streaming answer"
    # the question from the context menu continued the reopened conversation (the stopped turn
    # was not kept) and was about the selected area()
    assert [m["role"] for m in asked] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert asked[1] == first[1] and asked[3]["content"].startswith(CHAT_QUESTION_2)
    assert not any(CHAT_QUESTION_3 in m["content"] for m in asked), asked
    assert asked[5]["content"].startswith(CHAT_ASK), asked[5]
    assert "def area(r):" in asked[5]["content"] and "(selected)" in asked[5]["content"]
    # Apply and Insert changed the file as shown (the scenario saved it)
    assert profile.workspace.joinpath("calc.py").read_text() == CHAT_INSERTED



# --- issue 28: the chat view's code blocks, and the explanation panel across a window reload -----
CHATUX_QUESTION = "Make add shorter and show me how to call it."
CHATUX_CODE = "def add(x, y):\n    return x + y\n"
CHATUX_REPL = ">>> add(1, 2)"
CHATUX_ANSWER = ["Shorter:\n\n", "```python\n", CHATUX_CODE, "```\n\n", "In the REPL:\n\n",
                 "```pycon\n", CHATUX_REPL + "\n3\n", "```\n"]
CHATUX_EXPLAIN = ["The function ", "**adds** ", "its two arguments."]


def test_vscode_chat_code_blocks_and_explanation_reload(
    prerequisites: None, upstream: FakeUpstream, tmp_path: Path
) -> None:
    """Issue 28 in a real VS Code: a chat answer's Python block is highlighted (keywords in another
    theme colour than the code) with a one-row toolbar of icon buttons in its header (Apply to
    selection / Insert at cursor / Copy, named by title and aria-label); its REPL transcript block
    offers Copy only; Apply with no editor open shows "Not applied" on the button and says why,
    changing nothing; Apply with the selection shows "Applied ✓" and "Applied to calc.py:4-5" in the
    status bar; in a dark theme the block takes the dark theme's colours; after an Explain,
    Developer: Reload Window brings the explanation panel back with its text, leaving no empty
    editor group, and the server back without an error. Screenshots of each screen in the
    artifacts."""
    profile = _profile(
        tmp_path,
        user_settings={"lspilot.serverCommand": _server_command()},
        workspace_settings={"lspilot.maxRetries": 0, "lspilot.inlineCompletions": False,
                            "lspilot.nextEditSuggestions": False},
    )
    upstream.enqueue(Reply.stream(CHATUX_ANSWER, delay=0.05),
                     Reply.stream(CHATUX_EXPLAIN, delay=0.05))
    upstream.default = Reply.stream(["unexpected extra request"])
    server_env = {"LSPILOT_BASE_URL": upstream.base_url, "LSPILOT_API_KEY": "sk-chatux",
                  "LSPILOT_MODEL": "fake-model"}
    applied = ORIGINAL.replace(
        "def add(x, y):\n    result = x\n    result = result + y\n    return result\n", CHATUX_CODE)
    expect = {
        "original": ORIGINAL,
        "applyLines": [4, 4],  # def add … return result
        "question": CHATUX_QUESTION,
        "code": CHATUX_CODE,
        "replLine": CHATUX_REPL,
        "applied": applied,
        "appliedWhere": "calc.py:4-5",
        "explainLines": [4, 2],
        "explainText": "The function adds its two arguments.",
        "explainHtml": "<strong>adds</strong>",
        "model": "fake-model",
    }
    _run_scenario(profile, server_env, "chatux", expect)

    # two requests (the chat turn, the explanation); the failed Apply and the reload asked nothing
    requests = upstream.wait_for_requests(2, timeout=5)
    assert [r.path for r in requests] == ["/v1/chat/completions"] * 2
    assert len(upstream.requests) == 2, [r.json for r in upstream.requests]
    assert profile.workspace.joinpath("calc.py").read_text() == applied
    for name in ("chat-highlighted-block-toolbar", "chat-repl-block-without-apply",
                 "chat-apply-not-applied", "chat-apply-confirmed", "chat-highlighted-block-dark",
                 "explain-panel-after-reload"):
        assert (profile.artifacts / f"{name}.png").exists(), name

# The agent scenario: in Agent mode, "make add shorter" reads calc.py (a read step, no question),
# edits it (asked in the view and as a notification; Show diff; Allow in the view), and says what
# it did; a second turn's edit is denied from the notification (refused); a third turn's command
# (sleep) is allowed and stopped while it runs.
AGENT_FIX = "Make add shorter."
AGENT_READ = {"path": "calc.py", "startLine": 4, "endLine": 7}
AGENT_OLD = "    result = x\n    result = result + y\n    return result"
AGENT_NEW = "    return x + y"
AGENT_EDITED = ORIGINAL.replace(AGENT_OLD, AGENT_NEW)
AGENT_DONE = "I made add return x + y directly."
AGENT_RENAME = "Rename area to circle_area."
AGENT_REFUSED = "You declined, so area keeps its name."
AGENT_RUN = "Run a slow command."
AGENT_SLEEP = ["sleep", "37.5"]  # an argv no other process here has: the scenario finds it in /proc
# gpt-style prices for the fake model: each tool-call answer is 100 tokens in, 20 out; a text
# answer 11 in, 1 out per chunk
AGENT_PRICES = {"fake-model": {"input": 10.0, "output": 30.0}}


def _agent_turn_cost(tool_answers: int, text_chunks: int) -> float:
    price = AGENT_PRICES["fake-model"]
    tools = tool_answers * (100 * price["input"] + 20 * price["output"])
    return (tools + 11 * price["input"] + text_chunks * price["output"]) / 1e6


def _cost_short(cost: float) -> str:
    """usage.ts formatCost (issue 28's one format): four significant digits but at most four
    decimals, `<$0.0001` below."""
    if cost == 0:
        return "$0"
    if cost < 0.0001:
        return "<$0.0001"
    return f"${cost:.{min(4, max(0, 3 - math.floor(math.log10(cost))))}f}"


def test_vscode_agent_mode(prerequisites: None, upstream: FakeUpstream, tmp_path: Path) -> None:
    """Agent mode in the chat view of a real VS Code: the Ask / Agent switch sends the turn with
    the tools; the read step shows inline with a link that opens calc.py at its lines; the edit's
    question shows on its step in the view (Allow / Allow for this conversation / Deny / Show diff)
    and as a notification; Show diff opens the file against the proposed text; Allow in the view
    applies the edit; the turn ends with its steps and cost ($0.0033); a Deny from the
    notification shows the step refused and leaves the file; Stop while an allowed command runs
    ends the turn at once and the command with it."""
    from tests.e2e.test_agent import tool_reply

    profile = _profile(
        tmp_path,
        user_settings={"lspilot.serverCommand": _server_command(), "lspilot.prices": AGENT_PRICES},
        workspace_settings={"lspilot.maxRetries": 0, "lspilot.inlineCompletions": False,
                            "lspilot.nextEditSuggestions": False},
    )
    upstream.enqueue(
        tool_reply(("read_file", AGENT_READ)),
        # the same call id as the read's (the helper's): the view must keep them apart
        tool_reply(("edit_file", {"path": "calc.py", "old": AGENT_OLD, "new": AGENT_NEW})),
        Reply.stream([AGENT_DONE]),
        tool_reply(("edit_file", {"path": "calc.py", "old": "def area(r):",
                                  "new": "def circle_area(r):"})),
        Reply.stream([AGENT_REFUSED]),
        tool_reply(("run_command", {"argv": AGENT_SLEEP})),
    )
    upstream.default = Reply.stream(["unexpected extra request"])
    server_env = {"LSPILOT_BASE_URL": upstream.base_url, "LSPILOT_API_KEY": "sk-agent",
                  "LSPILOT_MODEL": "fake-model"}
    expect = {
        "original": ORIGINAL,
        "fix": AGENT_FIX,
        "readLink": "calc.py:4-7",
        "edited": AGENT_EDITED,
        "editSummary": "calc.py:5 (-3 +1)",
        "editLink": "calc.py:5",
        "editDiffOld": "result = result + y",
        "editDiffNew": AGENT_NEW.strip(),
        "doneAnswer": AGENT_DONE,
        "cost1": _cost_short(_agent_turn_cost(2, 1)),
        "rename": AGENT_RENAME,
        "renameMarker": "circle_area",
        "refusedAnswer": AGENT_REFUSED,
        "run": AGENT_RUN,
        "sleepArgv": AGENT_SLEEP,
    }
    assert expect["cost1"] == "$0.0033"
    _run_scenario(profile, server_env, "agent", expect)

    requests = upstream.wait_for_requests(6, timeout=5)
    (profile.artifacts / "upstream-requests.json").write_text(
        json.dumps([r.json for r in requests], indent=1))
    # six requests and no more: Stop ended the third turn while its command ran
    assert len(upstream.requests) == 6, [r.json["messages"][-1] for r in upstream.requests]
    for request in requests:
        # the switch: every turn went in agent mode, with the tools
        names = {tool["function"]["name"] for tool in request.json.get("tools", [])}
        assert {"read_file", "edit_file", "run_command"} <= names, request.json.keys()
    read_result = requests[1].json["messages"][-1]
    assert read_result["role"] == "tool" and "result = result + y" in read_result["content"]
    assert requests[2].json["messages"][-1]["content"].startswith("Edited calc.py")
    assert requests[4].json["messages"][-1]["content"].startswith("Refused:")
    # the edit allowed in the view is in the file (saved by the scenario), the denied one is not
    assert profile.workspace.joinpath("calc.py").read_text() == AGENT_EDITED


# Next edit suggestions (tests/e2e/test_next_edits.py's shapes): `width` renamed to `w` on the
# signature line; the scripted model rewrites the region with the body renamed too.
NES_SOURCE = (
    "def area(width, height):\n"
    "    return width * height\n"
    "\n"
    "\n"
    "def report(width, height):\n"
    "    print(area(width, height))\n"
)
NES_RENAMED = NES_SOURCE.replace("def area(width,", "def area(w,")
NES_REWRITE = ("```python\n" + NES_RENAMED.replace("return width *", "return w *") + "```\n")
NES_STALL_S = 1.5  # the model's time to first token: a suggestion cannot come back sooner


def test_vscode_next_edit_and_mcp_status(
    prerequisites: None, upstream: FakeUpstream, tmp_path: Path
) -> None:
    """Next edit suggestions in a real VS Code: after `width` is renamed to `w` on the signature
    line, the suggestion to rename it on the next line shows there (the old text struck, the new
    after it, the diff on hover); Tab jumps to it, Tab again applies it, and one Ctrl+Z undoes it
    whole; a newer edit clears a shown suggestion at once; Escape dismisses one. Its requests
    reached the upstream as the NES prompt. The status menu lists the configured MCP servers with
    their state: PyPI's mcp-server-time running with its 2 tools, and a server whose program
    fails as failed (both started by an agent turn from the chat view)."""
    time_server = Path(sys.executable).parent / "mcp-server-time"
    if not time_server.exists():
        pytest.skip(f"mcp-server-time is not installed next to {sys.executable}")
    broken = tmp_path / "broken-mcp"
    broken.write_text("#!/bin/sh\necho 'broken-mcp: no database here' >&2\nexit 3\n")
    broken.chmod(0o755)
    # The server runs from this checkout's root: a dev venv finds the checkout's server/ from the
    # working directory, and MCP servers start through `python -m lspilot.child_guard`, which
    # must import the same lspilot (an installed lspilot needs none of this).
    server = tmp_path / "lspilot-in-checkout"
    server.write_text(f"#!/bin/sh\ncd '{REPO}' && exec {shlex.join(_server_command())} \"$@\"\n")
    server.chmod(0o755)
    profile = _profile(
        tmp_path,
        user_settings={
            "lspilot.serverCommand": [str(server)],
            "lspilot.mcpServers": {"time": {"command": str(time_server)},
                                   "broken": {"command": str(broken)}},
        },
        # no word completions popping up after the rename: their widget would take the Tab
        workspace_settings={"lspilot.maxRetries": 0, "lspilot.inlineCompletions": False,
                            "editor.quickSuggestions": {"other": "off", "comments": "off",
                                                        "strings": "off"},
                            "editor.wordBasedSuggestions": "off"},
        source=NES_SOURCE,
    )
    upstream.enqueue(Reply.stream(["It is time."]))  # the agent turn
    upstream.default = Reply.stream([NES_REWRITE], stall=NES_STALL_S)  # every NES request
    server_env = {"LSPILOT_BASE_URL": upstream.base_url, "LSPILOT_API_KEY": "sk-nes",
                  "LSPILOT_MODEL": "fake-model"}
    expect = {
        "original": NES_SOURCE,
        "model": "fake-model",
        "renamedLine": "def area(w, height):",
        "bodyLine": "    return width * height",
        "shownLine": "    return widthw * height",
        "acceptedLine": "    return w * height",
        "hoverOld": "-    return width * height",
        "hoverNew": "+    return w * height",
        "stallMs": int(NES_STALL_S * 1000),
        "mcp": {"time": "running, 2 tools", "broken": "failed"},
    }
    _run_scenario(profile, server_env, "nes", expect)

    saved = profile.workspace.joinpath("calc.py").read_text()
    assert saved == NES_RENAMED, saved  # accepted, undone; dismissed: never applied
    requests = upstream.requests
    (profile.artifacts / "upstream-requests.json").write_text(
        json.dumps([r.json for r in requests], indent=1))
    agent = requests[0].json
    assert {"mcp__time__get_current_time", "mcp__time__convert_time"} <= {
        t["function"]["name"] for t in agent.get("tools", [])}
    nes = [r.json["messages"][-1]["content"] for r in requests[1:]]
    assert nes and all("<|editable_region_start|>" in p for p in nes), nes
    assert "-def area(width, height):" in nes[0] and "+def area(w, height):" in nes[0], nes[0]


CHAT_BLOCKS_SCRIPT = r"""
const { createMarkdown } = require(process.argv[1]);
const { codeBlocks, renderAnswer, withBlockButtons } = require(process.argv[2]);
const md = withBlockButtons(createMarkdown());
const answers = JSON.parse(process.argv[3]);
console.log(JSON.stringify(answers.map((text) => {
  const kept = renderAnswer(md, text, { apply: true, copy: true });
  const streaming = renderAnswer(md, text, { apply: false, copy: false });
  // per fence as rendered: the server block its Apply names, or null (Copy only)
  const perFence = kept.html.split('<div class="code-block"').slice(1).map((part) => {
    const m = /data-act="apply" data-block="(\d+)"/.exec(part.split('<pre')[0]);
    return m && m[1] !== undefined ? Number(m[1]) : null;
  });
  const apply = perFence.filter((n) => n !== null);
  return { blocks: codeBlocks(text), apply, perFence, copied: kept.fences,
           streamingButtons: /<button/.test(streaming.html), html: kept.html };
})));
"""


def test_vscode_chat_blocks_are_numbered_as_the_server_numbers_them() -> None:
    """The chat view's Apply buttons name a block by the server's numbering (lspilot.chatApply's
    ``block``): chatRender.ts's codeBlocks is the server's code_blocks on awkward answers, a fence
    only markdown-it sees (in a quote) gets Copy but no Apply, a streaming answer no buttons, and
    the model's raw HTML stays text."""
    if shutil.which("node") is None or not (EXTENSION / "node_modules").exists():
        message = "node and the extension's node_modules are needed (setup-e2e.sh)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from lspilot.chat.prompt import code_blocks

    answers = [
        "One:\n\n```python\ndef f():\n    return 1\n```\n\nTwo:\n~~~\nx = 2\n~~~\n",
        "- a list item\n\n  ```js\n  let a = 1;\n  ```\n\n> ```\n> quoted\n> ```\n\n```\nlast\n```",
        "````md\n```\ninner\n```\n````\n",
        "no code at all, but <img src=x onerror=alert(1)> and <script>bad()</script>",
        "```\nnot closed\n",
        "```py\r\nwindows\r\n```\r\n\u2028```\nafter\n```\n",
    ]
    markdown = _compiled("markdown")
    render = _compiled("chatRender")
    run = subprocess.run(["node", "-e", CHAT_BLOCKS_SCRIPT, str(markdown), str(render),
                          json.dumps(answers)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    for answer, got in zip(answers, out, strict=True):
        assert got["blocks"] == code_blocks(answer), answer
        assert not got["streamingButtons"], answer
        # every Apply names a block the server has, in order
        assert got["apply"] == sorted(set(got["apply"])), got
        assert all(0 <= n < len(code_blocks(answer)) for n in got["apply"]), got
    assert out[0]["perFence"] == [0, 1]
    assert out[0]["copied"] == ["def f():\n    return 1\n", "x = 2\n"]
    # the list item's block is the server's block 0; the quoted fence is markdown-it's alone
    assert out[1]["perFence"] == [0, None, 1], out[1]
    assert out[1]["copied"] == ["let a = 1;\n", "quoted\n", "last\n"], out[1]
    assert out[2]["perFence"] == [0] and out[2]["copied"] == ["```\ninner\n```\n"], out[2]
    assert "<img" not in out[3]["html"] and "<script" not in out[3]["html"], out[3]["html"]



# --- the chat view's code blocks: highlighted, a toolbar in their header, no Apply on a REPL ------

CHAT_HIGHLIGHT_SCRIPT = r"""
const { createMarkdown } = require(process.argv[1]);
const { renderAnswer, withBlockButtons } = require(process.argv[2]);
const { isReplTranscript } = require(process.argv[3]);
const cases = JSON.parse(process.argv[4]);
const md = withBlockButtons(createMarkdown());
const blocks = (html) => html.split('<div class="code-block"').slice(1).map((part) => {
  const [head, rest] = part.split('<pre');
  return {
    lang: /<span class="block-lang">([^<]*)<\/span>/.exec(head)?.[1] ?? null,
    repl: /^[^>]*data-repl="true"/.test(head),
    acts: [...head.matchAll(/<button[^>]*data-act="(\w+)"[^>]*title="([^"]*)" aria-label="([^"]*)"/g)]
      .map((m) => [m[1], m[2], m[3]]),
    apply: /data-act="apply" data-block="(\d+)"/.exec(head)?.[1] ?? null,
    code: '<pre' + rest,
  };
});
console.log(JSON.stringify({
  repl: cases.repl.map(([lang, code]) => isReplTranscript(lang, code)),
  answer: blocks(renderAnswer(md, cases.answer, { apply: true, copy: true }).html),
  panel: md.render(cases.answer),
}));
"""


def test_vscode_chat_code_blocks_highlighted_with_toolbar() -> None:
    """The chat view's code blocks (chatRender.ts, markdown.ts, highlight.ts in plain Node): the
    code highlighted by the bundled highlight.js (spans with classes, the code escaped: the model's
    HTML in a string stays text; a language it does not know stays plain), a header with the
    language and icon buttons named by their title and aria-label, and a REPL transcript (pycon,
    or a first line that is a `>>>` prompt) offered Copy only, the blocks after it keeping the
    server's numbers."""
    if shutil.which("node") is None or not (EXTENSION / "node_modules").exists():
        message = "node and the extension's node_modules are needed (setup-e2e.sh)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from lspilot.chat.prompt import code_blocks

    answer = (
        "Try:\n\n```python\ndef f(x):\n    return '<script>x</script>' + x  # hi\n```\n\n"
        "```pycon\n>>> f(1)\n'<script>x</script>1'\n```\n\n"
        "```\n>>> 1 + 1\n2\n```\n\n"
        "```brainfuck\n+[<b>]\n```\n\n"
        "```js\nlet a = 1;\n```\n"
    )
    repl = [["pycon", "x"], ["python-repl", ""], ["", ">>> 1\n1"], ["python", "\n  >>> x = 1"],
            ["", ">>>\n"], ["python", "x = 1\n>>> y"], ["", ">>>x"], ["text", "... 1"]]
    run = subprocess.run(
        ["node", "-e", CHAT_HIGHLIGHT_SCRIPT, str(_compiled("markdown")),
         str(_compiled("chatRender")), str(_compiled("highlight")),
         json.dumps({"answer": answer, "repl": repl})],
        capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["repl"] == [True, True, True, True, True, False, False, False]
    python, pycon, bare_repl, unknown, js = out["answer"]
    assert len(code_blocks(answer)) == 5
    names = [["apply", "Apply to selection", "Apply to selection"],
             ["insert", "Insert at cursor", "Insert at cursor"], ["copy", "Copy", "Copy"]]
    assert python["lang"] == "python" and python["acts"] == names and python["apply"] == "0"
    assert '<span class="hljs-keyword">def</span>' in python["code"], python["code"]
    assert '<span class="hljs-comment"># hi</span>' in python["code"], python["code"]
    assert "&lt;script&gt;" in python["code"] and "<script" not in python["code"]
    for block in (pycon, bare_repl):
        assert block["repl"] and block["lang"] == "python REPL", block
        assert block["acts"] == [names[2]] and block["apply"] is None, block
        assert '<span class="hljs-meta prompt_">&gt;&gt;&gt;</span>' in block["code"], block
    assert "<script" not in pycon["code"]
    # a language not bundled: plain, escaped, still with its toolbar
    assert unknown["lang"] == "brainfuck" and unknown["apply"] == "3"
    assert "hljs" not in unknown["code"] and "+[&lt;b&gt;]" in unknown["code"], unknown
    # after the two REPL blocks, the server's numbering goes on
    assert js["apply"] == "4" and '<span class="hljs-keyword">let</span>' in js["code"]
    # the explanation panel's Markdown is highlighted too, with no toolbar
    assert '<span class="hljs-keyword">def</span>' in out["panel"] and "<button" not in out["panel"]


INLINE_PROVIDER_SCRIPT = r"""
// A stand-in for the vscode module: just what inline.ts touches.
const Module = require('module');
const calls = { commands: [] };
class Position { constructor(line, character) { this.line = line; this.character = character; } }
class Range { constructor(start, end) { this.start = start; this.end = end; } }
class EventEmitter { constructor() { this.event = () => ({ dispose() {} }); } fire() {} dispose() {} }
let setting;
const vscode = {
  EventEmitter, Position, Range,
  SnippetString: class { constructor(value) { this.value = value; } },
  InlineCompletionItem: class { constructor(insertText, range) { this.insertText = insertText; this.range = range; } },
  InlineCompletionTriggerKind: { Invoke: 0, Automatic: 1 },
  commands: { executeCommand: (...args) => { calls.commands.push(args); return Promise.resolve(); } },
  window: { setStatusBarMessage: () => ({ dispose() {} }) },
  workspace: { getConfiguration: () => ({ get: () => setting }) },
  languages: { registerInlineCompletionItemProvider: (selector, provider) => { calls.provider = provider; return { dispose() {} }; } },
};
const resolve = Module._resolveFilename;
Module._resolveFilename = function (request, ...rest) { return request === 'vscode' ? 'vscode' : resolve.call(this, request, ...rest); };
require.cache.vscode = { id: 'vscode', filename: 'vscode', loaded: true, exports: vscode };
const { InlineCompletions } = require(process.argv[1]);

const sent = [];
let answer = { items: [{ insertText: 'b)' }, { insertText: 'x', range: { start: { line: 2, character: 4 }, end: { line: 2, character: 5 } } }] };
const client = {
  code2ProtocolConverter: {
    asTextDocumentIdentifier: (d) => ({ uri: d.uri }),
    asPosition: (p) => ({ line: p.line, character: p.character }),
    asRange: (r) => ({ start: { line: r.start.line, character: r.start.character }, end: { line: r.end.line, character: r.end.character } }),
  },
  protocol2CodeConverter: { asRange: (r) => new Range(new Position(r.start.line, r.start.character), new Position(r.end.line, r.end.character)) },
  sendRequest: (method, params, token) => { sent.push({ method, params, token }); return Promise.resolve(answer); },
};
const output = { appendLine() {} };
const inline = new InlineCompletions(output, () => client);
const feature = inline.feature();
const capabilities = {};
feature.fillClientCapabilities(capabilities);
feature.initialize({ inlineCompletionProvider: {} }, [{ scheme: 'file' }]);
const doc = { uri: 'file:///w/a.py' };
const at = new Position(2, 4);
const token = { isCancellationRequested: false, onCancellationRequested: () => ({ dispose() {} }) };
(async () => {
  const out = {};
  out.capability = capabilities.textDocument.inlineCompletion;
  const automatic = await calls.provider.provideInlineCompletionItems(doc, at, { triggerKind: 1 }, token);
  out.automatic = { sent: sent.splice(0), items: automatic };
  const selected = { range: new Range(new Position(2, 0), new Position(2, 4)), text: 'abcd' };
  await calls.provider.provideInlineCompletionItems(doc, at, { triggerKind: 0, selectedCompletionInfo: selected }, token);
  out.invoked = sent.splice(0).map((s) => s.params.context);
  inline.setPaused(true);
  out.paused = (await calls.provider.provideInlineCompletionItems(doc, at, { triggerKind: 0 }, token)) ?? null;
  out.pausedSent = sent.splice(0).length;
  inline.setPaused(false);
  setting = false; // lspilot.inlineCompletions: false
  await calls.provider.provideInlineCompletionItems(doc, at, { triggerKind: 1 }, token);
  out.offSent = sent.splice(0).length;
  setting = undefined;
  answer = [{ insertText: 'bare' }];
  out.bare = (await calls.provider.provideInlineCompletionItems(doc, at, { triggerKind: 1 }, token)).map((i) => i.insertText);
  sent.splice(0);
  const cancelled = { ...token, isCancellationRequested: true };
  out.cancelledBefore = (await calls.provider.provideInlineCompletionItems(doc, at, { triggerKind: 1 }, cancelled)) ?? null;
  out.cancelledSent = sent.splice(0).length;
  out.contexts = calls.commands.filter((c) => c[0] === 'setContext').map((c) => c[2]);
  console.log(JSON.stringify(out));
})().catch((e) => { console.error(e); process.exit(1); });
"""


def test_vscode_inline_provider_speaks_lsp() -> None:
    """inline.ts against a stand-in vscode module: LSP 3.18 trigger kinds (VS Code's Invoke 0 /
    Automatic 1 become 1 / 2), the client's converters, VS Code's cancellation token passed to the
    request, an item without range inserted at the cursor (not VS Code's default range), a bare
    list answer, and nothing sent while paused, with inlineCompletions off, or once cancelled."""
    if shutil.which("node") is None or not (EXTENSION / "node_modules").exists():
        message = "node and the extension's node_modules are needed (setup-e2e.sh)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    compiled = _compiled("inline")
    run = subprocess.run(["node", "-e", INLINE_PROVIDER_SCRIPT, str(compiled)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["capability"] == {"dynamicRegistration": False}
    [request] = out["automatic"]["sent"]
    assert request["method"] == "textDocument/inlineCompletion"
    assert request["params"] == {"textDocument": {"uri": "file:///w/a.py"},
                                 "position": {"line": 2, "character": 4},
                                 "context": {"triggerKind": 2}}
    assert request["token"] == {"isCancellationRequested": False}  # VS Code's own token
    cursor = {"line": 2, "character": 4}
    assert out["automatic"]["items"] == [
        {"insertText": "b)", "range": {"start": cursor, "end": cursor}},
        {"insertText": "x", "range": {"start": cursor, "end": {"line": 2, "character": 5}}},
    ]
    assert out["invoked"] == [{"triggerKind": 1, "selectedCompletionInfo": {
        "range": {"start": {"line": 2, "character": 0}, "end": cursor}, "text": "abcd"}}]
    assert out["paused"] is None and out["pausedSent"] == 0
    assert out["offSent"] == 0
    assert out["bare"] == ["bare"]
    assert out["cancelledBefore"] is None and out["cancelledSent"] == 0
    assert out["contexts"] == [False, True, False]  # lspilot.completionsPaused for the menus


def test_vscode_usage_words_match_the_server() -> None:
    """usage.ts formats tokens and cost as the server's usage.py does (one figure everywhere)."""
    if shutil.which("node") is None or not (EXTENSION / "node_modules").exists():
        message = "node and the extension's node_modules are needed (setup-e2e.sh)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    compiled = _compiled("usage")
    from lspilot.usage import Priced, Usage, format_cost

    cases = [(11, 2, 3.45e-6, False), (1234, 321, 0.0004740, False), (0, 0, 0.0, False),
             (5, 7, None, True), (10**6, 10**5, 0.24, False), (3, 1, 1.2e-9, True)]
    script = f"""
const {{ describeUsage, formatCost }} = require({json.dumps(str(compiled))});
const cases = {json.dumps(cases)};
console.log(JSON.stringify(cases.map(([p, c, cost, est]) => [
  describeUsage({{ promptTokens: p, completionTokens: c, ...(cost === null ? {{}} : {{ cost }}),
                   ...(est ? {{ estimated: true }} : {{}}) }}),
  cost === null ? null : formatCost(cost),
])));
"""
    run = subprocess.run(["node", "-e", script], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    expected = [[Priced(Usage(p, c, est), cost).describe(),
                 None if cost is None else format_cost(cost)] for p, c, cost, est in cases]
    assert json.loads(run.stdout) == expected


AGENT_STEPS_SCRIPT = r"""
const steps = require(process.argv[1]);
const { formatCostShort } = require(process.argv[2]);
const escape = (t) => t.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const cases = JSON.parse(process.argv[3]);
console.log(JSON.stringify({
  brief: cases.brief.map(([name, args]) => steps.briefArguments(name, args)),
  targets: cases.targets.map((s) => steps.stepTarget(s) ?? null),
  edits: cases.edits.map(([text, old, replacement]) => steps.proposedEdit(text, old, replacement)),
  html: cases.html.map((s) => steps.renderStep(s, escape)),
  costs: cases.costs.map(formatCostShort),
}));
"""


def test_vscode_agent_steps_in_brief() -> None:
    """agentSteps.ts (the chat view's steps) in plain Node: arguments in brief (also when they are
    not JSON), the file and lines a step links to (an edit's from the server's summary), the
    proposed text Show diff compares (the one occurrence of old, as the server's edit_file; none
    when old is missing or found twice), the model's text escaped in a step's HTML, and the cost
    format of a turn ($0.0041: four significant digits, <$0.0001 below)."""
    if shutil.which("node") is None or not (EXTENSION / "node_modules").exists():
        message = "node and the extension's node_modules are needed (setup-e2e.sh)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    compiled = _compiled("agentSteps")
    usage = _compiled("usage")
    evil = '<img src=x onerror=alert(1)>'
    cases = {
        "brief": [["read_file", json.dumps({"path": "a.py", "startLine": 3, "endLine": 9})],
                  ["read_file", json.dumps({"path": "a.py"})],
                  ["run_command", json.dumps({"argv": ["pytest", "-q", "a b"]})],
                  ["search", json.dumps({"pattern": "def add", "glob": "*.py"})],
                  ["edit_file", json.dumps({"path": "a.py", "old": "x\ny", "new": "z"})],
                  ["edit_file", "{not json"]],
        "targets": [{"name": "read_file", "arguments": json.dumps({"path": "a.py", "startLine": 3}),
                     "status": "done"},
                    {"name": "edit_file", "arguments": json.dumps({"path": "a.py"}),
                     "status": "done", "summary": "a.py:12 (-3 +2)"},
                    {"name": "edit_file", "arguments": json.dumps({"path": "a.py"}),
                     "status": "running"},
                    {"name": "run_tests", "arguments": "{}", "status": "done"}],
        "edits": [["a\nb\nc\n", "b\nc", "B"], ["a\na\n", "a", "b"], ["a\n", "zz", "b"]],
        "html": [{"key": "step-1", "id": "call_0", "name": "edit_file", "status": "running",
                  "arguments": json.dumps({"path": evil, "old": "a", "new": evil}),
                  "approval": {"message": f"lspilot's agent wants to edit {evil}",
                               "actions": ["Allow", "Allow for this conversation", "Deny"]}},
                 {"key": "step-2", "id": "call_0", "name": "edit_file", "status": "refused",
                  "arguments": "{}", "summary": "The user refused this call",
                  "approval": {"message": "m", "actions": ["Allow"], "answered": "Deny"}}],
        "costs": [0.0041, 0.00334, 0.00005, 0.0001, 0.1, 1.23456, 0],
    }
    run = subprocess.run(["node", "-e", AGENT_STEPS_SCRIPT, str(compiled), str(usage),
                          json.dumps(cases)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["brief"] == ["a.py lines 3-9", "a.py", 'pytest -q "a b"', '"def add" in *.py',
                            "a.py (-2 +1 lines)", "{not json"]
    assert out["targets"] == [{"path": "a.py", "startLine": 3, "endLine": 3},
                              {"path": "a.py", "startLine": 12, "endLine": 13},
                              {"path": "a.py"}, None]
    assert out["edits"][0] == {"text": "a\nB\n", "startLine": 2, "endLine": 3}
    assert "more than once" in out["edits"][1]["error"]
    assert "not in the file" in out["edits"][2]["error"]
    asked, refused = out["html"]
    assert "<img" not in asked and asked.count("&lt;img") == 4, asked
    assert [m for m in re.findall(r'data-choice="([^"]*)"', asked)] == [
        "Allow", "Allow for this conversation", "Deny"]
    assert "Show diff" in asked and "waiting for your answer" in asked
    assert "You denied it." in refused and "The user refused" not in refused
    assert "data-choice" not in refused and "Show diff" in refused
    # issue 28's one cost format (usage.ts formatCost; formatCostShort is the same function)
    assert out["costs"] == ["$0.0041", "$0.0033", "<$0.0001", "$0.0001", "$0.1000", "$1.235",
                            "$0"]


def _compiled(module: str) -> Path:
    """out/<module>.js, compiled first when its source is newer."""
    compiled = EXTENSION / "out" / f"{module}.js"
    source = EXTENSION / "src" / f"{module}.ts"
    if not compiled.exists() or compiled.stat().st_mtime < source.stat().st_mtime:
        subprocess.run(["npm", "run", "--silent", "compile"], cwd=EXTENSION, check=True,
                       timeout=180, stdin=subprocess.DEVNULL)
    return compiled


def test_vscode_bookkeeping_of_other_streams_is_bounded() -> None:
    """What the extension keeps beyond a run's end (tokens of ended runs, streams it did not start)
    lives in a Recent map, which forgets its oldest entries past its limit."""
    if shutil.which("node") is None or not (EXTENSION / "node_modules").exists():
        message = "node and the extension's node_modules are needed (setup-e2e.sh)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    compiled = EXTENSION / "out" / "recent.js"
    source = EXTENSION / "src" / "recent.ts"
    if not compiled.exists() or compiled.stat().st_mtime < source.stat().st_mtime:
        subprocess.run(["npm", "run", "--silent", "compile"], cwd=EXTENSION, check=True,
                       timeout=180, stdin=subprocess.DEVNULL)
    script = f"""
const {{ Recent }} = require({json.dumps(str(compiled))});
const recent = new Recent(64);
for (let i = 0; i < 100000; i++) recent.set('token-' + i, i);
recent.set('token-99990', 1);  // set again: the newest
for (let i = 0; i < 10; i++) recent.set('again-' + i, i);
console.log(JSON.stringify({{
  size: recent.size,
  newest: recent.get('token-99999'),
  old: recent.has('token-0'),
  refreshed: recent.has('token-99990'),
}}));
"""
    run = subprocess.run(["node", "-e", script], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == {"size": 64, "newest": 99999, "old": False, "refreshed": True}


# --- issue 28, VS Code (edit preview, test output, key onboarding, status): plain-Node checks ----

def _node_or_skip() -> None:
    if shutil.which("node") is None or not (EXTENSION / "node_modules").exists():
        message = "node and the extension's node_modules are needed (setup-e2e.sh)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def _node(script: str, *args: str) -> Any:
    run = subprocess.run(["node", "-e", script, *args], capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


# Issue 28's one cost format (contract 1): the examples that are not rounding ties.
COST_EXAMPLES = [(0, "$0"), (0.00004, "<$0.0001"), (0.0000999, "<$0.0001"), (0.0001, "$0.0001"),
                 (0.0041, "$0.0041"), (0.004123, "$0.0041"), (0.01234, "$0.0123"),
                 (0.5, "$0.5000"), (1.2346, "$1.235"), (12.346, "$12.35"), (1234.6, "$1235"),
                 (0.00334, "$0.0033")]


def test_vscode_cost_format_is_the_contracts() -> None:
    """usage.ts formatCost writes issue 28's examples: `$0.0041`, four significant digits but at
    most four decimals, `<$0.0001` below; the chat view's formatCostShort is the same function."""
    _node_or_skip()
    compiled = _compiled("usage")
    got = _node(f"""
const u = require({json.dumps(str(compiled))});
const xs = {json.dumps([x for x, _ in COST_EXAMPLES])};
console.log(JSON.stringify({{ cost: xs.map(u.formatCost), short: xs.map(u.formatCostShort) }}));
""")
    want = [text for _, text in COST_EXAMPLES]
    assert got["cost"] == want
    assert got["short"] == want


def test_vscode_status_words_split_the_session() -> None:
    """The status tooltip and page: 'no requests yet' (not 'cost unknown') before any request,
    one line per group of `session.groups` (next edits only once used), and the key warning only
    for a host that needs a key."""
    _node_or_skip()
    compiled = _compiled("usage")
    empty = {"requests": 0, "promptTokens": 0, "completionTokens": 0, "cost": 0}
    used = {"requests": 2, "promptTokens": 1234, "completionTokens": 56, "cost": 0.004123}
    statuses = [
        {"model": "gpt-5-4-mini", "baseUrl": "https://api.openai.com/v1", "apiKeySet": False,
         "session": {**empty, "cost": None}},
        {"model": "m", "baseUrl": "local", "apiKeySet": False,
         "session": {**used, "groups": {"actions": used, "chat": empty, "ghostText": empty,
                                        "nextEdits": empty}}},
        {"model": "m", "baseUrl": "http://127.0.0.1:9/v1", "apiKeySet": True,
         "session": {**used, "cost": None,
                     "groups": {"actions": empty, "chat": empty, "ghostText": empty,
                                "nextEdits": {**used, "cost": None}}}},
    ]
    got = _node(f"""
const u = require({json.dumps(str(compiled))});
const statuses = {json.dumps(statuses)};
console.log(JSON.stringify(statuses.map((s) => ({{ lines: u.describeStatus(s, 'on'), key: u.needsKey(s) }}))));
""")
    first, local, priced_unknown = got
    assert "This session: no requests yet" in first["lines"], first
    assert not any("cost unknown" in line for line in first["lines"]), first
    assert first["key"] is True and local["key"] is False and priced_unknown["key"] is False
    assert "API key: not set (needed: lspilot: Set API key)" in first["lines"]
    assert [line.strip() for line in local["lines"] if line.startswith("  ")] == [
        "Actions: 2 requests, 1,234 tokens in, 56 out, $0.0041",
        "Chat: no requests yet",
        "Ghost text: no requests yet",
    ]
    assert ("This session: 2 requests, 1,234 tokens in, 56 out, cost unknown (no price for the "
            "model; see lspilot.prices)") in priced_unknown["lines"]
    assert "  Next edits: 2 requests, 1,234 tokens in, 56 out, cost unknown" in \
        priced_unknown["lines"]


def test_vscode_preview_text_is_the_edit_applied() -> None:
    """previewText.ts: the proposed side of the preview is the document with the LSP edits
    applied (ranges of the original text, CRLF lines, a created file); the edit accepted is the
    same edit without its change annotations; only an annotation that needs confirmation asks."""
    _node_or_skip()
    compiled = _compiled("previewText")

    def edit(sl: int, sc: int, el: int, ec: int, text: str) -> dict[str, Any]:
        return {"range": {"start": {"line": sl, "character": sc},
                          "end": {"line": el, "character": ec}},
                "newText": text, "annotationId": "lspilot"}

    source = "def add(x, y):\n    result = x\n    return result\n"
    annotated = {
        "documentChanges": [
            {"kind": "create", "uri": "file:///w/test_calc.py", "annotationId": "lspilot",
             "options": {"ignoreIfExists": True}},
            {"textDocument": {"uri": "file:///w/test_calc.py", "version": None},
             "edits": [edit(0, 0, 0, 0, "def test_add():\n    assert add(1, 2) == 3\n")]},
            {"textDocument": {"uri": "file:///w/calc.py", "version": 3},
             "edits": [edit(1, 4, 2, 17, "return x + y"), edit(0, 8, 0, 12, "a, b")]},
        ],
        "changeAnnotations": {"lspilot": {"label": "lspilot", "needsConfirmation": True}},
    }
    got = _node(f"""
const p = require({json.dumps(str(compiled))});
const e = {json.dumps(annotated)};
const files = p.fileChanges(e);
const plain = p.withoutAnnotations(e);
console.log(JSON.stringify({{
  needs: p.needsConfirmation(e),
  plainNeeds: p.needsConfirmation(plain),
  unconfirmed: p.needsConfirmation({{ changeAnnotations: {{ x: {{ label: 'x' }} }} }}),
  files: files.map((f) => ({{ uri: f.uri, created: f.created, version: f.version ?? null }})),
  created: p.applyTextEdits('', files[0].edits),
  changed: p.applyTextEdits({json.dumps(source)}, files[1].edits),
  crlf: p.applyTextEdits('a\\r\\nbc\\r\\n', [{{ range: {{ start: {{ line: 1, character: 0 }}, end: {{ line: 1, character: 99 }} }}, newText: 'X' }}]),
  plain,
}}));
""")
    assert got["needs"] is True and got["plainNeeds"] is False and got["unconfirmed"] is False
    assert got["files"] == [
        {"uri": "file:///w/test_calc.py", "created": True, "version": None},
        {"uri": "file:///w/calc.py", "created": False, "version": 3},
    ]
    assert got["created"] == "def test_add():\n    assert add(1, 2) == 3\n"
    assert got["changed"] == "def add(a, b):\n    return x + y\n"
    assert got["crlf"] == "a\r\nX\r\n"
    plain = got["plain"]
    assert "changeAnnotations" not in plain
    assert "annotationId" not in json.dumps(plain)
    assert plain["documentChanges"][0] == {"kind": "create", "uri": "file:///w/test_calc.py",
                                           "options": {"ignoreIfExists": True}}


# --- issue 28, VS Code, in code-server: preview, declined, Show output, Set API key, status page --

UX_KEY = "sk-set-from-the-error"
UX_REJECTED = "    return math.pi * r ** 2"


def test_vscode_preview_output_key_and_status(
    prerequisites: None, upstream: FakeUpstream, tmp_path: Path
) -> None:
    """Issue 28's VS Code screens, as a new user meets them: with no key for the endpoint the
    status item warns, and the error of the first action offers "Set API key…", which stores one in
    secret storage; with confirmEdits, Refactor opens lspilot's own diff (the proposed text on the
    right) with Accept / Reject in its title bar (the progress "Waiting for your review…" without
    Cancel meanwhile): Accept applies it, Reject leaves the file and
    says "not applied: you declined it"; Write tests previews the new file, is accepted from the
    status bar, runs the tests (Run) and offers "Show output" (the "lspilot tests" channel with the
    command and its output), and the test file is not left marked unsaved; Show status is a quick
    pick splitting the session into actions, chat and ghost text. Screenshots: ux-*.png."""
    profile = _profile(
        tmp_path,
        user_settings={
            "lspilot.serverCommand": _server_command(),
            # the user's own setting: the new tests run with this interpreter's pytest
            "lspilot.testCommand": {"python": [sys.executable, "-m", "pytest", "-q", "{file}"]},
        },
        workspace_settings={"lspilot.maxRetries": 0, "lspilot.inlineCompletions": False,
                            "lspilot.nextEditSuggestions": False, "lspilot.confirmEdits": True,
                            "lspilot.testRepairRounds": 0},
    )
    fence = "```python\n"
    upstream.enqueue(
        Reply.stream([fence, "def add(a, b):\n", "    return a + b\n", "```\n"], delay=0.02),
        Reply.stream([fence, "def area(r):\n", UX_REJECTED + "\n", "```\n"], delay=0.02),
        Reply.stream([fence, "from calc import add\n\n\n", TEST_CODE + "\n", "```\n"],
                     delay=0.02),
    )
    upstream.default = Reply.stream(["unexpected extra request"])
    # no key anywhere: the user sets it from the error; the default model (priced)
    server_env = {"LSPILOT_BASE_URL": upstream.base_url}
    expect = {
        "original": ORIGINAL,
        "file": "calc.py",
        "model": "gpt-5-4-mini",
        "apiKey": UX_KEY,
        "explainLines": [4, 4],
        "refactorLines": [4, 4],
        "refactoredCode": REFACTORED_CODE,
        "rejectLines": [8, 2],
        "rejectedCode": UX_REJECTED.strip(),
        "testLines": [4, 2],
        "testFile": "test_calc.py",
        "testCode": TEST_CODE,
        "testCommandShown": "-m pytest -q",
    }
    _run_scenario(profile, server_env, "ux", expect)

    # The explain without a key asked nothing upstream; the three requests after carried the key
    # set from the error's button.
    requests = upstream.wait_for_requests(3, timeout=5)
    assert len(upstream.requests) == 3, [r.json["messages"][-1] for r in upstream.requests]
    assert all(r.headers.get("authorization") == f"Bearer {UX_KEY}" for r in requests)
    saved = profile.workspace.joinpath("calc.py").read_text()
    assert UX_REJECTED not in saved, saved
    assert TEST_CODE in profile.workspace.joinpath("test_calc.py").read_text()


def test_vscode_agent_show_diff_accepts(
    prerequisites: None, upstream: FakeUpstream, tmp_path: Path
) -> None:
    """Agent mode: Show diff on the edit the agent asks about has Accept / Reject in its title
    bar (as the edit preview); Accept answers the question Allow, the edit is applied and the
    diff closes. Screenshot: ux-agent-diff-accept.png."""
    from tests.e2e.test_agent import tool_reply

    profile = _profile(
        tmp_path,
        user_settings={"lspilot.serverCommand": _server_command()},
        workspace_settings={"lspilot.maxRetries": 0, "lspilot.inlineCompletions": False,
                            "lspilot.nextEditSuggestions": False},
    )
    upstream.enqueue(
        tool_reply(("edit_file", {"path": "calc.py", "old": AGENT_OLD, "new": AGENT_NEW})),
        Reply.stream([AGENT_DONE]),
    )
    upstream.default = Reply.stream(["unexpected extra request"])
    server_env = {"LSPILOT_BASE_URL": upstream.base_url, "LSPILOT_API_KEY": "sk-agent",
                  "LSPILOT_MODEL": "fake-model"}
    expect = {"original": ORIGINAL, "file": "calc.py", "fix": AGENT_FIX, "edited": AGENT_EDITED,
              "editDiffNew": AGENT_NEW.strip()}
    _run_scenario(profile, server_env, "ux-agent", expect)
    requests = upstream.wait_for_requests(2, timeout=5)
    assert requests[1].json["messages"][-1]["content"].startswith("Edited calc.py")
