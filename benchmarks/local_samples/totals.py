"""Running totals."""


def running_total(values):
    """The sum of the values so far, after each value."""
    totals = []
    total = 0
    for index in range(len(values)):
        total = total + values[index]
        totals.append(total)
    return totals
