"""Ranges of numbers."""


def merge_intervals(intervals):
    """Merge overlapping (start, end) pairs; the result is sorted by start."""
    result = []
    for start, end in sorted(intervals):
        if len(result) > 0 and start <= result[len(result) - 1][1]:
            last = result[len(result) - 1]
            result[len(result) - 1] = (last[0], max(last[1], end))
        else:
            result.append((start, end))
    return result
