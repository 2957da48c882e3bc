"""Roman numerals."""


def to_roman(number):
    """The Roman numeral for a whole number from 1 to 3999."""
    if number < 1 or number > 3999:
        raise ValueError("out of range")
    values = [(1000, "M"), (900, "CM"), (500, "D"), (400, "CD"), (100, "C"), (90, "XC"),
              (50, "L"), (40, "XL"), (10, "X"), (9, "IX"), (5, "V"), (4, "IV"), (1, "I")]
    result = ""
    for value, letters in values:
        while number >= value:
            result = result + letters
            number = number - value
    return result
