"""ifcfg_info end to end in a temporary config_dir: files written by the ifcfg module read back as they were set."""

from __future__ import annotations

import os

import pytest
from module_runner import run_main

from ansible_collections.kvmhost.bridging.plugins.modules import ifcfg, ifcfg_info


def test_reads_what_ifcfg_wrote_and_reports_missing_files(cfg):
    args = {"device": "eth0", "bridge": "breth0", "bootproto": "none", "settings": {"ZONE": "it's $HOME"}, "config_dir": str(cfg)}
    written = run_main(ifcfg, args)
    assert written["changed"]
    for check in (False, True):
        result = run_main(ifcfg_info, {"devices": ["eth0", "breth0"], "config_dir": str(cfg)}, check=check)
        assert result["changed"] is False
        assert result["ifcfg"]["eth0"] == {"path": str(cfg / "ifcfg-eth0"), "exists": True, "variables": written["variables"]}
        assert result["ifcfg"]["eth0"]["variables"]["ZONE"] == "it's $HOME"
        assert result["ifcfg"]["breth0"] == {"path": str(cfg / "ifcfg-breth0"), "exists": False, "variables": {}}
    assert sorted(os.listdir(cfg)) == ["ifcfg-eth0"]


def test_values_networkmanager_cannot_read_come_back_null(cfg):
    # An unterminated quote, and bytes that are not UTF-8 (NetworkManager refuses those values).
    (cfg / "ifcfg-eth1").write_bytes(b'DEVICE=eth1\nNAME="open\nZONE=caf\xe9\n')
    result = run_main(ifcfg_info, {"devices": ["eth1"], "config_dir": str(cfg)})
    assert result["ifcfg"]["eth1"]["variables"] == {"DEVICE": "eth1", "NAME": None, "ZONE": None}


@pytest.mark.parametrize("bad", ["../etc/passwd", "eth0:1", "", "a" * 16])
def test_a_bad_name_fails_before_anything_is_read(cfg, bad):
    result = run_main(ifcfg_info, {"devices": ["eth0", bad], "config_dir": str(cfg)})
    assert result["failed"] is True
    assert result["msg"].startswith("devices")


def test_a_directory_where_a_file_should_be_is_a_clear_error(cfg):
    (cfg / "ifcfg-eth2").mkdir()
    result = run_main(ifcfg_info, {"devices": ["eth2"], "config_dir": str(cfg)})
    assert result["failed"] is True
    assert "is a directory" in result["msg"]
