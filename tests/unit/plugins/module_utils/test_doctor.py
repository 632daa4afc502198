"""_doctor: the doctor's checks, one case per problem and one clean case each, and its report."""

from __future__ import annotations

import pytest

from ansible_collections.kvmhost.bridging.plugins.module_utils import _doctor as doc
from ansible_collections.kvmhost.bridging.plugins.module_utils._doctor import Forward, Readings

NIC_MAC = "52:54:00:12:34:56"


def port(name, kind="ethernet", stp_state="forwarding", mac=NIC_MAC, **over):
    out = {"name": name, "kind": kind, "stp_state": stp_state, "carrier": True, "operstate": "up", "mac": mac}
    out.update(over)
    return out


def bridge(name, ports=(), mac=NIC_MAC, addresses=(), uplinks=None, forward_delay=0.0):
    return {"name": name, "mac": mac, "ports": list(ports), "forward_delay": forward_delay,
            "uplinks": [p["name"] for p in ports if p["kind"] != "tap"] if uplinks is None else uplinks,
            "addresses": [{"family": "ipv4", "cidr": cidr} for cidr in addresses]}  # fmt: skip


def info(*bridges, ip_forward=1, nf=0, unbridged=(), libvirt=None):
    return {"bridges": list(bridges), "unbridged_taps": list(unbridged), "forwarding": {"ip_forward": ip_forward, "bridge_nf_call_iptables": nf},
            "libvirt": libvirt or {"status": "off", "uri": None, "msg": "not looked up (libvirt: never)", "domains": []}}  # fmt: skip


HEALTHY = info(bridge("breth0", [port("eth0"), port("vnet0", kind="tap", mac="fe:54:00:aa:bb:cc")]))
ISOLATED = bridge("isol1", addresses=["198.19.40.1/24"])
REJECT = "-A FORWARD -j REJECT --reject-with icmp-host-prohibited"


def checks(readings, check, **kw):
    skip = [c for c in doc.CORE_CHECKS if c != check]
    return doc.core_problems(readings, skip, **kw)


# ---------------------------------------------------------------------------- the readers' shapes


def test_ifcfg_devices_keys_by_device_or_file_name():
    found = doc.ifcfg_devices({"ifcfg-eth0": {"BRIDGE": "br0"}, "ifcfg-lan": {"DEVICE": "eth1"}})
    assert found == {"eth0": {"BRIDGE": "br0", "FILE": "ifcfg-eth0"}, "eth1": {"DEVICE": "eth1", "FILE": "ifcfg-lan"}}


def test_a_bridges_nics_are_its_uplinks_and_the_ports_its_files_name():
    br = bridge("br0", [port("eth0"), port("veth1", kind="veth"), port("veth2", kind="veth")], uplinks=["eth0"])
    assert doc.bridge_nics([br], {"veth2": {"BRIDGE": "br0"}, "veth1": {"BRIDGE": "brX"}}) == {"br0": ["eth0", "veth2"]}


def test_held_addresses_skip_link_local_ipv6():
    addrs = [{"ifname": "eth1", "addr_info": [{"family": "inet", "local": "198.19.0.7", "prefixlen": 24},
                                              {"family": "inet6", "local": "fe80::1", "prefixlen": 64, "scope": "link"},
                                              {"family": "inet6", "local": "2001:db8::7", "prefixlen": 64, "scope": "global"}]}]  # fmt: skip
    assert doc.held_addresses(addrs, "eth1") == ["198.19.0.7/24", "2001:db8::7/64"]
    assert doc.held_addresses(addrs, "eth2") == []


# ---------------------------------------------------------------------------- a healthy host


def test_a_healthy_host_has_no_problem():
    readings = Readings(info=HEALTHY, ifcfg={"eth0": {"FILE": "ifcfg-eth0", "BRIDGE": "breth0", "NM_CONTROLLED": "no"}},
                        forward=Forward(rejects=[REJECT], accept_bridged_first=True), nm_running=False)  # fmt: skip
    assert doc.core_problems(readings) == []


# ---------------------------------------------------------------------------- forwarding


def test_forwarding_off_with_a_routed_bridge():
    (found,) = checks(Readings(info=info(ISOLATED, ip_forward=0)), "forwarding")
    assert found["subject"] == "net.ipv4.ip_forward"
    assert "isol1 (198.19.40.1/24) has no NIC" in found["problem"]
    assert "playbooks/forwarding.yml" in found["fix"]


def test_forwarding_is_clean_when_on_or_when_every_bridge_has_a_nic():
    assert checks(Readings(info=info(ISOLATED, ip_forward=1)), "forwarding") == []
    with_nic = bridge("br0", [port("eth0")], addresses=["198.19.0.1/24"])
    assert checks(Readings(info=info(with_nic, ip_forward=0)), "forwarding") == []


# ---------------------------------------------------------------------------- reject_rule


def test_reject_rule_hits_bridged_frames():
    readings = Readings(info=info(HEALTHY["bridges"][0], nf=1), forward=Forward(rejects=[REJECT, REJECT]))
    (found,) = checks(readings, "reject_rule")
    assert found["problem"].startswith("FORWARD has '%s', and with net.bridge.bridge-nf-call-iptables=1" % REJECT)
    assert "bridged guests get no DHCP lease" in found["problem"]
    assert "forwarding_accept_bridged: true" in found["fix"]


def test_reject_rule_hits_routed_traffic():
    (found,) = checks(Readings(info=info(ISOLATED, ip_forward=1), forward=Forward(rejects=[REJECT])), "reject_rule")
    assert found["problem"] == "FORWARD has '%s' traffic routed from isol1 (198.19.40.1/24) hits it." % REJECT
    assert "forwarding_accept_bridged" not in found["fix"]


@pytest.mark.parametrize("readings", [
    Readings(info=info(HEALTHY["bridges"][0], nf=1), forward=Forward(rejects=[REJECT], accept_bridged_first=True)),
    Readings(info=info(HEALTHY["bridges"][0], nf=0), forward=Forward(rejects=[REJECT])),
    Readings(info=info(HEALTHY["bridges"][0], nf=1), forward=Forward(rejects=["-A FORWARD -s 198.18.0.0/24 -j REJECT"])),
    Readings(info=info(HEALTHY["bridges"][0], nf=1), forward=None),
], ids=["accepted-first", "not-filtered", "conditional-reject", "firewalld-or-no-iptables"])  # fmt: skip
def test_reject_rule_clean(readings):
    assert checks(readings, "reject_rule") == []


# ---------------------------------------------------------------------------- empty_bridge


def test_empty_bridge_without_a_file():
    (found,) = checks(Readings(info=info(bridge("brempty"))), "empty_bridge")
    assert found["subject"] == "brempty"
    assert found["problem"] == "Bridge brempty has no port: nothing reaches it, and a guest on it reaches nothing."
    assert "ip link del brempty" in found["fix"]


def test_empty_bridge_that_a_nics_file_names():
    ifcfg = {"brx": {"FILE": "ifcfg-brx", "TYPE": "Bridge"}, "eth3": {"FILE": "ifcfg-eth3", "BRIDGE": "brx"}}
    (found,) = checks(Readings(info=info(bridge("brx")), ifcfg=ifcfg), "empty_bridge")
    assert "although the ifcfg file of eth3 makes it its port" in found["problem"]
    assert "host_bridge_nic: eth3 and host_bridge_name: brx" in found["fix"]


def test_empty_bridge_clean_for_a_private_network_by_ifcfg_or_keyfile():
    ifcfg = {"isol1": {"FILE": "ifcfg-isol1", "TYPE": "Bridge"}}
    assert checks(Readings(info=info(ISOLATED), ifcfg=ifcfg), "empty_bridge") == []
    assert checks(Readings(info=info(ISOLATED)), "empty_bridge", isolated=["isol1"]) == []
    assert checks(Readings(info=HEALTHY), "empty_bridge") == []


# ---------------------------------------------------------------------------- stp


def test_stp_listening_port():
    br = bridge("brstp", [port("vnet0", kind="tap", stp_state="listening")], forward_delay=30.0)
    (found,) = checks(Readings(info=info(br)), "stp")
    assert found["subject"] == "brstp:vnet0"
    assert "is listening, not forwarding: STP holds its traffic for the forward delay (30.0s)" in found["problem"]
    assert "ifcfg-brstp" in found["fix"]


def test_stp_blocking_port():
    (found,) = checks(Readings(info=info(bridge("br0", [port("eth0"), port("eth1", stp_state="blocking")]))), "stp")
    assert "STP found a loop and blocks it." in found["problem"]
    assert found["fix"].startswith("Check the cabling")


def test_stp_nic_down():
    (found,) = checks(Readings(info=info(bridge("br0", [port("eth0", stp_state="disabled", carrier=False, operstate="down")]))), "stp")
    assert found["problem"] == "NIC eth0 of br0 does not forward: it is down without carrier, so the bridge reaches nothing outside the host."


def test_stp_clean():
    assert checks(Readings(info=info(bridge("br0", [port("eth0"), port("vnet1", kind="tap", stp_state="disabled")]))), "stp") == []


# ---------------------------------------------------------------------------- multicast_mac


def test_multicast_mac_of_a_guest_on_its_command_line():
    tap = port("vnet9", kind="tap", mac="fe:00:00:00:00:09", guest="vm9",
               processes=[{"cmdline": "qemu -device virtio-net-pci,mac=53:54:00:12:34:56"}])  # fmt: skip
    (found,) = checks(Readings(info=info(bridge("brbad", [port("eth1"), tap]))), "multicast_mac")
    assert found["subject"] == "vnet9"
    assert "Guest vm9 on vnet9 (bridge brbad) uses MAC 53:54:00:12:34:56" in found["problem"]


def test_multicast_mac_of_an_unbridged_tap():
    (found,) = checks(Readings(info=info(unbridged=[port("tap0", kind="tap", mac="01:00:5e:00:00:01", guest=None)])), "multicast_mac")
    assert found["problem"].startswith("The VM on tap0 uses MAC 01:00:5e:00:00:01, a multicast address")


def test_multicast_mac_clean():
    tap = port("vnet0", kind="tap", mac="FE:54:00:00:00:01", processes=[{"cmdline": "qemu mac=52:54:00:00:00:01"}], guest="vm")
    assert checks(Readings(info=info(bridge("br0", [tap]))), "multicast_mac") == []


# ---------------------------------------------------------------------------- nic_address


def test_nic_address_on_a_port():
    addrs = [{"ifname": "eth1", "addr_info": [{"family": "inet", "local": "198.19.0.77", "prefixlen": 24}]}]
    (found,) = checks(Readings(info=info(bridge("brbad", [port("eth1")])), addresses=addrs), "nic_address")
    assert found["subject"] == "eth1"
    assert "eth1 is a port of brbad but still holds 198.19.0.77/24" in found["problem"]
    assert "host_bridge_nic: eth1 and host_bridge_name: brbad" in found["fix"]


def test_nic_address_clean():
    addrs = [{"ifname": "breth0", "addr_info": [{"family": "inet", "local": "198.19.0.7", "prefixlen": 24}]},
             {"ifname": "eth0", "addr_info": [{"family": "inet6", "local": "fe80::1", "prefixlen": 64, "scope": "link"}]}]  # fmt: skip
    assert checks(Readings(info=HEALTHY, addresses=addrs), "nic_address") == []


# ---------------------------------------------------------------------------- nm_controlled

FILES = {"br0": {"FILE": "ifcfg-br0", "TYPE": "Bridge", "NM_CONTROLLED": "no"},
         "eth1": {"FILE": "ifcfg-eth1", "BRIDGE": "br0", "NM_CONTROLLED": "No"},
         "eth2": {"FILE": "ifcfg-eth2", "NM_CONTROLLED": "no"}}  # fmt: skip


def test_nm_controlled_no_while_networkmanager_runs():
    found = checks(Readings(info=HEALTHY, ifcfg=FILES, nm_running=True), "nm_controlled")
    assert sorted(p["subject"] for p in found) == ["ifcfg-br0", "ifcfg-eth1"]  # eth2 is no bridge and no port
    assert "NetworkManager leaves br0 alone" in next(p for p in found if p["subject"] == "ifcfg-br0")["problem"]


def test_nm_controlled_yes_while_it_does_not():
    files = {"br0": {"FILE": "ifcfg-br0", "TYPE": "bridge", "NM_CONTROLLED": "yes"}}
    (found,) = checks(Readings(info=HEALTHY, ifcfg=files, nm_running=False), "nm_controlled")
    assert found["fix"] == "Set NM_CONTROLLED=no in ifcfg-br0 (the host_bridge role writes that)."


def test_nm_controlled_clean():
    assert checks(Readings(info=HEALTHY, ifcfg=FILES, nm_running=False), "nm_controlled") == []


# ---------------------------------------------------------------------------- bridge_mac


def test_bridge_mac_differs_from_its_nics():
    br = bridge("brbad", [port("eth1", mac="52:54:00:00:00:01")], mac="02:00:00:00:00:99")
    (found,) = checks(Readings(info=info(br)), "bridge_mac")
    assert found["subject"] == "brbad"
    assert "MACADDR=52:54:00:00:00:01 in ifcfg-brbad" in found["fix"]


def test_bridge_mac_clean():
    br = bridge("br0", [port("eth1", mac="52:54:00:00:00:01")], mac="52:54:00:00:00:01".upper())
    assert checks(Readings(info=info(br, ISOLATED)), "bridge_mac") == []


# ---------------------------------------------------------------------------- domain_bridge


def iface(view, bridge_name, state, mac="52:54:00:bb:00:01", target=None):
    return {"view": view, "type": "bridge", "bridge": bridge_name, "bridge_state": state, "mac": mac, "target": target}


def libvirt(*domains):
    return {"status": "ok", "uri": "test:///x", "msg": "", "domains": list(domains)}


def test_domain_bridge_missing_in_the_definition():
    dom = {"domain": "db01", "active": False, "interfaces": [iface("config", "brgone", "missing")]}
    (found,) = checks(Readings(info=info(libvirt=libvirt(dom))), "domain_bridge")
    assert found["subject"] == "db01:brgone"
    assert found["problem"] == (
        "Domain db01 has an interface (52:54:00:bb:00:01) on bridge brgone in its persistent definition, but brgone does not "
        "exist on this host: the domain does not start (libvirt: Cannot get interface MTU on 'brgone': No such device)."
    )
    assert found["fix"].startswith("Create brgone (playbooks/host_bridge.yml bridges a NIC")


def test_domain_bridge_running_on_a_nic():
    ifaces = [iface("config", "eth1", "not_a_bridge"), iface("live", "eth1", "not_a_bridge", target="vm3tap")]
    (found,) = checks(Readings(info=info(libvirt=libvirt({"domain": "app01", "active": True, "interfaces": ifaces}))), "domain_bridge")
    assert "in its persistent definition and the running domain, but eth1 is not a bridge" in found["problem"]
    assert "the domain does not start again once it stops (libvirt: its tap cannot be made a port of eth1)" in found["problem"]
    assert "its running NIC (vm3tap) is on no bridge" in found["problem"]
    assert found["fix"].startswith("Bridge eth1 (playbooks/host_bridge.yml with host_bridge_nic: eth1)")


def test_domain_bridge_running_on_a_deleted_bridge():
    dom = {"domain": "ops01", "active": True, "interfaces": [iface("live", "brgone", "missing", target="vm4tap")]}
    (found,) = checks(Readings(info=info(libvirt=libvirt(dom))), "domain_bridge")
    assert found["fix"].endswith("For the running domain, once the bridge is there: ip link set vm4tap master brgone.")


def test_domain_bridge_clean():
    dom = {"domain": "web01", "active": True, "interfaces": [iface("live", "breth0", "bridge", target="vnet0")]}
    assert checks(Readings(info=info(libvirt=libvirt(dom))), "domain_bridge") == []
    gone = {"domain": "db01", "active": False, "interfaces": [iface("config", "brgone", "missing")]}
    assert checks(Readings(info=info(libvirt=dict(libvirt(gone), status="unreachable"))), "domain_bridge") == []


# ---------------------------------------------------------------------------- skip, combine, report


def test_skipped_checks_do_not_run():
    readings = Readings(info=info(bridge("brempty"), ISOLATED, ip_forward=0))
    assert {p["check"] for p in doc.core_problems(readings)} == {"forwarding", "empty_bridge"}
    assert doc.core_problems(readings, skip=["forwarding", "empty_bridge"]) == []


def problem(check, subject="x"):
    return {"check": check, "subject": subject, "problem": "p", "fix": "f"}


def test_combine_orders_the_problems_and_names_what_did_not_run():
    firewalld = {"firewalld": {"running": True}, "problems": [problem("firewalld_zone"), problem("firewalld_block")]}
    routing = {"problems": [problem("libvirt_routing")], "lines": ["libvirt_routing: a -> b: passes"]}
    out = doc.combine([problem("stp")], firewalld, [problem("nm_boot")], [problem("dhcp_port")], routing, "ok", skip=["firewalld_block"])
    assert [p["check"] for p in out.problems] == ["stp", "firewalld_zone", "nm_boot", "dhcp_port", "libvirt_routing"]
    assert out.not_run == [] and out.routing_lines == routing["lines"]
    out = doc.combine([], {"firewalld": {"running": False}, "problems": []}, [], [], None, "unreachable")
    assert out.not_run == ["domain_bridge", *doc.FIREWALLD_CHECKS, "libvirt_routing"]


def test_report_lists_each_problem_with_its_fix_and_the_checks_run():
    outcome = doc.Outcome([problem("stp", "br0:eth0")], ["domain_bridge", *doc.FIREWALLD_CHECKS, "libvirt_routing"])
    lib = {"uri": "qemu:///system", "msg": "not reachable: no socket"}
    text = doc.report("kvm01", outcome, ["bridge_mac"], lib, "bridge name ...")
    lines = text.splitlines()
    assert lines[0] == "doctor: kvm01: 1 problem(s) found:"
    assert lines[1:3] == ["1. [stp] br0:eth0: p", "   fix: f"]
    assert lines[3] == ("checks run: forwarding, reject_rule, empty_bridge, stp, multicast_mac, nic_address, nm_controlled, nm_ifcfg,"
                        " nm_boot, dhcp_port, dhcp_expiry")  # fmt: skip
    assert lines[4] == "not run: domain_bridge, because libvirt at qemu:///system said nothing: not reachable: no socket"
    assert lines[-1] == "bridge name ..."
    assert doc.report("kvm01", doc.Outcome([], []), [], lib, "").startswith("doctor: kvm01: 0 problem(s) found.\n")


# ---------------------------------------------------------------------------- the ifcfg reader the doctor uses


def test_read_ifcfg_reads_the_files_as_networkmanager_does(tmp_path):
    from ansible_collections.kvmhost.bridging.plugins.module_utils._doctor_read import read_ifcfg

    (tmp_path / "ifcfg-eth1").write_text("DEVICE=eth1\nBRIDGE=\"br0\"\nNM_CONTROLLED=yes # by hand\nNM_CONTROLLED='no'\n")
    (tmp_path / "ifcfg-lan").write_text("DEVICE=eth2\nTYPE=Bridge\n")
    (tmp_path / "ifcfg-eth1.bak").write_text("DEVICE=eth1\nBRIDGE=brold\n")  # a backup: not read
    (tmp_path / "route-eth1").write_text("198.18.0.0/24 via 198.19.0.1\n")
    assert read_ifcfg(str(tmp_path)) == {
        "eth1": {"FILE": "ifcfg-eth1", "DEVICE": "eth1", "BRIDGE": "br0", "NM_CONTROLLED": "no"},
        "eth2": {"FILE": "ifcfg-lan", "DEVICE": "eth2", "TYPE": "Bridge"},
    }
    assert read_ifcfg(str(tmp_path / "missing")) == {}


# ---------------------------------------------------------------------------- the FORWARD reader the doctor uses

SAVE = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
%s
COMMIT
"""
ACCEPT_BRIDGED = "-A FORWARD -m physdev --physdev-is-bridged -j ACCEPT"


class FakeModule:
    """iptables-nft only (no legacy), with ``rules`` in FORWARD; firewalld absent or running."""

    def __init__(self, rules, firewalld=False):
        self.rules = rules
        self.firewalld = firewalld

    def get_bin_path(self, name, required=False):
        known = {"iptables-nft-save", "iptables-nft-restore", "iptables"} | ({"firewall-cmd"} if self.firewalld else set())
        return "/usr/sbin/" + name if name in known else None

    def run_command(self, argv, **kwargs):
        name = argv[0].rsplit("/", 1)[-1]
        if name == "firewall-cmd":
            return 0, "running\n", ""
        if name == "iptables":
            return 0, "iptables v1.8.9 (nf_tables)\n", ""
        assert name == "iptables-nft-save", argv
        return 0, SAVE % "\n".join(self.rules), ""


@pytest.mark.parametrize(("rules", "rejects", "first"), [
    ([REJECT], [REJECT], False),
    ([ACCEPT_BRIDGED, REJECT], [REJECT], True),
    ([REJECT, ACCEPT_BRIDGED], [REJECT], False),
    (["-A FORWARD -i virbr0 -j REJECT --reject-with icmp-port-unreachable"], ["-A FORWARD -i virbr0 -j REJECT --reject-with icmp-port-unreachable"], False),
    ([], [], False),
])  # fmt: skip
def test_read_forward(rules, rejects, first):
    from ansible_collections.kvmhost.bridging.plugins.module_utils._doctor_read import read_forward

    assert read_forward(FakeModule(rules)) == Forward(rejects=rejects, accept_bridged_first=first)


def test_read_forward_says_nothing_where_firewalld_runs(tmp_path, monkeypatch):
    from ansible_collections.kvmhost.bridging.plugins.module_utils import _firewall
    from ansible_collections.kvmhost.bridging.plugins.module_utils._doctor_read import read_forward

    socket = tmp_path / "system_bus_socket"  # the host has a system bus (only the socket's existence is looked at)
    socket.write_text("")
    monkeypatch.setattr(_firewall, "SYSTEM_BUS_SOCKET", str(socket))
    monkeypatch.delenv("DBUS_SYSTEM_BUS_ADDRESS", raising=False)
    assert read_forward(FakeModule([REJECT], firewalld=True)) is None
