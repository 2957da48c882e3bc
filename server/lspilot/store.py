"""The settings store: layers, per-folder settings, readiness, reloads, key refresh.

The store knows nothing of LSP: what it needs from the editor (whether it can be asked for
settings, the workspace folders, the answer to ``workspace/configuration``) comes through a
:class:`SettingsSource`. Parts of lspilot that depend on the settings (the TLS switch, the
concurrency lanes, secret scrubbing) subscribe to it instead of being wired into a reload.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import attrs

from lspilot import logs
from lspilot.key_hosts import AllowedHosts, Redirect, redirect
from lspilot.keys import resolve_key_command
from lspilot.settings import (
    LOCAL_BASE_URL,
    ApiKey,
    Layer,
    Settings,
    environment_layer,
    resolve,
    unwrap_section,
)

log = logging.getLogger(__name__)

# How long an action waits for the editor's first settings before running with what it has.
SETTINGS_WAIT = 30.0
# How long it waits for a reload once the editor has answered for its settings before: the
# action then runs on those. Under load, eglot was seen answering a reload's
# workspace/configuration too late for its own 10 s request timeout on the action.
RELOAD_WAIT = 3.0

Subscriber = Callable[[Settings], Awaitable[None] | None]
Ask = Callable[[str, list[str]], Awaitable[str | None]]


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
        self.init_options: Mapping[str, Any] = {}
        self.workspace_settings: Mapping[str, Any] = {}
        # The `lspilot` section per workspace folder (asked with the folder as scopeUri),
        # where it differs from the unscoped one: a multi-root workspace, or a folder's
        # own .vscode/settings.json.
        self.folder_sections: dict[str, Mapping[str, Any]] = {}
        self.folder_settings: dict[str, Settings] = {}
        # Where the workspace settings move a key set elsewhere (lspilot.key_hosts), by
        # folder ("" for the unscoped settings).
        self.redirects: dict[str, Redirect | None] = {}
        self.allowed_hosts = AllowedHosts(cache_dir / "allowed-key-hosts.json")
        self._declined_hosts: set[str] = set()
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
        """Whether the workspace settings (not the user's own) set any of ``keys``."""
        folder = self.folder_of(uri) if uri else ""
        section = self.folder_sections.get(folder, self.workspace_settings)
        return any(section.get(key) is not None for key in keys)

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
        layers = [self.environment, Layer("initializationOptions", self.init_options),
                  Layer("workspace settings", self.workspace_settings)]
        resolved = resolve(layers, previous=self.settings)
        settings = resolved.settings
        problems = list(resolved.problems)
        if settings.api_key is None and settings.api_key_command:
            key, problem = await resolve_key_command(settings.api_key_command)
            if problem:
                problems.append(problem)
            settings = settings if key is None else _with_key(settings, key)
        if settings.api_key is not None:
            logs.register_secret(settings.api_key.reveal())
        if not settings.verify_tls:
            log.warning("TLS certificate checks are off (verifyTls: false): "
                        "only use this with a server you trust on your own network.")
        self.settings = settings
        user_base_url = resolve(layers[:2]).settings.base_url
        self.redirects = {"": _redirect(user_base_url, settings, self.workspace_settings)}
        self.folder_settings = {}
        for folder, section in self.folder_sections.items():
            scoped = resolve([*layers[:2], Layer(f"workspace settings of {folder}", section)],
                             previous=settings)
            problems.extend(p for p in scoped.problems if p not in problems)
            folder_settings = scoped.settings
            if folder_settings.api_key is None and (
                    folder_settings.api_key_command == settings.api_key_command):
                folder_settings = attrs.evolve(folder_settings, api_key=settings.api_key)
            self.folder_settings[folder] = folder_settings
            self.redirects[folder] = _redirect(user_base_url, folder_settings, section)
        for subscriber in self._subscribers:
            done = subscriber(settings)
            if done is not None:
                await done
        if problems:
            for problem in problems:
                log.warning("%s", problem)
            for listener in self._problem_listeners:
                listener(problems)

    # -- the key -------------------------------------------------------------------------
    async def refresh_key(self) -> str | None:
        """Ask apiKeyCommand for the key again; keep it when it gives one."""
        command = self.settings.api_key_command
        if not command:
            return None
        key, problem = await resolve_key_command(command)
        if key is None:
            log.warning("%s", problem)
            return None
        logs.register_secret(key)
        self.settings = _with_key(self.settings, key)
        # Folders that take their key from the same command get the new one too.
        self.folder_settings = {
            folder: _with_key(folder_settings, key)
            if folder_settings.api_key_command == command else folder_settings
            for folder, folder_settings in self.folder_settings.items()
        }
        return key

    async def key_refusal(self, uri: str | None, ask: Ask | None) -> str | None:
        """None when the key may go where the settings for ``uri`` send it, else why not.

        The first time a workspace moves the key to another host, the user is asked
        (``ask`` None: not asked now, and not taken as a no).
        """
        moved = self.redirects.get(self.folder_of(uri) if uri else "")
        if moved is None or self.allowed_hosts.allows(moved.to_host):
            return None
        async with self._asking:  # one question at a time, however many actions wait
            if self.allowed_hosts.allows(moved.to_host):
                return None
            if ask is not None and moved.to_host not in self._declined_hosts:
                send = f"Send it to {moved.to_host}"
                answer = await ask(
                    f"lspilot: the workspace settings set baseUrl to {moved.to_host}, but your "
                    f"API key was set for {moved.from_host}. Send your key to "
                    f"{moved.to_host}?", [send, "Don't send"])
                if answer == send:
                    self.allowed_hosts.allow(moved.to_host)
                    return None
                self._declined_hosts.add(moved.to_host)
        return (f"Your API key was not sent to {moved.to_host}: the workspace settings chose "
                f"that host, and the key was set for {moved.from_host}. Allow it when lspilot "
                "asks (restart lspilot to be asked again), or set baseUrl where the key is "
                "set (the environment or initializationOptions).")


def _redirect(user_base_url: str, settings: Settings,
              section: Mapping[str, Any]) -> Redirect | None:
    """Whether the workspace section moves a key set by the user's layers to another host."""
    from_workspace = any(section.get(k) is not None for k in ("apiKey", "apiKeyCommand"))
    if settings.base_url == LOCAL_BASE_URL:
        return None  # lspilot's own llama.cpp gets a dummy key, never the user's
    return redirect(user_base_url, settings.base_url, from_workspace,
                    settings.api_key is not None or bool(settings.api_key_command))


def _with_key(settings: Settings, key: str) -> Settings:
    return attrs.evolve(settings, api_key=ApiKey(key))
