"""Counting words in text."""


def top_words(text, n=3):
    """The n most frequent words (lower-cased), most frequent first, ties alphabetical."""
    counts = {}
    for raw in text.split():
        word = raw.strip(".,;:!?\"'()").lower()
        if word == "":
            continue
        if word in counts:
            counts[word] = counts[word] + 1
        else:
            counts[word] = 1
    pairs = list(counts.items())
    pairs.sort(key=lambda pair: (-pair[1], pair[0]))
    result = []
    for word, _count in pairs[:n]:
        result.append(word)
    return result
