"""Shared fixtures. Plain helpers (the repo root, subprocess helpers) are in helpers.py."""
from __future__ import annotations

import pytest

from tests.helpers import free_base_port


@pytest.fixture
def base_port() -> int:
    return free_base_port()
