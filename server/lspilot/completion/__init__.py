"""Inline completions' pure logic: the cursor's context, prompts, cleaning, the cache."""
