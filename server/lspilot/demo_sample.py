"""A small module for `lspilot demo`: it explains, refactors and tests `summarize`."""

from __future__ import annotations


def summarize(values: list[float]) -> dict[str, float] | None:
    """Return the count, mean and largest of the values, or None when there are none."""
    count = 0
    total = 0.0
    largest: float | None = None
    for value in values:
        count = count + 1
        total = total + value
        if largest is None or value > largest:
            largest = value
    if count == 0 or largest is None:
        return None
    return {"count": count, "mean": total / count, "largest": largest}
