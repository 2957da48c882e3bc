from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """An empty workspace folder (its parent holds the server's HOME and cache)."""
    root = tmp_path / "workspace"
    root.mkdir()
    return root
