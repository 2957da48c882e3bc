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

# Told of each retry before its wait: the error, the wait in seconds, the retry's number (1..).
RetryCallback = Callable[[errors.UpstreamError, float, int], None]


@define(frozen=True, slots=True)
class RetryIn:
    seconds: float


@define(frozen=True, slots=True)
class GiveUp:
    # The error to raise: the caught one, or a copy of it that says why we stopped.
    error: errors.UpstreamError


def decide(error: errors.UpstreamError, attempt: int, endpoint: Endpoint) -> RetryIn | GiveUp:
    """After ``error`` ended attempt number ``attempt`` (0 for the first request)."""
    tried = attempt + 1
    if not error.retryable or error.partial_text:
        return GiveUp(error.evolve(attempts=tried) if attempt else error)
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
