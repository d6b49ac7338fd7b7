"""Where the recorded fixtures are.

Recorded captures are found through one setting, ``EDGE_AGENT_FIXTURES`` (default
``../shared/fixtures`` beside the project). Where they are absent the tests that need them
skip with a message; under CI (``CI=true``) their absence fails those tests instead.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(os.environ.get("EDGE_AGENT_FIXTURES", ROOT.parent / "shared" / "fixtures"))


def _missing(what: Path) -> None:
    msg = f"recorded fixture {what} is absent (set EDGE_AGENT_FIXTURES to the shared fixtures directory)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(msg + "; under CI this is a failure", pytrace=False)
    pytest.skip(msg)


def fixture_file(relative: str) -> Path:
    """Path of a recorded fixture; skips (or fails under CI) when it is absent."""
    path = FIXTURES / relative
    if not path.exists():
        _missing(path)
    return path
