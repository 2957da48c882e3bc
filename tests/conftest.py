"""Fixtures shared by every test: the fake upstream and a scratch workspace."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import settings

from tests.fake_upstream import FakeUpstream

# Property tests check what is true, not how fast: on a loaded 2-core CI machine an example
# can take longer than Hypothesis's 200 ms default, which failed a run for no bug.
settings.register_profile("lspilot", deadline=None)
settings.load_profile("lspilot")


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    """A fresh scripted OpenAI-compatible server on 127.0.0.1 for one test."""
    with FakeUpstream() as server:
        yield server
