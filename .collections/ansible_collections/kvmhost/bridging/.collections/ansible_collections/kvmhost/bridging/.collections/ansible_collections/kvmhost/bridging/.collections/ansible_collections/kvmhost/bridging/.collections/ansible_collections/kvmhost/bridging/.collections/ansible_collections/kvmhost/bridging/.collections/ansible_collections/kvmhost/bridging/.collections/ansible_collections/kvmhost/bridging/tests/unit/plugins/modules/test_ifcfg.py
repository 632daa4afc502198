"""The ifcfg module end to end in a temporary config_dir (no root, no lab)."""

from __future__ import annotations

import multiprocessing
import os
import stat
import subprocess

import pytest
from module_runner import run_main

from ansible_collections.kvmhost.bridging.plugins.modules import ifcfg


def run_module(args, check=False, diff=False):
    return run_main(ifcfg, args, check=check, diff=diff)


def listing(directory):
    return sorted(os.listdir(directory))


def bash_source(path, *keys):
    script = 'set -a; . "$1"; shift; for k in "$@"; do printf "%s\\0" "${!k}"; done'
    out = subprocess.run(["env", "-i", "bash", "-c", script, "_", str(path), *keys], capture_output=True, check=True).stdout
    return [v.decode() for v in out.split(b"\0")[:-1]]


BRIDGE = {"device": "breth0", "type": "bridge", "bootproto": "dhcp", "onboot": True, "stp": False, "delay": 0}


def test_create_check_diff_idempotent(cfg):
    args = dict(BRIDGE, config_dir=str(cfg))
    result = run_module(args, check=True, diff=True)
    assert result["changed"]
    assert listing(cfg) == []  # check mode wrote nothing
    assert result["diff"]["before"] == ""
    assert result["diff"]["before_header"].endswith("(absent)")
    expected = "DEVICE=breth0\nTYPE=Bridge\nBOOTPROTO=dhcp\nONBOOT=yes\nSTP=no\nDELAY=0\n"
    assert result["diff"]["after"] == expected
    assert result["changed_keys"] == ["DEVICE", "TYPE", "BOOTPROTO", "ONBOOT", "STP", "DELAY"]

    result = run_module(args, diff=True)
    assert result["changed"]
    path = cfg / "ifcfg-breth0"
    assert result["path"] == str(path)
    assert path.read_text() == expected
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert listing(cfg) == ["ifcfg-breth0"]  # no temp files left
    assert bash_source(path, "DEVICE", "TYPE", "STP") == ["breth0", "Bridge", "no"]

    result = run_module(args, diff=True)
    assert not result["changed"]
    assert result["changed_keys"] == []
    assert result["diff"]["before"] == result["diff"]["after"] == expected
    assert result["variables"]["TYPE"] == "Bridge"


def test_update_keeps_mode_comments_and_lists_changes(cfg):
    path = cfg / "ifcfg-eth0"
    path.write_text("# installer\nDEVICE=eth0\nBOOTPROTO=dhcp\nNAME='System eth0'\n")
    path.chmod(0o600)
    args = {"device": "eth0", "bridge": "breth0", "bootproto": "none", "hwaddr": "52:54:00:12:34:56", "onboot": True, "nm_controlled": False}
    args["config_dir"] = str(cfg)
    check = run_module(args, check=True)
    assert check["changed"]
    assert path.read_text() == "# installer\nDEVICE=eth0\nBOOTPROTO=dhcp\nNAME='System eth0'\n"
    result = run_module(args)
    assert result["changed_keys"] == check["changed_keys"] == ["BRIDGE", "BOOTPROTO", "HWADDR", "ONBOOT", "NM_CONTROLLED"]
    assert {"key": "BOOTPROTO", "action": "set", "before": "dhcp", "after": "none"} in result["changes"]
    assert path.read_text() == (
        "# installer\nDEVICE=eth0\nBOOTPROTO=none\nNAME='System eth0'\nBRIDGE=breth0\nHWADDR=52:54:00:12:34:56\nONBOOT=yes\nNM_CONTROLLED=no\n"
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # an existing file keeps its mode
    assert "backup_file" not in result


def test_hostile_settings_source_safely(cfg):
    marker = cfg.parent / "pwned"
    hostile = {
        "X_SUBST": "$(touch %s)" % marker,
        "X_TICKS": "`touch %s`" % marker,
        "X_SEMI": "; touch %s" % marker,
        "X_NL": "a\ntouch %s" % marker,
        "X_QUOTES": "'\"\\",
        "X_TILDE": "~root",
        "X_GLOB": "/etc/*",
        "X_UTF8": "caf\u00e9 \u4e2d",
    }
    result = run_module({"device": "eth9", "settings": hostile, "config_dir": str(cfg)})
    assert result["changed"]
    path = cfg / "ifcfg-eth9"
    assert bash_source(path, *hostile) == list(hostile.values())
    assert not marker.exists()
    assert result["variables"] == dict({"DEVICE": "eth9"}, **hostile)
    assert not run_module({"device": "eth9", "settings": hostile, "config_dir": str(cfg)})["changed"]


def test_backup_and_absent(cfg):
    path = cfg / "ifcfg-eth1"
    path.write_text("DEVICE=eth1\nMTU=1500\n")
    result = run_module({"device": "eth1", "settings": {"MTU": 9000}, "backup": True, "config_dir": str(cfg)})
    backup = result["backup_file"]
    assert os.path.dirname(backup) == str(cfg)
    assert backup.endswith("~")
    with open(backup) as handle:
        assert handle.read() == "DEVICE=eth1\nMTU=1500\n"
    assert path.read_text() == "DEVICE=eth1\nMTU=9000\n"

    check = run_module({"device": "eth1", "state": "absent", "config_dir": str(cfg)}, check=True, diff=True)
    assert check["changed"]
    assert path.exists()
    assert check["diff"]["after"] == ""
    assert check["diff"]["after_header"].endswith("(absent)")
    result = run_module({"device": "eth1", "state": "absent", "backup": True, "config_dir": str(cfg)})
    assert result["changed"]
    assert sorted(result["changed_keys"]) == ["DEVICE", "MTU"]
    assert not path.exists()
    with open(result["backup_file"]) as handle:
        assert handle.read() == "DEVICE=eth1\nMTU=9000\n"
    assert not run_module({"device": "eth1", "state": "absent", "config_dir": str(cfg)})["changed"]
    # absent in a directory that does not exist is simply done
    assert not run_module({"device": "eth1", "state": "absent", "config_dir": str(cfg / "nope")})["changed"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"device": "../../etc/passwd"}, "not a valid interface name"),
        ({"device": "eth0", "hwaddr": "01:00:5e:00:00:01"}, "multicast"),
        ({"device": "eth0", "bridge": "br0", "addresses": ["198.18.5.10/24"]}, "ignores IP settings on a bridge port"),
        ({"device": "eth0", "settings": {"PATH": "/tmp"}}, "shell or loader variable"),
        ({"device": "eth0", "settings": {"NAME": "a\x00"}}, "NUL"),
        ({"device": "eth0", "bootproto": "static"}, "needs an address"),
    ],
)
def test_errors_change_nothing(cfg, args, message):
    path = cfg / "ifcfg-eth0"
    path.write_text("DEVICE=eth0\n")
    result = run_module(dict(args, config_dir=str(cfg), onboot=True))
    assert result["failed"]
    assert message in result["msg"]
    assert listing(cfg) == ["ifcfg-eth0"]
    assert path.read_text() == "DEVICE=eth0\n"


def test_missing_config_dir(cfg):
    result = run_module({"device": "eth0", "config_dir": str(cfg / "missing")})
    assert result["failed"]
    assert "does not exist" in result["msg"]


def _warnings(result, capsys):
    # ansible-core 2.19 prints module warnings when run outside a controller; older ones return them
    return " ".join(result.get("warnings", [])) + capsys.readouterr().err


def test_port_with_stale_ip_keys_warns(cfg, capsys):
    (cfg / "ifcfg-eth0").write_text("DEVICE=eth0\nIPADDR=198.18.5.10\nPREFIX=24\n")
    result = run_module({"device": "eth0", "bridge": "breth0", "bootproto": "none", "config_dir": str(cfg)})
    assert "keeps IPADDR, PREFIX from before it became a port of breth0" in _warnings(result, capsys)
    result = run_module({"device": "eth0", "bridge": "breth0", "bootproto": "none", "purge": True, "config_dir": str(cfg)})
    assert (cfg / "ifcfg-eth0").read_text() == "DEVICE=eth0\nBRIDGE=breth0\nBOOTPROTO=none\n"
    assert "keeps IPADDR" not in _warnings(result, capsys)


def _writer(directory, index, barrier):
    barrier.wait()
    result = run_module({"device": "eth0", "settings": {"KEY_%02d" % index: str(index)}, "config_dir": directory})
    assert result["changed"]


def test_parallel_tasks_lose_no_update(cfg):
    """Many processes updating one file at once: every key arrives (the directory lock serialises them)."""
    count = 12
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(count)
    procs = [ctx.Process(target=_writer, args=(str(cfg), i, barrier)) for i in range(count)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    values = ifcfg._ifcfg.parse((cfg / "ifcfg-eth0").read_bytes())
    assert values == dict({"DEVICE": "eth0"}, **{"KEY_%02d" % i: str(i) for i in range(count)})
    assert listing(cfg) == ["ifcfg-eth0"]
