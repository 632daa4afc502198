"""_nm_doctor: the doctor's NetworkManager checks."""

from __future__ import annotations

from ansible_collections.kvmhost.bridging.plugins.module_utils import _nm_doctor

CFG = "/etc/sysconfig/network-scripts"


def profile(**over):
    base = {
        "path": "/etc/NetworkManager/system-connections/x.nmconnection",
        "loaded": True,
        "id": "x",
        "uuid": "u-x",
        "type": "ethernet",
        "interface_name": "x",
        "controller": None,
        "controller_keys": [],
        "autoconnect": True,
        "problems": [],
    }
    base.update(over)
    return base


BRIDGE = profile(path="/c/breth0.nmconnection", id="breth0", uuid="u-br", type="bridge", interface_name="breth0")
PORT = profile(path="/c/eth0.nmconnection", id="eth0", interface_name="eth0", controller="breth0", controller_keys=["master", "controller"])


def test_ifcfg_profiles_skips_lo_and_backups():
    names = ["ifcfg-eth0", "ifcfg-lo", "ifcfg-eth1.bak", "ifcfg-br0~", "route-eth0", "ifcfg-br0"]
    assert _nm_doctor.ifcfg_profiles(CFG, listdir=lambda d: names) == ["ifcfg-br0", "ifcfg-eth0"]

    def missing(directory):
        raise FileNotFoundError(directory)

    assert _nm_doctor.ifcfg_profiles(CFG, listdir=missing) == []


def test_a_healthy_bridged_host_has_no_problem():
    assert _nm_doctor.findings(True, CFG, [], [BRIDGE, PORT]) == []


def test_ifcfg_files_on_a_networkmanager_host_are_the_leapp_inhibitor():
    (problem,) = _nm_doctor.findings(True, CFG, ["ifcfg-eth0"], [])
    assert problem["check"] == "nm_ifcfg" and problem["subject"] == CFG
    assert "leapp upgrade to RHEL 10 refuses to start" in problem["problem"]
    assert "nmcli connection migrate" in problem["fix"]
    assert _nm_doctor.findings(False, CFG, ["ifcfg-eth0"], []) == []  # the network service's own files
    assert _nm_doctor.findings(True, CFG, ["ifcfg-eth0"], [], skip=["nm_ifcfg"]) == []


def test_profiles_that_do_not_come_up_at_boot():
    ignored = dict(BRIDGE, loaded=False, problems=["it is mode 0644; NetworkManager ignores it"])
    found = _nm_doctor.findings(True, CFG, [], [ignored, PORT])
    assert [p["check"] for p in found] == ["nm_boot", "nm_boot"]
    assert "ignores the bridge profile breth0: it is mode 0644" in found[0]["problem"]
    assert "chmod 0600 /c/breth0.nmconnection" in found[0]["fix"]
    assert "names the bridge breth0, which has no profile NetworkManager loads" in found[1]["problem"]
    off = _nm_doctor.findings(True, CFG, [], [dict(BRIDGE, autoconnect=False), PORT])
    assert len(off) == 1 and "autoconnect=false" in off[0]["problem"] and "connection.autoconnect yes" in off[0]["fix"]
    new_only = _nm_doctor.findings(True, CFG, [], [BRIDGE, dict(PORT, controller_keys=["controller"])])
    assert len(new_only) == 1 and "before 1.46" in new_only[0]["problem"]
    assert _nm_doctor.findings(True, CFG, [], [dict(BRIDGE, autoconnect=False)], skip=["nm_boot"]) == []


def test_a_plain_nic_profile_is_not_a_bridge_matter():
    assert _nm_doctor.findings(True, CFG, [], [profile(autoconnect=False)]) == []


def test_isolated_bridges_are_bridges_no_port_joins():
    isolated = profile(path="/c/isolbr0.nmconnection", id="isolbr0", uuid="u-iso", type="bridge", interface_name="isolbr0")
    ignored = dict(isolated, id="br9", interface_name="br9", loaded=False)
    assert _nm_doctor.isolated_bridges([BRIDGE, PORT, isolated, ignored]) == ["isolbr0"]
