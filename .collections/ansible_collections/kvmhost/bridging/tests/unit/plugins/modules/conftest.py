"""Fixtures of the module tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def cfg(tmp_path):
    """An empty network-scripts directory, the config_dir of the ifcfg modules under test."""
    directory = tmp_path / "network-scripts"
    directory.mkdir()
    return directory
