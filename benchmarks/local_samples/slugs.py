"""Turning titles into URL slugs."""

import re


def slugify(title, max_length=40):
    """Lower-case words of the title joined by hyphens, at most max_length characters."""
    words = []
    for word in re.split(r"[^A-Za-z0-9]+", title):
        if word != "":
            words.append(word.lower())
    slug = "-".join(words)
    if len(slug) > max_length:
        slug = slug[:max_length]
        if "-" in slug:
            slug = slug[: slug.rfind("-")]
    return slug
