"""Upstream failures, typed by what the caller should do about them.

Each error carries the upstream's own message where there is one, a ``kind`` for the
command result's ``error.type``, and a ``hint``: what the user can do. None of them
ever holds the API key: messages are scrubbed before they are stored.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

from lspilot.errors import LspilotError


class UpstreamError(LspilotError):
    kind = "upstream"
    retryable: ClassVar[bool] = False
    # How many requests were sent before this error ended the answer: more than 1 when
    # the client retried and gave up (set only on the copy that :meth:`evolve` makes).
    attempts: int = 1

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        hint: str = "",
        partial_text: str = "",
        detail: str = "",
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.retry_after = retry_after
        self.partial_text = partial_text
        # The upstream's own words (scrubbed), apart from ours: what a refused parameter is
        # recognised by, so that a host name in our message can never match.
        self.detail = detail

    def evolve(self, *, message: str | None = None, hint: str | None = None,
               attempts: int | None = None) -> Self:
        """A copy of this error, of the same class, with these changes.

        An error may be held elsewhere (a log record, a retry callback, a test) once it
        is raised: changing it in place would rewrite what they saw. Raise the copy
        ``from`` the original instead.
        """
        copied = type(self).__new__(type(self))
        copied.__dict__.update(self.__dict__)
        if message is not None:
            copied.message = message
        if hint is not None:
            copied.hint = hint
        if attempts is not None:
            copied.attempts = attempts
        copied.args = (copied.message,)
        return copied


# Where a key goes, best first: the editor's command keeps it in secret storage (VS Code),
# the environment keeps it out of settings files, the plain-text setting comes last.
SET_KEY_WAYS = ('the editor\'s "lspilot: Set API key" command, the environment variable '
                "LSPILOT_API_KEY (or OPENAI_API_KEY), or the setting apiKey")


class MissingApiKey(UpstreamError):
    kind = "no_api_key"


class BadRequest(UpstreamError):
    """400/422: the payload is wrong; retrying the same request cannot help."""

    kind = "bad_request"


class AuthenticationFailed(UpstreamError):
    """401/403: the key is missing, wrong, or lacks access."""

    kind = "authentication"


class NotFound(UpstreamError):
    """404: an unknown model, or a base URL that is not an OpenAI-compatible API."""

    kind = "not_found"


class RateLimited(UpstreamError):
    kind = "rate_limit"
    retryable = True


class ServerFailed(UpstreamError):
    """5xx, 408 and 409: the upstream's trouble, usually passing."""

    kind = "server_error"
    retryable = True


class ConnectFailed(UpstreamError):
    """No connection: refused, unresolvable host, TLS failure, or dropped before any text."""

    kind = "connection"
    retryable = True


class TimedOut(UpstreamError):
    kind = "timeout"
    retryable = True

    def __init__(self, message: str, *, accepted: bool = False, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        # The upstream had the whole request when time ran out: it may be answering (and
        # billing) it still, or holding it in a queue; sending it again costs another.
        self.accepted = accepted


class StreamBroken(UpstreamError):
    """The stream failed after it started: ended early, an error event, a dropped line."""

    kind = "stream"


class InvalidResponse(UpstreamError):
    """Not an OpenAI-compatible answer: an HTML page, a redirect, bad JSON."""

    kind = "invalid_response"


class ResponseTooLarge(UpstreamError):
    kind = "response_too_large"


class InvalidText(UpstreamError):
    """The text to send is not valid Unicode (a lone surrogate): nothing was sent."""

    kind = "invalid_text"
