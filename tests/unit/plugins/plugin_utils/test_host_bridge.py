"""The host_bridge action's decisions and messages (plugins/plugin_utils/_host_bridge.py), from facts and module results."""

from __future__ import annotations

import pytest

from ansible_collections.kvmhost.bridging.plugins.plugin_utils import _host_bridge as hb

MAC = "52:54:00:12:34:56"
SCRIPTS = "/etc/sysconfig/network-scripts"


def facts(**extra):
    """A host with eth0 (SSH, default route via 198.18.0.1) and eth1, as setup's network subset reports it."""
    base = {
        "interfaces": ["lo", "eth0", "eth1"],
        "default_ipv4": {"interface": "eth0", "gateway": "198.18.0.1"},
        "eth0": {"type": "ether", "macaddress": MAC, "ipv4": {"address": "198.18.0.2", "prefix": "30"}},
        "eth1": {"type": "ether", "macaddress": "52:54:00:00:00:01"},
        "lo": {"type": "loopback"},
    }
    base.update(extra)
    return base


def bridged_facts():
    """After the first run: the default route goes through breth0, whose ports are eth0 and a guest's vnet0."""
    return facts(
        interfaces=["lo", "eth0", "eth1", "breth0", "vnet0"],
        default_ipv4={"interface": "breth0", "gateway": "198.18.0.1"},
        eth0={"type": "ether", "macaddress": MAC},
        breth0={"type": "bridge", "macaddress": MAC, "interfaces": ["vnet0", "eth0"], "ipv4": {"address": "198.18.0.2", "prefix": "30"}},
        vnet0={"type": "tap", "macaddress": "fe:54:00:00:00:09"},
    )


def plan(the_facts=None, read=None, nic="eth0", bootproto="inherit", addresses=(), gateway="", dns=(), persist=True):
    return hb.plan(the_facts or facts(), read or {}, nic, "breth0", bootproto, list(addresses), gateway, list(dns), False, 0, persist, SCRIPTS)


def test_variables_that_go_together():
    assert hb.variable_problems("inherit", [], "", False, 0) == []
    assert hb.variable_problems("static", [], "", False, 0) == ["host_bridge_bootproto: static needs host_bridge_addresses, like [198.18.5.10/24]."]
    assert hb.variable_problems("dhcp", [], "198.18.0.1", False, 0) == [
        "host_bridge_addresses and host_bridge_gateway are used only with host_bridge_bootproto: static."
    ]
    assert hb.variable_problems("inherit", [], "", True, 1) == [
        "With host_bridge_stp: true the kernel needs host_bridge_forward_delay between 2 and 30 seconds."
    ]
    assert hb.variable_problems("inherit", [], "", True, 15) == []


def test_auto_takes_the_default_routes_nic_and_on_a_rerun_the_bridges_own_nic():
    assert hb.resolve_nic(facts(), "auto", "breth0") == "eth0"
    assert hb.resolve_nic(facts(), "eth1", "breth0") == "eth1"
    # The guest's tap comes first among the ports, but only eth0 has the bridge's MAC.
    assert hb.resolve_nic(bridged_facts(), "auto", "breth0") == "eth0"
    # Without a port of the same MAC, the first port that is no guest's.
    other = bridged_facts()
    other["breth0"]["macaddress"] = "52:54:00:99:99:99"
    assert hb.resolve_nic(other, "auto", "breth0") == "eth0"
    other["breth0"]["interfaces"] = ["vnet0"]
    assert hb.resolve_nic(other, "auto", "breth0") == ""


@pytest.mark.parametrize(
    ("the_facts", "option", "expected"),
    [
        (facts(default_ipv4={}), "auto", "This host has no default route to find the NIC by; set host_bridge_nic."),
        (facts(), "eth9", "The NIC eth9 does not exist on this host; it has eth0, eth1, lo."),
        (facts(), "breth0", "host_bridge_nic names the bridge itself (breth0); name the NIC to bridge."),
        (
            facts(default_ipv4={"interface": "virbr0"}, virbr0={"type": "bridge"}),
            "auto",
            "The default route goes through the bridge virbr0, not breth0. Set host_bridge_name: virbr0 to keep that bridge, "
            "or host_bridge_nic to bridge another NIC.",
        ),
        (
            facts(interfaces=["eth0", "br1"], br1={"type": "bridge"}),
            "br1",
            "br1 is a bridge; Linux does not put a bridge into a bridge. Name the NIC to bridge.",
        ),
    ],
)
def test_nic_problems_say_what_to_set(the_facts, option, expected):
    nic = hb.resolve_nic(the_facts, option, "breth0")
    assert hb.nic_problems(the_facts, option, nic, "breth0")[0] == expected


def test_a_bridge_without_its_nic_among_the_ports():
    the_facts = bridged_facts()
    the_facts["breth0"].update(macaddress="52:54:00:99:99:99", interfaces=["vnet0"])
    assert hb.nic_problems(the_facts, "auto", "", "breth0") == [
        "The default route goes through breth0, but none of its ports (vnet0) looks like its NIC; set host_bridge_nic."
    ]
    assert hb.nic_problems(facts(), "auto", "eth0", "breth0") == []


def test_the_nics_static_file_moves_to_the_bridge_and_the_nic_becomes_a_port():
    read = {
        "eth0": {
            "variables": {
                "DEVICE": "eth0",
                "BOOTPROTO": "none",
                "IPADDR": "198.18.0.2",
                "NETMASK": "255.255.255.252",
                "GATEWAY": "198.18.0.1",
                "DNS1": "198.18.0.53",
                "ZONE": "public",
                "ONBOOT": "yes",
            }
        }
    }
    result = plan(read=read)
    bridge, nic = result["ifcfg"]
    assert result["files"] == [SCRIPTS + "/ifcfg-breth0", SCRIPTS + "/ifcfg-eth0"]
    assert bridge == {
        "device": "breth0",
        "type": "bridge",
        "bootproto": "none",
        "onboot": True,
        "nm_controlled": False,
        "macaddr": MAC,
        "stp": False,
        "delay": 0,
        "addresses": ["198.18.0.2/30"],
        "gateway": "198.18.0.1",
        "dns": ["198.18.0.53"],
        "settings": {"ZONE": "public"},
        "config_dir": SCRIPTS,
    }
    assert nic == {
        "device": "eth0",
        "bridge": "breth0",
        "bootproto": "none",
        "onboot": True,
        "nm_controlled": False,
        "hwaddr": MAC,
        "config_dir": SCRIPTS,
        "settings": {"IPADDR": None, "NETMASK": None, "GATEWAY": None, "DNS1": None, "ZONE": None},
    }
    assert result["ip_batch"] == []
    assert result["what"] == "bridging eth0 into breth0"
    assert result["bridge"] == {"name": "breth0", "ports": ["eth0"], "stp": False, "forward_delay": 0, "mac": "inherit", "migrate_addresses": True}


def test_a_rerun_reads_the_bridges_file():
    read = {
        "eth0": {"variables": {"DEVICE": "eth0", "BRIDGE": "breth0", "BOOTPROTO": "none"}},
        "breth0": {"variables": {"DEVICE": "breth0", "BOOTPROTO": "static", "IPADDR0": "198.18.0.2", "PREFIX0": "30", "GATEWAY": "198.18.0.1"}},
    }
    bridge = plan(bridged_facts(), read)["ifcfg"][0]
    assert (bridge["bootproto"], bridge["addresses"], bridge["gateway"]) == ("static", ["198.18.0.2/30"], "198.18.0.1")


def test_dhcp_from_the_file_drops_the_gateway():
    read = {"eth0": {"variables": {"DEVICE": "eth0", "BOOTPROTO": "dhcp", "PERSISTENT_DHCLIENT": "yes"}}}
    bridge = plan(read=read)["ifcfg"][0]
    assert (bridge["bootproto"], bridge["addresses"]) == ("dhcp", [])
    assert "gateway" not in bridge
    assert bridge["settings"] == {"PERSISTENT_DHCLIENT": "yes", "GATEWAY": None}


def test_without_a_file_the_runtime_address_and_route_are_kept():
    # BOOTPROTO=none with the address, as network-scripts spells a static address by default.
    bridge = plan()["ifcfg"][0]
    assert (bridge["bootproto"], bridge["addresses"], bridge["gateway"]) == ("none", ["198.18.0.2/30"], "198.18.0.1")
    lan = plan(nic="eth1")["ifcfg"][0]
    assert (lan["bootproto"], lan["addresses"], "gateway" in lan) == ("none", [], False)


def test_a_static_address_is_set_at_runtime_new_first_old_last():
    result = plan(bootproto="static", addresses=["198.19.254.2/30"], gateway="198.19.254.1")
    assert result["ip_batch"] == [
        "address replace 198.19.254.2/30 dev breth0",
        "route replace default via 198.19.254.1 dev breth0",
        "address del 198.18.0.2/30 dev breth0",
    ]
    # The address and route it has already: nothing to do at runtime.
    same = plan(bootproto="static", addresses=["198.18.0.2/30"], gateway="198.18.0.1")
    assert same["ip_batch"] == []


def test_runtime_only_writes_no_file():
    result = plan(persist=False)
    assert (result["files"], result["ifcfg"]) == ([], [])


def test_what_needs_to_change_comes_from_the_probes():
    probes = [{"path": SCRIPTS + "/ifcfg-breth0", "changed_keys": ["TYPE"]}, {"path": SCRIPTS + "/ifcfg-eth0", "changed_keys": []}]
    assert hb.needed(probes, {"actions": ["create bridge breth0"]}, ["address replace 1 dev breth0"]) == [
        "write %s/ifcfg-breth0" % SCRIPTS,
        "create bridge breth0",
        "address replace 1 dev breth0",
    ]
    assert hb.needed([{"path": "x", "changed_keys": []}], {"actions": []}, []) == []


def test_guard_ids_and_step_time_limits():
    assert hb.guard_id("kvm-01.example.com") == "host_bridge-kvm-01.example.com"
    assert hb.guard_id("a b/c") == "host_bridge-a_b_c"
    assert hb.guard_id("h" * 105) == "host_bridge-" + "h" * 105
    assert hb.guard_id("h" * 130) == "host_bridge-" + "h" * 100
    assert hb.step_timeout(60) == 30 and hb.step_timeout(4) == 5


def test_step_failures():
    assert hb.step_failure(hb.STEP_IP, {"failed": True, "rc": 2, "stderr": "Error: Nexthop has invalid gateway.\n"}) == (
        "'Set the static addresses and the default route of the bridge at runtime' failed: Error: Nexthop has invalid gateway."
    )
    assert hb.step_failure(hb.STEP_BRIDGE, {"failed": True, "msg": "no pyroute2"}) == (
        "'Bridge the NIC at runtime, moving its addresses and routes' failed: no pyroute2"
    )
    assert hb.step_failure(hb.STEP_BRIDGE, timed_out=30) == (
        "'Bridge the NIC at runtime, moving its addresses and routes' did not return within 30s, so it probably cut the connection"
    )
    assert hb.step_failure("Start the countdown", lost=True) == "'Start the countdown' lost the connection"
    assert hb.step_failure(hb.STEP_FILES, {}) == "'Write the ifcfg files' failed: no message"


ROLLED_BACK = {
    "confirmed": False,
    "rolled_back": True,
    "finished_at": "2026-03-01T12:00:00+00:00",
    "restored_runtime": {"steps": ["delete bridge breth0, which did not exist", "add 198.18.0.2/30 to eth0"]},
    "errors": [],
}


def test_the_message_after_a_cut_connection():
    assert hb.cut_off(True, {})
    message = hb.rollback_message("kvm1", "bridging eth0 into breth0", ["f"], 20, "", True, {}, ROLLED_BACK)
    assert message == (
        "host_bridge: kvm1: lost connectivity after bridging eth0 into breth0: no fresh SSH connection confirmed the change "
        "within 20s; the guard restored the previous runtime state and ifcfg files at 2026-03-01T12:00:00+00:00 "
        "(delete bridge breth0, which did not exist; add 198.18.0.2/30 to eth0). The host is reachable again and runs as "
        "before. Check host_bridge_nic, host_bridge_bootproto, host_bridge_addresses and host_bridge_gateway."
    )


def test_the_message_after_a_failed_step():
    failure = hb.step_failure(hb.STEP_IP, {"stderr": "Error: Nexthop has invalid gateway."})
    outcome = dict(ROLLED_BACK, restored_runtime={"steps": []}, errors=["eth0: File exists"])
    message = hb.rollback_message("kvm1", "bridging eth1 into breth1", [], 300, failure, False, {"rolled_back": True}, outcome)
    assert message.startswith(
        "host_bridge: kvm1: bridging eth1 into breth1 failed, 'Set the static addresses and the default "
        "route of the bridge at runtime' failed: Error: Nexthop has invalid gateway.; "
    )
    assert "the guard restored the previous runtime state at " in message  # no files: runtime only
    assert "(no runtime step needed). Parts of the restore failed: eth0: File exists." in message
    cut = hb.rollback_message("kvm1", "bridging eth1 into breth1", [], 300, failure, True, {}, ROLLED_BACK)
    assert "Nexthop has invalid gateway. and then the host was unreachable; " in cut


def test_a_confirmation_that_came_too_late_counts_as_cut():
    late = {"failed": True, "msg": "the guard had rolled back", "last": {"rolled_back": True}}
    assert hb.cut_off(False, late)
    assert not hb.cut_off(False, {"failed": True, "msg": "state dir not owned by root"})
    failed = hb.rollback_message("kvm1", "w", [], 60, "", False, {"failed": True, "msg": "boom"}, {"msg": "not armed"})
    assert failed.startswith("host_bridge: kvm1: the confirmation of w failed: boom; the guard did not roll back: not armed ")


def test_rolled_back_outcomes():
    assert hb.rolled_back({}) and hb.rolled_back(None) and hb.rolled_back(ROLLED_BACK)
    assert not hb.rolled_back({"confirmed": True, "rolled_back": False})


def test_the_other_messages():
    assert hb.unreachable_message("kvm1", "bridging eth0 into breth0", 20) == (
        "host_bridge: kvm1 lost connectivity after bridging eth0 into breth0 and did not answer within 80s, although its "
        "guard should have restored the previous state 20s after the change. Check the host from its console."
    )
    assert "NetworkManager should have rolled back its checkpoint 20s after it was taken" in hb.unreachable_message("kvm1", "w", 20, backend="networkmanager")
    assert hb.unguarded_message("kvm1", "w", "'x' failed: y") == (
        "host_bridge: kvm1: w failed, 'x' failed: y (host_bridge_rollback_timeout is 0: nothing was rolled back). "
        "Check host_bridge_nic, host_bridge_bootproto, host_bridge_addresses and host_bridge_gateway."
    )
    assert hb.pyroute2_message("/usr/bin/python3") == (
        "The host's Python (/usr/bin/python3) cannot import pyroute2 and host_bridge_install_pyroute2 is false. Install "
        "python3-pyroute2 (EPEL on EL8), or set host_bridge_install_pyroute2: true."
    )


def test_keyfile_arguments_leave_out_what_the_plan_does_not_set():
    item = {
        "name": "breth1",
        "type": "bridge",
        "interface": "breth1",
        "cloned_mac_address": MAC,
        "stp": False,
        "forward_delay": 0,
        "ipv4": {"method": "auto"},
        "controller": None,
    }
    assert hb.keyfile_args(item, "/etc/NetworkManager/system-connections") == {
        "name": "breth1",
        "type": "bridge",
        "interface": "breth1",
        "settings": {},
        "cloned_mac_address": MAC,
        "stp": False,
        "forward_delay": 0,
        "ipv4": {"method": "auto"},
        "config_dir": "/etc/NetworkManager/system-connections",
    }
    port = hb.keyfile_args({"name": "eth1", "type": "ethernet", "interface": "eth1", "controller": "breth1", "settings": {"ipv4": None}}, "/d", reload=True)
    assert port == {
        "name": "eth1",
        "type": "ethernet",
        "interface": "eth1",
        "controller": "breth1",
        "settings": {"ipv4": None},
        "config_dir": "/d",
        "reload": True,
    }


def test_networkmanager_needs_a_change_when_a_profile_changes_or_the_devices_do_not_run_them():
    assert not hb.nm_needed({"runtime_ok": True}, [{"changed_keys": []}, {"changed": False}])
    assert hb.nm_needed({"runtime_ok": False}, [])
    assert hb.nm_needed({"runtime_ok": True}, [{"changed_keys": ["ipv4.method"]}])


def test_the_activation_and_its_failure():
    assert hb.activation_argv("8c1f", 60) == ["nmcli", "--wait", "30", "connection", "up", "uuid", "8c1f"]
    assert hb.activation_argv("8c1f", 120)[2] == "60"
    assert hb.activation_failure("eth1", {"rc": 4, "stderr": "Error: Connection activation failed.\n"}) == (
        "NetworkManager could not activate eth1: Error: Connection activation failed."
    )
    assert hb.nm_unguarded_message("kvm1", "bridging eth1 into breth1", hb.NM_STEP_WRITE, {"msg": "mode 0644"}) == (
        "host_bridge: kvm1: bridging eth1 into breth1 failed at 'Write the profiles': mode 0644 (host_bridge_rollback_timeout is 0: nothing was rolled back)."
    )
