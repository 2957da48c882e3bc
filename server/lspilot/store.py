"""The settings store: layers, per-folder settings, readiness, reloads, key refresh.

The store knows nothing of LSP: what it needs from the editor (whether it can be asked for
settings, the workspace folders, the answer to ``workspace/configuration``) comes through a
:class:`SettingsSource`. Parts of lspilot that depend on the settings (the TLS switch, the
concurrency lanes, secret scrubbing) subscribe to it instead of being wired into a reload.
"""

from __future__ import annotations

import asyncio
import logging
import shlex
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import attrs
from attrs import define

from lspilot import consent, logs
from lspilot.backends import backend_for
from lspilot.consent import Ask
from lspilot.key_hosts import Redirect, redirect
from lspilot.keys import resolve_key_command
from lspilot.settings import (
    ApiKey,
    Layer,
    Resolved,
    Settings,
    environment_layer,
    resolve,
    unwrap_section,
)
from lspilot.settings_file import settings_file_layer

log = logging.getLogger(__name__)

# How long an action waits for the editor's first settings before running with what it has.
SETTINGS_WAIT = 30.0
# How long it waits for a reload once the editor has answered for its settings before: the
# action then runs on those. Under load, eglot was seen answering a reload's
# workspace/configuration too late for its own 10 s request timeout on the action.
RELOAD_WAIT = 3.0

Subscriber = Callable[[Settings], Awaitable[None] | None]
# What a workspace's apiKeyCommand is remembered under once the user let it run.
KEY_COMMAND = "apiKeyCommand"


class SettingsSource(Protocol):
    """The editor, as far as the settings are concerned."""

    def can_be_asked(self) -> bool: ...

    def folders(self) -> list[str]: ...

    async def configuration(self, scopes: list[str | None]) -> Sequence[Any]:
        """The ``lspilot`` section for each scope URI (None: unscoped)."""
        ...


class SettingsStore:
    def __init__(self, environ: Mapping[str, str], cache_dir: Path) -> None:
        self.environment = environment_layer(environ)
        self.settings_file, self._file_problems = settings_file_layer(environ)
        self.init_options: Mapping[str, Any] = {}
        self.workspace_settings: Mapping[str, Any] = {}
        # The `lspilot` section per workspace folder (asked with the folder as scopeUri),
        # where it differs from the unscoped one: a multi-root workspace, or a folder's
        # own .vscode/settings.json.
        self.folder_sections: dict[str, Mapping[str, Any]] = {}
        self.folder_settings: dict[str, Settings] = {}
        # Per folder ("" for the unscoped settings): the settings, where each came from,
        # the key that is sent and whether the workspace moves it (lspilot.key_hosts).
        self._scopes: dict[str, Scope] = {
            "": Scope(Settings(), Resolved(Settings(), ()), users_key=False)}
        # Origins the user let receive a key set for another; commands a workspace chose
        # that the user let run.
        self.allowed_hosts = consent.Remembered(cache_dir / "allowed-key-hosts.json")
        self.remembered = consent.Remembered(cache_dir / "allowed-commands.json")
        self._declined: set[str] = set()  # this session: not asked again
        self._asking = asyncio.Lock()
        self.settings = Settings()
        self._subscribers: list[Subscriber] = []
        self._problem_listeners: list[Callable[[list[str]], None]] = []
        # Set once the first settings are in: actions wait for it so that an action sent
        # right after `initialized` does not run on settings the editor is overriding.
        self.ready = asyncio.Event()
        # Reloads asked for and not done yet: ready only when none is left (an earlier
        # reload that ends first must not let actions run on the settings of a later one).
        self._reloads_pending = 0
        self._reload_lock = asyncio.Lock()  # one at a time, in the order they were asked
        self._answered = False  # the editor has answered for its settings at least once

    # -- subscriptions -------------------------------------------------------------------
    def subscribe(self, subscriber: Subscriber) -> None:
        """Call ``subscriber`` with the (unscoped) settings after every reload."""
        self._subscribers.append(subscriber)

    def on_problems(self, listener: Callable[[list[str]], None]) -> None:
        """Call ``listener`` with the refused settings of a reload, when there are any."""
        self._problem_listeners.append(listener)

    # -- reading -------------------------------------------------------------------------
    def folder_of(self, uri: str) -> str:
        """The innermost workspace folder with settings of its own holding ``uri``, or ""."""
        inside = [f for f in self.folder_settings
                  if uri == f or uri.startswith(f.rstrip("/") + "/")]
        return max(inside, key=len) if inside else ""

    def settings_for(self, uri: str | None) -> Settings:
        """The settings of the innermost workspace folder holding ``uri``."""
        folder = self.folder_of(uri) if uri else ""
        return self.folder_settings[folder] if folder else self.settings

    def set_by_workspace(self, uri: str | None, keys: tuple[str, ...]) -> bool:
        """Whether any of ``keys`` has its value for ``uri`` from a workspace's settings
        (not the user's own), refused values not counting."""
        return self._scope(uri).resolved.set_by_workspace(*keys)

    async def wait_until_ready(self) -> None:
        if self.ready.is_set():
            return
        wait = RELOAD_WAIT if self._answered else SETTINGS_WAIT
        try:
            await asyncio.wait_for(self.ready.wait(), wait)
        except TimeoutError:
            if self._answered:
                log.warning("The editor has not answered for its changed settings in %g s; "
                            "running on the settings it gave before.", wait)
                return  # the reload still sets ready when it ends
            log.warning("No settings from the editor yet; running with what we have.")
            self.ready.set()

    # -- loading -------------------------------------------------------------------------
    async def start(self, init_options: Any, source: SettingsSource) -> None:
        """The second layer arrived (``initialize``); ready at once when the editor
        cannot be asked for more."""
        self.init_options = unwrap_section(init_options)
        await self._reload()
        if not source.can_be_asked():
            self.ready.set()

    def expect_reload(self) -> None:
        """A reload is on its way: actions from now on wait for it."""
        self._reloads_pending += 1
        self.ready.clear()

    async def refresh(self, source: SettingsSource, pushed: Mapping[str, Any] | None = None,
                      *, expected: bool = False) -> None:
        """Read the settings again: pulled from the editor, or as it pushed them.

        ``expected``: :meth:`expect_reload` was called for this one already.
        """
        if not expected:
            self.expect_reload()
        try:
            async with self._reload_lock:
                if source.can_be_asked():
                    await self._pull(source)
                elif pushed is not None:
                    self.workspace_settings = unwrap_section(pushed)
                await self._reload()
        finally:
            self._reloads_pending -= 1
            if self._reloads_pending == 0:
                self.ready.set()

    async def _pull(self, source: SettingsSource) -> None:
        """Ask for the `lspilot` section, unscoped and for each workspace folder."""
        folders = source.folders()
        try:
            values = await asyncio.wait_for(source.configuration([None, *folders]), 10)
        except Exception as exc:
            log.warning("Could not read the editor's lspilot settings: %s", exc)
            return
        self._answered = True
        sections = [v if isinstance(v, Mapping) else None for v in values or []]
        self.workspace_settings = (sections[0] if sections else None) or {}
        # A folder the editor has nothing of its own for (null, or the same section) uses
        # the unscoped settings.
        self.folder_sections = {
            uri: section for uri, section in zip(folders, sections[1:], strict=False)
            if section is not None and section != self.workspace_settings
        }

    async def _reload(self) -> None:
        user_layers = [self.environment, self.settings_file,
                       Layer("initializationOptions", self.init_options)]
        sections = {"": Layer("workspace settings", self.workspace_settings, users_own=False)}
        sections.update({
            folder: Layer(f"workspace settings of {folder}", section, users_own=False)
            for folder, section in self.folder_sections.items()})
        problems = list(self._file_problems)
        user_base_url = resolve(user_layers).settings.base_url
        keys_read: dict[tuple[str, ...], str | None] = {}  # each command runs once a reload
        scopes: dict[str, Scope] = {}
        for folder, section in sections.items():
            previous = self._scopes.get(folder) or self._scopes.get("")
            resolved = resolve([*user_layers, section],
                               previous=previous.resolved if previous else None)
            problems.extend(p for p in resolved.problems if p not in problems)
            scopes[folder] = await self._keyed(resolved, user_base_url, keys_read, problems)
        self._scopes = scopes
        settings = scopes[""].settings
        if not settings.verify_tls:
            log.warning("TLS certificate checks are off (verifyTls: false): "
                        "only use this with a server you trust on your own network.")
        self.settings = settings
        self.folder_settings = {folder: scope.settings for folder, scope in scopes.items()
                                if folder}
        for subscriber in self._subscribers:
            done = subscriber(settings)
            if done is not None:
                await done
        if problems:
            for problem in problems:
                log.warning("%s", problem)
            for listener in self._problem_listeners:
                listener(problems)

    async def _keyed(self, resolved: Resolved, user_base_url: str,
                     keys_read: dict[tuple[str, ...], str | None],
                     problems: list[str]) -> Scope:
        """One scope's settings with the key that will be sent, and where it came from."""
        settings = resolved.settings
        command = settings.api_key_command
        if settings.api_key is not None:
            users_key = resolved.origins["apiKey"].users_own
            scope = Scope(settings, resolved, users_key=users_key)
        elif command:
            users_key = resolved.origins["apiKeyCommand"].users_own
            scope = Scope(settings, resolved, users_key=users_key, key_command=command)
            if users_key or self.remembered.allows(consent.command_entry(KEY_COMMAND, command)):
                if command not in keys_read:
                    key, problem = await resolve_key_command(command)
                    keys_read[command] = key
                    if problem:
                        problems.append(problem)
                key = keys_read[command]
                if key is not None:
                    scope = attrs.evolve(scope, settings=_with_key(settings, key))
            else:
                scope = attrs.evolve(scope, command_pending=True)
        else:
            return Scope(settings, resolved, users_key=False)
        if scope.settings.api_key is not None:
            logs.register_secret(scope.settings.api_key.reveal())
        if not backend_for(scope.settings).local:  # llama.cpp gets a dummy key
            moved = redirect(user_base_url, scope.settings.base_url, users_key=scope.users_key)
            scope = attrs.evolve(scope, redirect=moved)
        return scope

    # -- the key -------------------------------------------------------------------------
    def _scope(self, uri: str | None) -> Scope:
        folder = self.folder_of(uri) if uri else ""
        return self._scopes.get(folder) or self._scopes[""]

    def key_refresher(self, uri: str | None) -> Callable[[], Awaitable[str | None]] | None:
        """Reads the key again after a 401, when the key sent for ``uri`` came from
        ``apiKeyCommand`` (and only then: a command that is not the key's source, such as a
        workspace's beside a key from the environment, never runs)."""
        scope = self._scope(uri)
        command = scope.key_command
        if command is None or scope.command_pending or scope.settings.api_key is None:
            return None

        async def refresh() -> str | None:
            key, problem = await resolve_key_command(command)
            if key is None:
                log.warning("%s", problem)
                return None
            self._set_command_key(command, key)
            return key

        return refresh

    def _set_command_key(self, command: tuple[str, ...], key: str) -> None:
        """Every scope whose key comes from ``command`` gets ``key``."""
        logs.register_secret(key)
        for folder, scope in list(self._scopes.items()):
            if scope.key_command == command:
                self._scopes[folder] = attrs.evolve(
                    scope, settings=_with_key(scope.settings, key), command_pending=False)
        self.settings = self._scopes[""].settings
        self.folder_settings = {folder: scope.settings
                                for folder, scope in self._scopes.items() if folder}

    async def key_refusal(self, uri: str | None, ask: Ask | None) -> str | None:
        """None when the key may go where the settings for ``uri`` send it, else why not.

        The first time a workspace moves the key to another origin, or wants its own
        ``apiKeyCommand`` run, the user is asked (``ask`` None: not asked now, and not
        taken as a no).
        """
        scope = self._scope(uri)
        if scope.command_pending and scope.key_command is not None:
            refused = await self._run_workspace_key_command(scope.key_command, ask)
            if refused is not None:
                return refused
            scope = self._scope(uri)
        moved = scope.redirect
        if moved is None or self.allowed_hosts.allows(moved.to_origin):
            return None
        async with self._asking:  # one question at a time, however many actions wait
            question = consent.Question(
                f"The workspace settings set baseUrl to {moved.to_origin}, but your "
                f"API key was set for {moved.from_origin}. Send your key to "
                f"{moved.to_origin}?", allow=f"Send it to {moved.to_origin}",
                deny="Don't send")
            asked = ask if moved.to_origin not in self._declined else None
            if await consent.decide("ask", question, asked, remembered=self.allowed_hosts,
                                    entry=moved.to_origin):
                self.allowed_hosts.allow(moved.to_origin)
                return None
            if ask is not None:
                self._declined.add(moved.to_origin)
        return (f"Your API key was not sent to {moved.to_origin}: the workspace settings chose "
                f"it, and the key was set for {moved.from_origin}. Allow it when lspilot "
                "asks (restart lspilot to be asked again), or set baseUrl where the key is "
                "set (the environment, the settings file or initializationOptions).")

    async def _run_workspace_key_command(self, command: tuple[str, ...],
                                         ask: Ask | None) -> str | None:
        """Run a workspace's own ``apiKeyCommand`` once the user allowed that exact command."""
        shown = shlex.join(command)
        async with self._asking:
            if not any(s.command_pending and s.key_command == command
                       for s in self._scopes.values()):
                return None  # allowed and read while this one waited
            question = consent.Question(
                f"The workspace settings want to run `{shown}` to read an API key. "
                "Run it? (It runs as you, now and after a refused key.)",
                allow="Run it", deny="Don't run")
            entry = consent.command_entry(KEY_COMMAND, command)
            asked = ask if entry not in self._declined else None
            if not await consent.decide("ask", question, asked):
                if ask is not None:
                    self._declined.add(entry)
                return (f"The workspace's apiKeyCommand `{shown}` was not run, so no key was "
                        "sent. Allow it when lspilot asks (restart lspilot to be asked "
                        "again), or set apiKey or apiKeyCommand in your own settings.")
            self.remembered.allow(entry)
            key, problem = await resolve_key_command(command)
            if key is None:
                return problem
            self._set_command_key(command, key)
            return None


@define(frozen=True)
class Scope:
    """The settings for one workspace folder (or the unscoped ones) and their key."""

    settings: Settings
    resolved: Resolved
    # The key that is sent came from the user's own layers (not a workspace's).
    users_key: bool
    key_command: tuple[str, ...] | None = None  # the key is this command's output
    # A workspace's apiKeyCommand the user has not allowed yet: asked before it runs.
    command_pending: bool = False
    redirect: Redirect | None = None


def _with_key(settings: Settings, key: str) -> Settings:
    return attrs.evolve(settings, api_key=ApiKey(key))
