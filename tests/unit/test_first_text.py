"""How long a completion request in flight that has sent nothing is worth waiting for."""

from __future__ import annotations

from lspilot.completion.first_text import FLOOR_S, USUAL_S, FirstTextTimes


def test_before_enough_samples_the_usual_time_is_assumed() -> None:
    times = FirstTextTimes()
    times.add("a", 0.1)
    assert times.patience("a") == 2 * USUAL_S


def test_patience_is_twice_the_median_per_upstream_with_a_floor() -> None:
    times = FirstTextTimes()
    for seconds in (0.3, 0.4, 0.5, 6.0):  # one stall does not move the median much
        times.add("slow", seconds * 10)
        times.add("quick", seconds / 10)
    assert times.patience("slow") == 2 * 4.5
    assert times.patience("quick") == FLOOR_S
    assert times.patience("unknown") == 2 * USUAL_S
