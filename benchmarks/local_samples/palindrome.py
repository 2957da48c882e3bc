"""Palindromes."""


def is_palindrome(text):
    """True when the letters and digits of text read the same both ways, ignoring case."""
    kept = []
    for character in text:
        if character.isalnum():
            kept.append(character.lower())
    i = 0
    j = len(kept) - 1
    while i < j:
        if kept[i] != kept[j]:
            return False
        i = i + 1
        j = j - 1
    return True
