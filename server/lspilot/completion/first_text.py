"""How long an upstream takes to its first text, and so how long a completion request in
flight that has sent nothing yet is worth waiting for.

A new key joins the request in flight when the user is typing what it produces; before it
has produced anything that is a bet that it will answer soon. Upstreams' times to first
token are long-tailed (most answer in a few hundred ms, a few stall for seconds): past
about twice its usual time, a request that has said nothing is more likely one of the
stalls than about to answer, and a fresh request is the quicker way to ghost text. The
usual time is learnt per upstream and model, so a slow but steady upstream (a model on a
CPU) is not given up on before it could ever answer.
"""

from __future__ import annotations

from collections import deque
from statistics import median

WINDOW = 32  # the most recent first-text times kept per upstream
MIN_SAMPLES = 4  # fewer: USUAL_S is assumed
USUAL_S = 1.0
FACTOR = 2.0
FLOOR_S = 0.5  # never less patient than this, however quick the upstream usually is


class FirstTextTimes:
    def __init__(self) -> None:
        self._times: dict[str, deque[float]] = {}

    def add(self, upstream: str, seconds: float) -> None:
        """A request to ``upstream`` (its URL and model) produced its first text."""
        self._times.setdefault(upstream, deque(maxlen=WINDOW)).append(seconds)

    def usual(self, upstream: str) -> float:
        times = self._times.get(upstream)
        if times is None or len(times) < MIN_SAMPLES:
            return USUAL_S
        return median(times)

    def patience(self, upstream: str) -> float:
        """Seconds after it was sent that a request without text still counts as about to
        answer: ``FACTOR`` times the usual time to first text, at least ``FLOOR_S``."""
        return max(FLOOR_S, FACTOR * self.usual(upstream))
