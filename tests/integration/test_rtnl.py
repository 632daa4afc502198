"""The standard-library netlink reader against the kernel of a lab host, with pyroute2 as the reference."""

from __future__ import annotations

import json
import os
import sys

from test_tap import Holder, make_bridge

COLLECTIONS = os.environ.get("ANSIBLE_COLLECTIONS_PATH", os.path.expanduser("~/.ansible/collections")).split(os.pathsep)[0]
MU = "ansible_collections.kvmhost.bridging.plugins.module_utils"

COMPARE = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
from __MU__ import _rtnl
from pyroute2 import IPRoute
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

def reference_link(msg):
    # pyroute2's own decoding of the same fields, written out independently of _rtnl.
    get = msg.get_attr
    info = get("IFLA_LINKINFO")
    sub = (lambda nla, name: nla.get_attr(name) if nla is not None and hasattr(nla, "get_attr") else None)
    kind, slave_kind = sub(info, "IFLA_INFO_KIND"), sub(info, "IFLA_INFO_SLAVE_KIND")
    data, slave = sub(info, "IFLA_INFO_DATA"), sub(info, "IFLA_INFO_SLAVE_DATA")
    rec = {"index": msg["index"], "name": get("IFLA_IFNAME"), "kind": kind, "slave_kind": slave_kind,
           "master": get("IFLA_MASTER") or None, "mac": (get("IFLA_ADDRESS") or "").lower() or None,
           "mtu": get("IFLA_MTU"), "up": bool(msg["flags"] & 1), "carrier": bool(get("IFLA_CARRIER")),
           "operstate": (get("IFLA_OPERSTATE") or "unknown").lower(), "group": get("IFLA_GROUP") or 0,
           "tun": None, "br": None, "brport": None}
    if kind == "tun" and data is not None:
        rec["tun"] = {"type": sub(data, "IFLA_TUN_TYPE"), "pi": bool(sub(data, "IFLA_TUN_PI")),
                      "vnet_hdr": bool(sub(data, "IFLA_TUN_VNET_HDR")), "multi_queue": bool(sub(data, "IFLA_TUN_MULTI_QUEUE")),
                      "persist": bool(sub(data, "IFLA_TUN_PERSIST")), "owner": sub(data, "IFLA_TUN_OWNER"),
                      "group": sub(data, "IFLA_TUN_GROUP"), "num_queues": sub(data, "IFLA_TUN_NUM_QUEUES") or 0,
                      "num_disabled_queues": sub(data, "IFLA_TUN_NUM_DISABLED_QUEUES") or 0}
    elif kind == "bridge" and data is not None:
        bid = sub(data, "IFLA_BR_BRIDGE_ID")
        rec["br"] = {"stp_state": sub(data, "IFLA_BR_STP_STATE") or 0, "forward_delay": sub(data, "IFLA_BR_FORWARD_DELAY"),
                     "priority": sub(data, "IFLA_BR_PRIORITY"), "id_addr": bid.get("addr") if isinstance(bid, dict) else None}
    if slave_kind == "bridge" and slave is not None:
        rec["brport"] = {"state": sub(slave, "IFLA_BRPORT_STATE")}
    return rec

def reference_address(msg):
    local = msg.get_attr("IFA_LOCAL") if msg["family"] == 2 else None
    return {"index": msg["index"], "family": {2: "ipv4", 10: "ipv6"}.get(msg["family"], str(msg["family"])),
            "address": local or msg.get_attr("IFA_ADDRESS"), "prefixlen": msg["prefixlen"]}

# The kernel updates carrier and operstate asynchronously (linkwatch): read ours before and after
# pyroute2's read, and take the round in which ours did not move.
for _round in range(40):
    links, addrs = _rtnl.dump_links(), _rtnl.dump_addresses()
    with IPRoute() as ip:
        ref_links = [reference_link(m) for m in ip.get_links()]
        ref_addrs = [reference_address(m) for m in ip.get_addr()]
    if (links, addrs) == (_rtnl.dump_links(), _rtnl.dump_addresses()):
        break
    time.sleep(0.25)
print(json.dumps({"links": links, "ref_links": ref_links, "addrs": addrs, "ref_addrs": ref_addrs}))
""".replace("__MU__", MU)


def read_both(host):
    out = host.run([sys.executable, "-c", COMPARE, COLLECTIONS]).stdout
    return json.loads(out)


def assert_same_links(seen):
    """Field by field, so that a failure names the link and the field."""
    assert [rec["name"] for rec in seen["links"]] == [rec["name"] for rec in seen["ref_links"]]
    for ours, theirs in zip(seen["links"], seen["ref_links"]):
        differ = {key: (ours[key], theirs[key]) for key in ours if ours[key] != theirs.get(key)}
        assert not differ, "%s: %s" % (ours["name"], differ)
    assert seen["links"] == seen["ref_links"]


def test_links_and_addresses_read_as_pyroute2_reads_them(host):
    holder = None
    try:
        host.run(["ip", "link", "add", "br0", "type", "bridge", "stp_state", "1", "forward_delay", "400", "priority", "4096"])
        host.run(["ip", "link", "set", "br0", "up"])
        host.run(["ip", "addr", "add", "198.19.210.1/24", "dev", "br0"])
        host.run(["ip", "addr", "add", "fd00:198:19::1/64", "dev", "br0"])
        host.run(["ip", "link", "set", "eth1", "master", "br0"])
        host.run(["ip", "tuntap", "add", "dev", "vnet0", "mode", "tap", "user", "nobody", "multi_queue"])
        host.run(["ip", "tuntap", "add", "dev", "vnet1", "mode", "tap", "vnet_hdr"])
        host.run(["ip", "tuntap", "add", "dev", "tun7", "mode", "tun"])
        host.run(["ip", "link", "set", "vnet1", "master", "br0", "mtu", "9000", "group", "5", "up"])
        host.run(["ip", "link", "add", "vetha", "type", "veth", "peer", "name", "vethb"])
        host.run(["ip", "link", "set", "vethb", "master", "br0", "up"])
        holder = Holder(host, "vnet1", guest="web01")
        seen = read_both(host)
    finally:
        if holder is not None:
            holder.stop()
    assert_same_links(seen)
    assert seen["addrs"] == seen["ref_addrs"]
    by_name = {rec["name"]: rec for rec in seen["links"]}
    # The cases the planners depend on, spelled out.
    assert by_name["br0"]["br"]["stp_state"] == 1
    assert by_name["br0"]["br"]["priority"] == 4096
    assert by_name["vnet0"]["tun"]["multi_queue"] is True
    assert by_name["vnet0"]["tun"]["owner"] == 65534
    assert by_name["vnet1"]["master"] == by_name["br0"]["index"]
    assert by_name["vnet1"]["brport"] is not None
    assert (by_name["vnet1"]["tun"]["vnet_hdr"], by_name["vnet0"]["tun"]["vnet_hdr"]) == (True, False)
    assert (by_name["vnet1"]["mtu"], by_name["vnet1"]["group"]) == (9000, 5)
    assert by_name["tun7"]["tun"]["type"] == 1
    assert by_name["tun7"]["mac"] is None
    assert {("br0", "198.19.210.1", 24), ("br0", "fd00:198:19::1", 64)} <= {
        (next(rec["name"] for rec in seen["links"] if rec["index"] == addr["index"]), addr["address"], addr["prefixlen"]) for addr in seen["addrs"]
    }


def test_a_dump_larger_than_one_datagram(host):
    make_bridge(host, "br0")
    batch = "".join("tuntap add dev t%d mode tap\nlink set t%d master br0\n" % (i, i) for i in range(400))
    host.run(["ip", "-batch", "-"], input=batch)
    seen = read_both(host)
    assert len(seen["links"]) > 400
    assert_same_links(seen)


WITHOUT_PYROUTE2 = """
import json, sys
sys.path.insert(0, sys.argv[1])
sys.modules["pyroute2"] = None  # as on a host without python3-pyroute2: any import of it fails
from __MU__ import _bridge_runtime, _errors, _pyroute2_dep, _tap
name = sys.argv[3]
if sys.argv[2] == "tap":
    params = {"name": None, "taps": [{"name": name, "bridge": "br0"}], "state": "present", "bridge": None, "owner": None,
              "group": None, "multi_queue": None, "vnet_hdr": None, "mac": None, "mtu": None, "up": None}
    task = lambda: _tap.run(params, False, _pyroute2_dep.iproute)
else:
    params = {"name": name, "state": "present", "ports": [], "ports_exclusive": False, "stp": None, "forward_delay": None,
              "hello_time": None, "max_age": None, "ageing_time": None, "priority": None, "vlan_filtering": None,
              "mtu": None, "mac": "inherit", "migrate_addresses": True, "up": True, "force": False}
    task = lambda: _bridge_runtime.manage_bridge(params)
try:
    result = task()
except _errors.ModuleError as exc:
    result = {"error": exc.msg}
imported = sorted(m for m in sys.modules if m.startswith("pyroute2") and sys.modules[m] is not None)
print(json.dumps({"changed": result.get("changed"), "error": result.get("error"), "imported": imported}))
""".replace("__MU__", MU)


def assert_needs_pyroute2_only_to_change(host, module, present, absent):
    """A no-op on ``present`` imports no pyroute2; creating ``absent`` fails saying what to install, creating nothing."""
    nothing_to_do = json.loads(host.run([sys.executable, "-c", WITHOUT_PYROUTE2, COLLECTIONS, module, present]).stdout)
    assert nothing_to_do == {"changed": False, "error": None, "imported": []}
    needs_change = json.loads(host.run([sys.executable, "-c", WITHOUT_PYROUTE2, COLLECTIONS, module, absent]).stdout)
    assert needs_change["changed"] is None
    assert "python3-pyroute2" in needs_change["error"]
    assert absent not in host.run(["ip", "-br", "link"]).stdout


def test_tap_needs_pyroute2_only_to_change_something(host):
    make_bridge(host, "br0")
    host.run(["ip", "tuntap", "add", "dev", "vnet0", "mode", "tap", "vnet_hdr"])
    host.run(["ip", "link", "set", "vnet0", "master", "br0", "up"])
    assert_needs_pyroute2_only_to_change(host, "tap", "vnet0", "vnet1")


SNAPSHOTS = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
from dataclasses import asdict
from __MU__ import _kernel_snapshot
from pyroute2 import IPRoute

def plain(snapshot):
    return {"links": [asdict(x) for x in snapshot.links.values()], "addresses": [asdict(x) for x in snapshot.addresses],
            "routes": [asdict(x) for x in snapshot.routes]}

# Lifetimes count down each second: take the round in which ours read the same before and after pyroute2's.
for _round in range(20):
    ours = plain(_kernel_snapshot.read_snapshot())
    with IPRoute() as ip:
        theirs = plain(_kernel_snapshot.read_snapshot(ip))
    if ours == plain(_kernel_snapshot.read_snapshot()):
        break
    time.sleep(0.3)
print(json.dumps({"ours": ours, "theirs": theirs}))
""".replace("__MU__", MU)


def test_the_bridge_planners_snapshot_reads_as_pyroute2_reads_it(host):
    """Links, addresses and routes of every table, as the bridge module and the guard read them."""
    steps = [
        [
            "ip",
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "stp_state",
            "1",
            "forward_delay",
            "400",
            "hello_time",
            "300",
            "max_age",
            "1000",
            "ageing_time",
            "6000",
            "priority",
            "4096",
        ],
        ["ip", "link", "set", "eth1", "master", "br0"],
        ["ip", "link", "set", "br0", "up"],
        ["ip", "link", "add", "vetha", "mtu", "9000", "type", "veth", "peer", "name", "vethb"],
        ["ip", "link", "set", "vetha", "up"],
        ["ip", "link", "set", "vethb", "up"],
        ["ip", "addr", "add", "198.19.220.1/24", "dev", "br0", "label", "br0:lan"],
        ["ip", "addr", "add", "198.19.221.1/24", "dev", "br0", "valid_lft", "900", "preferred_lft", "600"],
        ["ip", "addr", "add", "198.19.222.1", "peer", "198.19.222.2/32", "dev", "vetha"],
        ["ip", "addr", "add", "198.19.223.1/24", "broadcast", "198.19.223.255", "dev", "vetha", "noprefixroute"],
        ["ip", "-6", "addr", "add", "fd00:198:19:1::1/64", "dev", "br0", "nodad"],
        ["ip", "route", "add", "198.19.230.0/24", "via", "198.19.220.254", "metric", "50", "mtu", "lock", "1400", "advmss", "1360", "congctl", "cubic"],
        [
            "ip",
            "route",
            "add",
            "198.19.231.0/24",
            "nexthop",
            "via",
            "198.19.220.253",
            "dev",
            "br0",
            "weight",
            "2",
            "nexthop",
            "via",
            "198.19.223.254",
            "dev",
            "vetha",
            "onlink",
        ],
        ["ip", "route", "add", "198.19.232.0/24", "dev", "vetha", "table", "100", "src", "198.19.223.1", "realm", "7"],
        ["ip", "route", "add", "blackhole", "198.19.233.0/24", "proto", "static"],
        ["ip", "route", "add", "198.19.234.0/24", "via", "198.19.220.252", "tos", "0x10"],
        ["ip", "-6", "route", "add", "fd00:198:19:2::/64", "via", "fd00:198:19:1::fe", "metric", "300", "pref", "high"],
        ["ip", "-6", "route", "add", "fd00:198:19:3::/64", "dev", "br0", "expires", "600"],
    ]
    for argv in steps:
        host.run(argv)
    seen = json.loads(host.run([sys.executable, "-c", SNAPSHOTS, COLLECTIONS]).stdout)
    for part in ("links", "addresses", "routes"):
        ours, theirs = seen["ours"][part], seen["theirs"][part]
        assert len(ours) == len(theirs), part
        for a, b in zip(ours, theirs):
            assert a == b, "%s differ:\n ours   %s\n theirs %s" % (part, a, b)
    routes = {(r["dst"], r["table"]): r for r in seen["ours"]["routes"]}
    assert routes[("198.19.230.0", 254)]["metrics"] == [["RTAX_LOCK", 4], ["RTAX_MTU", 1400], ["RTAX_ADVMSS", 1360], ["RTAX_CC_ALGO", "cubic"]]
    assert [hop["dev"] for hop in routes[("198.19.231.0", 254)]["multipath"]] == ["br0", "vetha"]
    assert routes[("198.19.232.0", 100)]["flow"] == 7
    assert routes[("fd00:198:19:3::", 254)]["unsupported"] == ["RTA_EXPIRES"]
    addresses = {a["address"]: a for a in seen["ours"]["addresses"]}
    assert addresses["198.19.221.1"]["valid"] is not None
    assert addresses["198.19.220.1"]["label"] == "br0:lan"
    bridge = next(link for link in seen["ours"]["links"] if link["name"] == "br0")
    assert bridge["bridge"]["priority"] == 4096
    assert (bridge["bridge"]["stp"], bridge["bridge"]["hello_time"], bridge["bridge"]["ageing_time"]) == (1, 300, 6000)


def test_bridge_needs_pyroute2_only_to_change_something(host):
    make_bridge(host, "br0")
    assert_needs_pyroute2_only_to_change(host, "bridge", "br0", "br1")
