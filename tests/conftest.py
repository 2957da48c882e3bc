"""Fixtures shared by every test: the fake upstream and a scratch workspace."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fake_upstream import FakeUpstream


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    """A fresh scripted OpenAI-compatible server on 127.0.0.1 for one test."""
    with FakeUpstream() as server:
        yield server
