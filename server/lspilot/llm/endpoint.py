"""Where and how to reach the upstream: its base URL, key, retries, time-outs and limits."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import attrs
from attrs import define, field

from lspilot import settings as _settings

if TYPE_CHECKING:
    from lspilot.settings import Settings

CHAT_PATH = "chat/completions"
COMPLETIONS_PATH = "completions"


def _default(name: str) -> Any:
    # The defaults live once, in the settings: an endpoint made by hand (a test, `check`)
    # behaves like one made from settings nobody changed.
    return getattr(attrs.fields(_settings.Settings), name).default


@define(frozen=True, kw_only=True)
class Endpoint:
    """Where and how to reach the upstream, taken from the settings at request time."""

    base_url: str
    api_key: str | None = field(repr=False)
    max_retries: int = _default("max_retries")
    retry_base_seconds: float = _default("retry_base_seconds")
    connect_timeout: float = _default("connect_timeout")
    idle_timeout: float = _default("idle_timeout")
    max_response_chars: int = _default("max_response_chars")

    @classmethod
    def from_settings(cls, settings: Settings) -> Endpoint:
        return cls(
            base_url=settings.base_url,
            api_key=settings.api_key.reveal() if settings.api_key else None,
            max_retries=settings.max_retries,
            retry_base_seconds=settings.retry_base_seconds,
            connect_timeout=settings.connect_timeout,
            idle_timeout=settings.idle_timeout,
            max_response_chars=settings.max_response_chars,
        )

    def url_for(self, path: str) -> str:
        """``{baseUrl}/{path}``, e.g. ``url_for(COMPLETIONS_PATH)``."""
        return f"{self.base_url.rstrip('/')}/{path}"

    @property
    def url(self) -> str:
        """The Chat Completions URL (kept under its old name)."""
        return self.url_for(CHAT_PATH)

    @property
    def chat_url(self) -> str:
        return self.url_for(CHAT_PATH)

    @property
    def completions_url(self) -> str:
        return self.url_for(COMPLETIONS_PATH)

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).netloc
