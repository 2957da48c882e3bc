"""Removing repeats."""


def unique_in_order(items):
    """The items without repeats, each kept where it first appeared."""
    seen = []
    result = []
    for item in items:
        if item not in seen:
            seen.append(item)
            result.append(item)
    return result
