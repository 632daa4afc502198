"""bridge_info's libvirt step: which domain is behind each tap, and every domain's interfaces.

read_domains runs against libvirt's test driver (real libvirt code, in-process,
no daemon) with node files of its own; add_domains is pure.
"""

from __future__ import annotations

import pytest
from test_bridge_info import ADDRESSES, HOLDERS, NO_NF, host_links  # the hand-built KVM host of the bridge_info tests
from test_tap import tap  # the hand-built dump records of the tap tests

from ansible_collections.kvmhost.bridging.plugins.module_utils import _bridge_info
from ansible_collections.kvmhost.bridging.plugins.module_utils import _libvirt_iface as li
from ansible_collections.kvmhost.bridging.plugins.module_utils import _libvirt_xml as lx

libvirt = pytest.importorskip("libvirt")

TEST_NS = "http://libvirt.org/schemas/domain/test/1.0"


def domain(name, uuid, interfaces, state=""):
    return (
        "<domain type='test' xmlns:test='%s'><name>%s</name><uuid>%s</uuid><memory>524288</memory>"
        "<os><type>hvm</type></os><devices>%s</devices>%s</domain>" % (TEST_NS, name, uuid, interfaces, state)
    )


def nic(mac, bridge, target=None, model=None):
    return "<interface type='bridge'><mac address='%s'/><source bridge='%s'/>%s%s</interface>" % (
        mac,
        bridge,
        "<target dev='%s'/>" % target if target else "",
        "<model type='%s'/>" % model if model else "",
    )


SHUT_OFF = "<test:runstate>5</test:runstate>"
# libvirt drops target names that start with vnet from a definition (it makes those itself), so the
# running domain's tap here is called vm2tap; on a real host it would be vnetN.
NODE = "<node>%s</node>" % "".join(
    [
        domain(
            "web01",
            "3deda32b-04b6-47d0-b36a-b09037689f42",
            nic("52:54:00:aa:00:01", "breth0", target="vm2tap", model="virtio")
            + "<interface type='network'><mac address='52:54:00:aa:00:02'/><source network='isolated'/></interface>",
        ),
        domain("db01", "5cd044d1-9846-4d92-8bb2-850626374163", nic("52:54:00:bb:00:01", "brgone") + nic("52:54:00:bb:00:02", "eth0"), SHUT_OFF),
        domain("scratch", "9a1c9c5e-2f7b-4c47-9b4e-1d0b7c0e0c01", nic("52:54:00:cc:00:01", "breth0", target="vm3tap"), "<test:transient/>"),
        "<network><name>isolated</name><uuid>004b2221-2d78-c30f-5aa5-f03c87d21e69</uuid><bridge name='brnat'/></network>",
    ]
)


@pytest.fixture
def sysfs(tmp_path):
    net = tmp_path / "sys" / "net"
    (net / "breth0" / "bridge").mkdir(parents=True)
    (net / "eth0").mkdir()
    return str(net)


@pytest.fixture
def uri(node_uri):
    return node_uri(NODE)


def test_read_domains_lists_every_domain_with_both_views_and_the_state_of_each_bridge(uri, sysfs):
    found = li.read_domains(uri, sysfs=sysfs)
    assert (found["uri"], found["status"], found["msg"]) == (uri, "ok", "3 domains, 2 running")
    assert [(d["domain"], d["active"], d["persistent"]) for d in found["domains"]] == [
        ("db01", False, True),
        ("scratch", True, False),
        ("web01", True, True),
    ]
    db01, scratch, web01 = found["domains"]
    assert db01["uuid"] == "5cd044d1-9846-4d92-8bb2-850626374163"
    # shut off: only the persistent definition; brgone is missing, eth0 is a link but no bridge
    assert [(i["view"], i["mac"], i["bridge"], i["bridge_state"]) for i in db01["interfaces"]] == [
        ("config", "52:54:00:bb:00:01", "brgone", "missing"),
        ("config", "52:54:00:bb:00:02", "eth0", "not_a_bridge"),
    ]
    # transient and running: only the live view, with its tap
    assert [(i["view"], i["target"], i["bridge_state"]) for i in scratch["interfaces"]] == [("live", "vm3tap", "bridge")]
    # running and persistent: both views; a network interface has no bridge state
    assert [(i["view"], i["type"], i["mac"], i["bridge_state"]) for i in web01["interfaces"]] == [
        ("live", "bridge", "52:54:00:aa:00:01", "bridge"),
        ("live", "network", "52:54:00:aa:00:02", None),
        ("config", "bridge", "52:54:00:aa:00:01", "bridge"),
        ("config", "network", "52:54:00:aa:00:02", None),
    ]
    assert web01["interfaces"][0]["target"] == "vm2tap" and web01["interfaces"][0]["model"] == "virtio"


def test_taps_of_takes_the_running_interfaces_only(uri, sysfs):
    domains = li.read_domains(uri, sysfs=sysfs)["domains"]
    assert li.taps_of(domains) == {
        "vm2tap": {"domain": "web01", "mac": "52:54:00:aa:00:01", "bridge": "breth0", "model": "virtio"},
        "vm3tap": {"domain": "scratch", "mac": "52:54:00:cc:00:01", "bridge": "breth0", "model": None},
        # the test driver names the running network interface's tap itself, and does not add its bridge
        "testnet0": {"domain": "web01", "mac": "52:54:00:aa:00:02", "bridge": None, "model": None},
    }


def test_read_domains_does_not_fail_when_libvirt_is_not_reachable(tmp_path):
    uri = "qemu+unix:///system?socket=%s" % (tmp_path / "none.sock")
    found = li.read_domains(uri)
    assert (found["status"], found["domains"]) == ("unreachable", [])
    assert found["msg"].startswith("not reachable: ") and "none.sock" in found["msg"]


def test_read_domains_without_a_uri_does_not_look():
    assert li.read_domains(None) == {"uri": None, "status": "off", "msg": "not looked up (libvirt: never)", "domains": [], "networks": []}


def test_read_domains_without_libvirt_python(monkeypatch):
    monkeypatch.setattr(li, "HAS_LIBVIRT", False)
    found = li.read_domains("qemu:///system")
    assert (found["status"], found["domains"]) == ("missing", [])
    assert "python3-libvirt" in found["msg"]


def test_a_remote_uri_leaves_the_bridge_state_unknown(monkeypatch, uri, sysfs):
    monkeypatch.setattr(li, "uri_is_local", lambda _uri: False)
    found = li.read_domains(uri, sysfs=sysfs)
    assert {i["bridge_state"] for d in found["domains"] for i in d["interfaces"]} == {None}


def host_info():
    return _bridge_info.describe(host_links(), ADDRESSES, HOLDERS, NO_NF)


def libvirt_ok(*owners):
    """A read_domains result with one running domain per (domain, tap, mac, model)."""
    domains = [
        {
            "domain": name,
            "uuid": None,
            "active": True,
            "persistent": True,
            "interfaces": [
                {"view": view, "type": "bridge", "mac": mac, "bridge": "breth0", "network": None, "model": model, "target": target, "bridge_state": "bridge"}
                for view, target in (("live", tap), ("config", "vnet99"))
            ],
        }
        for name, tap, mac, model in owners
    ]
    return {"uri": "qemu:///system", "status": "ok", "msg": "%d domains, %d running" % (len(domains), len(domains)), "domains": domains}


def taps_by_name(info):
    taps = [p for b in info["bridges"] for p in b["ports"] if p["kind"] == "tap"] + info["unbridged_taps"]
    return {t["name"]: t for t in taps}


def test_add_domains_names_the_domain_of_each_tap_from_the_running_definition_only():
    info = _bridge_info.add_domains(host_info(), libvirt_ok(("web01", "vnet2", "52:54:00:aa:00:01", "virtio"), ("legacy", "vnet7", "52:54:00:aa:00:07", None)))
    taps = taps_by_name(info)
    assert (taps["vnet2"]["domain"], taps["vnet2"]["domain_mac"], taps["vnet2"]["domain_model"]) == ("web01", "52:54:00:aa:00:01", "virtio")
    assert (taps["vnet7"]["domain"], taps["vnet7"]["domain_mac"], taps["vnet7"]["domain_model"]) == ("legacy", "52:54:00:aa:00:07", None)
    # no running domain has these taps (vnet99 is only in a persistent definition)
    for name in ("vnet10", "vnet3", "vnet8"):
        assert (taps[name]["domain"], taps[name]["domain_mac"], taps[name]["domain_model"]) == (None, None, None)
    assert "domain" not in info["bridges"][0]["ports"][0]  # eth0 is no tap
    assert info["libvirt"]["status"] == "ok"
    report = info["report"]
    assert "  vnet2: tap of guest web01, pid 900 (qemu-system-x86_64), libvirt domain web01 (52:54:00:aa:00:01, virtio), forwarding" in report
    assert "  vnet7: tap of pid 77 (tapholder), libvirt domain legacy (52:54:00:aa:00:07), carrier off" in report
    assert "  vnet3: tap, no process holds it, disabled" in report
    assert report.endswith("libvirt qemu:///system: 2 domains, 2 running\n")


def test_add_domains_when_libvirt_said_nothing_leaves_the_fields_null_and_says_why():
    unreachable = {"uri": "qemu:///system", "status": "unreachable", "msg": "not reachable: Failed to connect socket", "domains": []}
    info = _bridge_info.add_domains(host_info(), unreachable)
    assert {t["domain"] for t in taps_by_name(info).values()} == {None}
    assert info["report"].endswith("libvirt qemu:///system: not reachable: Failed to connect socket; taps are not matched to domains\n")
    off = _bridge_info.add_domains(host_info(), li.read_domains(None))
    assert off["report"].endswith("libvirt: not looked up (libvirt: never)\n")
    assert off["libvirt"]["status"] == "off"
    # Without the libvirt step, the report is what it was.
    assert "libvirt" not in host_info()["report"]


def test_bridge_info_and_the_test_driver_together():
    """test:///default runs domain "test" whose NIC's tap is testnet0: a tap of that name is named after it."""
    links = [*host_links(), tap(40, "testnet0")]
    info = _bridge_info.add_domains(_bridge_info.describe(links, ADDRESSES, HOLDERS, NO_NF), li.read_domains("test:///default"))
    taps = taps_by_name(info)
    assert (taps["testnet0"]["domain"], taps["testnet0"]["domain_mac"]) == ("test", "aa:bb:cc:dd:ee:ff")
    assert info["libvirt"]["msg"] == "1 domain, 1 running"
    assert "testnet0: tap, no process holds it, libvirt domain test (aa:bb:cc:dd:ee:ff), carrier off" in info["report"]


# -- libvirt networks: which one is behind each bridge (issue 15) -------------------------------------------


@pytest.mark.parametrize(
    ("xml", "expected"),
    [
        # <forward/> without a mode is NAT; prefix
        (
            "<network><name>natnet</name><forward/><bridge name='virbr2'/><ip address='198.18.122.1' prefix='24'/></network>",
            ("natnet", "virbr2", "nat", ["198.18.122.0/24"]),
        ),
        # netmask, and an IPv6 subnet beside it
        (
            "<network><name>rtnet</name><forward mode='route'/><bridge name='virbr1'/><ip address='198.18.123.1' netmask='255.255.255.0'/>"
            "<ip family='ipv6' address='fd00:7b::1' prefix='64'/></network>",
            ("rtnet", "virbr1", "route", ["198.18.123.0/24", "fd00:7b::/64"]),
        ),
        # no <forward>: isolated; no prefix or netmask: libvirt's default for the address class
        (
            "<network><name>iso</name><bridge name='virbr5'/><ip address='198.18.124.1'/><ip address='10.1.2.3'/></network>",
            ("iso", "virbr5", "isolated", ["198.18.124.0/24", "10.0.0.0/8"]),
        ),
        # a host bridge that libvirt only names; no address of its own
        ("<network><name>lan</name><forward mode='bridge'/><bridge name='breth0'/></network>", ("lan", "breth0", "bridge", [])),
        (
            "<network><name>opennet</name><forward mode='open'/><bridge name='virbr6'/><ip address='198.18.125.1' prefix='25'/></network>",
            ("opennet", "virbr6", "open", ["198.18.125.0/25"]),
        ),
    ],
)
def test_network_info_reads_name_bridge_forward_mode_and_subnets(xml, expected):
    found = lx.network_info(xml, active=True, autostart=False)
    assert (found["network"], found["bridge"], found["forward"], found["subnets"]) == expected
    assert (found["active"], found["autostart"]) == (True, False)


def test_read_domains_lists_the_networks(uri, sysfs):
    found = li.read_domains(uri, sysfs=sysfs)
    assert found["networks"] == [
        {"network": "isolated", "bridge": "brnat", "forward": "isolated", "subnets": [], "active": True, "autostart": False},
    ]


def test_add_domains_names_the_libvirt_network_behind_each_bridge():
    libvirt_info = dict(
        libvirt_ok(),
        networks=[
            lx.network_info(
                "<network><name>natnet</name><forward mode='nat'/><bridge name='virbr0'/><ip address='198.18.122.1' prefix='24'/></network>",
                active=True,
                autostart=True,
            ),
            lx.network_info("<network><name>gone</name><forward mode='route'/><bridge name='virbr9'/></network>", active=False, autostart=False),
        ],
    )
    info = _bridge_info.add_domains(host_info(), libvirt_info)
    by_name = {b["name"]: b for b in info["bridges"]}
    assert by_name["virbr0"]["libvirt_network"]["network"] == "natnet"
    assert by_name["breth0"]["libvirt_network"] is None
    lines = info["report"].splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("virbr0: "))
    assert lines[at + 1] == "  virbr0: libvirt network natnet (NAT, 198.18.122.0/24), active, autostart"
    assert "virbr9" not in info["report"]  # no such bridge on the host: nothing to say about it
