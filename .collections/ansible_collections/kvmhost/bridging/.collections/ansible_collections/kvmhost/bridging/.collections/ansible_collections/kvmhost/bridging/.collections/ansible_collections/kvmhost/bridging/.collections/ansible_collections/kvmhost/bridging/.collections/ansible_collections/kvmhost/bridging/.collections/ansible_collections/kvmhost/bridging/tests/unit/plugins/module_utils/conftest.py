"""Fixtures shared by the module_utils tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def node_uri(tmp_path):
    """Write a libvirt test-driver node file and return its test:/// URI: real libvirt code, no daemon."""

    def make(xml, name="node.xml"):
        path = tmp_path / name
        path.write_text(xml)
        return "test://%s" % path

    return make
