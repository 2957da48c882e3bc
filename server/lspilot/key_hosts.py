"""The API key goes to the place it was set for, unless the user says otherwise.

The settings layers come from different hands: the environment, the settings file and
``initializationOptions`` from the user's own setup, the ``workspace/configuration`` section
often from files inside the project (``.vscode/settings.json``, ``.zed/settings.json``,
``.dir-locals.el``). A repository must not be able to move the user's key elsewhere. So
when the key that would be sent comes from the user's layers and the final ``baseUrl`` is
another origin (scheme, host and port: https to http is a move too) than the user's layers
give, the key is sent there only once the user has allowed that origin (asked once; the
answer is remembered, owner-only, in the cache directory). What decides is where the key
actually sent came from, never what a section merely contains.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from attrs import define

_DEFAULT_PORTS = {"http": 80, "https": 443}


@define(frozen=True)
class Redirect:
    """The workspace settings send a key set elsewhere to ``to_origin``."""

    from_origin: str
    to_origin: str


def origin_of(base_url: str) -> str:
    """``scheme://host[:port]``: where a request goes, as the user should see it. Userinfo
    is left out (``https://api.example@evil.example`` goes to evil.example); the port only
    when it is not the scheme's default."""
    parts = urlsplit(base_url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"  # an IPv6 literal
    shown_port = f":{port}" if port is not None and port != _DEFAULT_PORTS.get(scheme) else ""
    return f"{scheme}://{host}{shown_port}" if host else ""


def redirect(user_base_url: str, base_url: str, *, users_key: bool) -> Redirect | None:
    """The move to ask about, if sending the key to ``base_url`` makes one.

    ``users_key``: the key that would be sent came from the user's own layers (a key the
    workspace supplied itself goes where the workspace says).
    """
    if not users_key:
        return None
    before, after = origin_of(user_base_url), origin_of(base_url)
    if not after or before == after:
        return None
    return Redirect(before, after)
