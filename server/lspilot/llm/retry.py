"""Whether to try a failed request again, and after how long: one policy for every API.

The caught error is never changed: giving up with more to say (how many attempts, a
``Retry-After`` too long to wait) gives a copy to raise ``from`` it.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from attrs import define

from lspilot.llm import errors
from lspilot.llm.endpoint import Endpoint

# Longest Retry-After we wait out inside one action; past it we fail and say when to retry.
MAX_RETRY_AFTER = 60.0

# Retries of a time-out after the upstream had the whole request (see `decide`).
MAX_TAKEN_TIMEOUT_RETRIES = 1

# Told of each retry before its wait: the error, the wait in seconds, the retry's number (1..).
RetryCallback = Callable[[errors.UpstreamError, float, int], None]


@define(frozen=True, slots=True)
class RetryIn:
    seconds: float


@define(frozen=True, slots=True)
class GiveUp:
    # The error to raise: the caught one, or a copy of it that says why we stopped.
    error: errors.UpstreamError


def decide(
    error: errors.UpstreamError, attempt: int, endpoint: Endpoint, taken_timeouts: int = 0
) -> RetryIn | GiveUp:
    """After ``error`` ended attempt number ``attempt`` (0 for the first request).

    ``taken_timeouts``: how many earlier attempts timed out after the upstream had the
    whole request. Such a request may still be answered, and billed, upstream (a gateway
    that queues requests over its rate limit holds them, then forwards them all): it is
    sent again at most :data:`MAX_TAKEN_TIMEOUT_RETRIES` times, so a queue costs at most
    one answer more, whatever ``maxRetries`` says.
    """
    tried = attempt + 1
    if not error.retryable or error.partial_text:
        return GiveUp(error.evolve(attempts=tried) if attempt else error)
    if (isinstance(error, errors.TimedOut) and error.accepted
            and taken_timeouts >= MAX_TAKEN_TIMEOUT_RETRIES):
        return GiveUp(error.evolve(
            message=f"{error.message} (gave up after {tried} attempts)", attempts=tried))
    if attempt >= endpoint.max_retries:
        if not attempt:
            return GiveUp(error)
        return GiveUp(error.evolve(
            message=f"{error.message} (gave up after {tried} attempts)", attempts=tried))
    base = endpoint.retry_base_seconds
    if error.retry_after is not None:
        if error.retry_after > MAX_RETRY_AFTER:
            return GiveUp(error.evolve(
                hint=f"The upstream asks to wait {error.retry_after:.0f} s before retrying.",
                attempts=tried))
        return RetryIn(error.retry_after + random.uniform(0, 0.1 * base))
    return RetryIn(float(base * 2.0**attempt * random.uniform(0.8, 1.2)))


# The longest retry report: a progress line in the editor's status bar, not a log.
REPORT_CHARS = 100


def report(error: errors.UpstreamError, seconds: float, attempt: int) -> str:
    """One short line for a retry's progress report: the countdown first, then why.

    Why is the first line of the error's message, cut short: a gateway's message can be
    hundreds of characters over several lines (LiteLLM's is), the whole of it is logged.
    """
    wait = f"{seconds:.0f}" if seconds >= 1 else f"{seconds:.1f}"
    head = f"Retrying in {wait} s (attempt {attempt + 1}): "
    why = " ".join(error.message.split("\n", 1)[0].split())
    room = REPORT_CHARS - len(head)
    if len(why) > room:
        why = why[: room - 1].rstrip() + "…"
    return head + why
