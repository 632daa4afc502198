"""bridge_info: what bridges, ports and taps are, from hand-built dumps."""

from __future__ import annotations

import pytest
from test_tap import bridge, link, tap  # the hand-built dump records of the tap tests

from ansible_collections.kvmhost.bridging.plugins.module_utils import _bridge_info

NO_NF = {"ip_forward": 1, "ipv6_forwarding": 0, "bridge_nf_call_iptables": None, "bridge_nf_call_ip6tables": None, "bridge_nf_call_arptables": None}


def port_of(rec, master, state=3):
    rec["master"] = master
    rec["slave_kind"] = "bridge"
    rec["brport"] = {"state": state}
    return rec


def host_links():
    """A KVM host: breth0 bridged to eth0 with two guests, virbr0 isolated, and loose taps."""
    breth0 = bridge(3, "breth0")
    breth0["mac"] = "52:54:00:12:34:56"
    breth0["br"]["id_addr"] = "52:54:00:12:34:56"
    virbr0 = bridge(4, "virbr0")
    virbr0["br"].update(stp_state=1, forward_delay=200, priority=0x1000, id_addr="52:54:00:aa:bb:cc")
    return [
        link(1, "lo", mac="00:00:00:00:00:00", mtu=65536),
        port_of(link(2, "eth0", carrier=True), 3),
        breth0,
        virbr0,
        port_of(tap(10, "vnet10", carrier=True, owner=107), 3),
        port_of(tap(11, "vnet2", carrier=True), 3),
        port_of(tap(12, "vnet3"), 4, state=0),
        port_of(link(13, "veth0", kind="veth", carrier=True), 4, state=4),
        port_of(link(14, "bond0.100", kind="vlan"), 4, state=1),
        tap(15, "vnet7"),
        tap(16, "vnet8", master=17),
        link(17, "ovs-system", kind="openvswitch"),
        tap(18, "tun0", tun_type=1),
    ]


HOLDERS = {
    "vnet2": [{"pid": 900, "cmdline": "/usr/bin/qemu-system-x86_64 -name guest=web01,debug-threads=on -m 1024", "guest": "web01"}],
    "vnet10": [
        {"pid": 1200, "cmdline": "/usr/libexec/qemu-kvm -name db01", "guest": "db01"},
        {"pid": 1300, "cmdline": "/usr/libexec/qemu-kvm -name db01", "guest": "db01"},
    ],
    "vnet7": [{"pid": 77, "cmdline": "tapholder", "guest": None}],
}

ADDRESSES = [
    {"index": 3, "family": "ipv4", "address": "198.18.0.10", "prefixlen": 24},
    {"index": 3, "family": "ipv6", "address": "fe80::5054:ff:fe12:3456", "prefixlen": 64},
    {"index": 2, "family": "ipv4", "address": "198.18.9.9", "prefixlen": 24},
]


def describe():
    return _bridge_info.describe(host_links(), ADDRESSES, HOLDERS, NO_NF)


def test_bridges_and_their_fields():
    info = describe()
    assert [b["name"] for b in info["bridges"]] == ["breth0", "virbr0"]
    breth0, virbr0 = info["bridges"]
    assert {k: breth0[k] for k in ("name", "ifindex", "mac", "mtu", "operstate", "bridge_id", "stp", "stp_mode", "forward_delay", "uplinks")} == {
        "name": "breth0",
        "ifindex": 3,
        "mac": "52:54:00:12:34:56",
        "mtu": 1500,
        "operstate": "down",
        "bridge_id": "8000.525400123456",
        "stp": False,
        "stp_mode": "off",
        "forward_delay": 15.0,
        "uplinks": ["eth0"],
    }
    assert breth0["addresses"] == [
        {"family": "ipv4", "address": "198.18.0.10", "prefixlen": 24, "cidr": "198.18.0.10/24"},
        {"family": "ipv6", "address": "fe80::5054:ff:fe12:3456", "prefixlen": 64, "cidr": "fe80::5054:ff:fe12:3456/64"},
    ]
    assert (virbr0["stp"], virbr0["stp_mode"], virbr0["forward_delay"], virbr0["bridge_id"], virbr0["uplinks"]) == (
        True,
        "kernel",
        2.0,
        "1000.525400aabbcc",
        ["bond0.100"],
    )
    assert virbr0["addresses"] == []


def test_ports_kinds_states_and_natural_order():
    breth0, virbr0 = describe()["bridges"]
    assert [(p["name"], p["kind"], p["stp_state"], p["carrier"]) for p in breth0["ports"]] == [
        ("eth0", "physical", "forwarding", True),
        ("vnet2", "tap", "forwarding", True),
        ("vnet10", "tap", "forwarding", True),
    ]
    assert [(p["name"], p["kind"], p["stp_state"]) for p in virbr0["ports"]] == [
        ("bond0.100", "vlan", "listening"),
        ("veth0", "veth", "blocking"),
        ("vnet3", "tap", "disabled"),
    ]
    assert "process" not in breth0["ports"][0]
    assert breth0["ports"][0]["mac"] == "52:54:00:00:00:02"


def test_tap_ports_name_their_process_and_guest():
    ports = {p["name"]: p for p in describe()["bridges"][0]["ports"]}
    web = ports["vnet2"]
    assert web["process"] == {"pid": 900, "cmdline": "/usr/bin/qemu-system-x86_64 -name guest=web01,debug-threads=on -m 1024", "guest": "web01"}
    assert web["guest"] == "web01"
    assert (web["persistent"], web["multi_queue"], web["vnet_hdr"], web["owner"]) == (True, False, True, None)
    db = ports["vnet10"]
    assert db["process"]["pid"] == 1200
    assert [p["pid"] for p in db["processes"]] == [1200, 1300]
    assert db["owner"] == 107
    free = describe()["bridges"][1]["ports"][2]
    assert (free["name"], free["process"], free["processes"], free["guest"]) == ("vnet3", None, [], None)


def test_unbridged_taps():
    loose = describe()["unbridged_taps"]
    assert [(t["name"], t["master"]) for t in loose] == [("vnet7", None), ("vnet8", "ovs-system")]
    assert loose[0]["process"] == {"pid": 77, "cmdline": "tapholder", "guest": None}
    assert "stp_state" not in loose[0]


def test_forwarding_is_passed_through():
    assert describe()["forwarding"] == NO_NF


def test_report_reads_like_brctl_show_and_explains():
    report = describe()["report"]
    lines = report.splitlines()
    assert lines[0].split() == ["bridge", "name", "bridge", "id", "STP", "enabled", "interfaces"]
    assert lines[1].split() == ["breth0", "8000.525400123456", "no", "eth0"]
    assert lines[2].split() == ["vnet2"]
    assert lines[3].split() == ["vnet10"]
    assert lines[4].split() == ["virbr0", "1000.525400aabbcc", "yes", "bond0.100"]
    # the interfaces column lines up
    assert lines[1].rindex("eth0") == lines[2].index("vnet2") == lines[0].index("interfaces")
    assert "bridged to the network outside the host through eth0" in report
    assert "bridged to the network outside the host through bond0.100" in report
    assert "vnet2: tap of guest web01, pid 900 (qemu-system-x86_64), forwarding, carrier on" in report
    assert "vnet3: tap, no process holds it, disabled, carrier off" in report
    assert "vnet8 (port of ovs-system): tap, no process holds it" in report
    assert "net.ipv4.ip_forward=1" in report
    assert "bridge-nf-call-iptables=n/a (br_netfilter not loaded)" in report
    assert "FORWARD chain" not in report
    assert all(line == line.rstrip() for line in lines)


def test_report_warns_when_bridged_frames_meet_iptables():
    info = _bridge_info.describe([bridge(3, "br0")], [], {}, dict(NO_NF, bridge_nf_call_iptables=1))
    assert "bridge-nf-call-iptables=1" in info["report"]
    assert "a REJECT there also blocks the guests' DHCP" in info["report"]


def test_empty_host():
    info = _bridge_info.describe([link(1, "lo")], [], {}, dict(NO_NF, ipv6_forwarding=None))
    assert info["bridges"] == []
    assert info["unbridged_taps"] == []
    assert info["report"].splitlines()[0].split() == ["bridge", "name", "bridge", "id", "STP", "enabled", "interfaces"]
    assert "n/a (no IPv6)" in info["report"]


def test_bridge_without_ports_in_report():
    info = _bridge_info.describe([bridge(3, "br0")], [], {}, NO_NF)
    assert info["report"].splitlines()[1].split() == ["br0", "8000.525400000003", "no"]
    assert "no uplink: a network inside this host only (routed or NATed, like libvirt's virbr0)" in info["report"]


@pytest.mark.parametrize(
    ("rec", "kind"),
    [
        (link(1, "eth0"), "physical"),
        (tap(2, "vnet0"), "tap"),
        (tap(3, "tun0", tun_type=1), "tun"),
        (link(4, "v", kind="veth"), "veth"),
        (link(5, "b", kind="bond"), "bond"),
        (link(6, "x", kind="vxlan"), "vxlan"),
        (link(7, "t", kind="tun"), "tap"),
    ],
)
def test_port_kind(rec, kind):
    assert _bridge_info.port_kind(rec) == kind


def test_read_sysctls(tmp_path):
    (tmp_path / "net/ipv4").mkdir(parents=True)
    (tmp_path / "net/ipv4/ip_forward").write_text("1\n")
    (tmp_path / "net/ipv6/conf/all").mkdir(parents=True)
    (tmp_path / "net/ipv6/conf/all/forwarding").write_text("0\n")
    assert _bridge_info.read_sysctls(str(tmp_path)) == NO_NF
    (tmp_path / "net/bridge").mkdir()
    for name in ("iptables", "ip6tables", "arptables"):
        (tmp_path / ("net/bridge/bridge-nf-call-" + name)).write_text("1\n")
    values = _bridge_info.read_sysctls(str(tmp_path))
    assert (values["bridge_nf_call_iptables"], values["bridge_nf_call_ip6tables"], values["bridge_nf_call_arptables"]) == (1, 1, 1)


def test_natural_key():
    assert sorted(["vnet10", "vnet2", "eth0", "vnet1"], key=_bridge_info.natural_key) == ["eth0", "vnet1", "vnet2", "vnet10"]


def test_thousand_ports():
    links = [bridge(3, "br0")] + [port_of(tap(100 + i, "vnet%d" % i), 3) for i in range(1000)]
    info = _bridge_info.describe(links, [], {}, NO_NF)
    assert len(info["bridges"][0]["ports"]) == 1000
    assert info["bridges"][0]["ports"][-1]["name"] == "vnet999"
    assert len(info["report"].splitlines()) > 2000


def test_nic_that_is_a_veth_is_an_uplink():
    """A host that is itself a namespace or container has veth NICs: eth1 leads out, vethXXXX does not."""
    links = [bridge(3, "breth1"), port_of(link(4, "eth1", kind="veth", carrier=True), 3), port_of(link(5, "veth9f2c", kind="veth"), 3)]
    info = _bridge_info.describe(links, [], {}, NO_NF)
    assert info["bridges"][0]["uplinks"] == ["eth1"]
    assert "bridged to the network outside the host through eth1" in info["report"]
    assert "no uplink" not in info["report"]
