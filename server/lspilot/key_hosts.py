"""The API key goes to the host it was set for, unless the user says otherwise.

The settings layers come from different hands: the environment and
``initializationOptions`` from the user's own editor setup, the ``workspace/configuration``
section often from files inside the project (``.vscode/settings.json``,
``.zed/settings.json``, ``.dir-locals.el``). A repository must not be able to move the
user's key to a host of its choosing. So when the workspace settings set ``baseUrl`` to
another host than the user's layers give, and the key comes from the user's layers, the
key is sent there only once the user has allowed that host (asked once; the answer is
remembered, owner-only, in the cache directory).
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from urllib.parse import urlsplit

from attrs import define


@define(frozen=True)
class Redirect:
    """The workspace settings send a key set elsewhere to ``to_host`` instead of ``from_host``."""

    from_host: str
    to_host: str


def host_of(base_url: str) -> str:
    return urlsplit(base_url).netloc.lower()


def redirect(user_base_url: str, base_url: str, key_from_workspace: bool,
             has_key: bool) -> Redirect | None:
    """The redirect to ask about, if the final settings make one."""
    if not has_key or key_from_workspace:
        return None
    before, after = host_of(user_base_url), host_of(base_url)
    if not after or before == after:
        return None
    return Redirect(before, after)


class AllowedHosts:
    """Strings the user allowed, kept across restarts: hosts allowed to receive a key set
    for another host; workspace folders whose tests lspilot may always run."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._allowed: set[str] | None = None

    def allows(self, host: str) -> bool:
        return host in self._load()

    def allow(self, host: str) -> None:
        hosts = self._load()
        hosts.add(host)
        with contextlib.suppress(OSError):  # then it is asked again after a restart
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            descriptor = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                json.dump(sorted(hosts), handle)

    def _load(self) -> set[str]:
        if self._allowed is None:
            try:
                loaded = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                loaded = []
            self._allowed = {h for h in loaded if isinstance(h, str)} if isinstance(
                loaded, list) else set()
        return self._allowed
