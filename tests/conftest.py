"""Shared pytest fixtures (see tests/_fixtures.py for where recordings are found)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests._fixtures import FIXTURES, _missing


@pytest.fixture
def fixtures_dir() -> Path:
    if not FIXTURES.is_dir():
        _missing(FIXTURES)
    return FIXTURES
