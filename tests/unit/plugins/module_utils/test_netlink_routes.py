"""Route and address shapes of real hosts through the bridge planner: each moves, in an order the kernel accepts.

Each shape is a port (eth1) as NetworkManager, systemd-networkd, dhclient and
initscripts, or a hand-written ``ip`` leave it. The planner must move every
route after the routes it needs (the kernel refuses a gateway route whose
gateway it cannot reach over the new device: ENETUNREACH), keep the routes'
and addresses' attributes, and plan nothing once the move is done.
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from socket import AF_INET, AF_INET6

import pytest

from ansible_collections.kvmhost.bridging.plugins.module_utils import _bridge_plan as bp
from ansible_collections.kvmhost.bridging.plugins.module_utils import _kernel_snapshot as ks

NOPREFIX = ks.IFA_F_NOPREFIXROUTE
MNGTMP = ks.IFA_F_MANAGETEMPADDR
PERMANENT = ks.IFA_F_PERMANENT
EXPIRES = ("RTA_EXPIRES",)
LINK_LOCAL = ks.Address("eth1", AF_INET6, "fe80::5054:ff:fe00:2", 64, scope=253, flags=PERMANENT)
LL_ROUTE = ks.Route(AF_INET6, dst="fe80::", dst_len=64, proto=2, dev="eth1", priority=256)


def v4(ip, prefix=24, **kw):
    return ks.Address("eth1", AF_INET, ip, prefix, local=ip, **kw)


def v6(ip, prefix=64, **kw):
    return ks.Address("eth1", AF_INET6, ip, prefix, **kw)


SHAPES = {
    # The reproduction: NetworkManager's DHCP address.
    "networkmanager ipv4 dhcp": (
        [v4("198.19.0.114", flags=NOPREFIX, valid=3600, preferred=3600)],
        [
            ks.Route(AF_INET, proto=16, dev="eth1", gateway="198.19.0.1", prefsrc="198.19.0.114", priority=100),
            ks.Route(AF_INET, dst="198.19.0.0", dst_len=24, proto=2, scope=253, dev="eth1", prefsrc="198.19.0.114", priority=100),
        ],
    ),
    "networkmanager ipv6 ra and dhcpv6": (
        [
            v6("2001:db8:19::8c0", 128, flags=NOPREFIX, valid=3600, preferred=1800),  # DHCPv6 IA_NA
            v6("2001:db8:19:0:5054:ff:fe00:2", flags=NOPREFIX | MNGTMP, valid=86400, preferred=14400),  # SLAAC, made by NM
            v6("2001:db8:19:0:1c2d:3e4f:5a6b:7c8d", flags=NOPREFIX | ks.IFA_F_TEMPORARY, valid=86000, preferred=14000),
            LINK_LOCAL,
        ],
        [
            ks.Route(AF_INET6, proto=9, dev="eth1", gateway="fe80::1", priority=100, pref=0),
            ks.Route(AF_INET6, dst="2001:db8:19::8c0", dst_len=128, proto=2, dev="eth1", priority=100),
            ks.Route(AF_INET6, dst="2001:db8:19::", dst_len=64, proto=9, dev="eth1", priority=100),
            ks.Route(AF_INET6, dst="2001:db8:77::", dst_len=64, proto=16, dev="eth1", gateway="2001:db8:19::fe", priority=100),
            LL_ROUTE,
        ],
    ),
    "networkd static": (
        [v4("198.19.0.114", flags=NOPREFIX | PERMANENT), v6("2001:db8:19::114", flags=NOPREFIX | PERMANENT), LINK_LOCAL],
        [
            ks.Route(AF_INET, proto=4, dev="eth1", gateway="198.19.0.1", prefsrc="198.19.0.114", priority=1024),
            ks.Route(AF_INET6, proto=4, dev="eth1", gateway="2001:db8:19::1", priority=1024),
            ks.Route(AF_INET, dst="198.19.0.0", dst_len=24, proto=4, scope=253, dev="eth1", prefsrc="198.19.0.114", priority=1024),
            ks.Route(AF_INET6, dst="2001:db8:19::", dst_len=64, proto=4, dev="eth1", priority=1024),
            LL_ROUTE,
        ],
    ),
    "dhclient initscripts": (
        [v4("198.19.0.114", valid=600, preferred=600, broadcast="198.19.0.255")],
        [
            ks.Route(AF_INET, proto=3, dev="eth1", gateway="198.19.0.1"),
            ks.Route(AF_INET, dst="198.19.0.0", dst_len=24, proto=2, scope=253, dev="eth1", prefsrc="198.19.0.114"),
        ],
    ),
    "hand-written ip: onlink gateway and multipath in another table": (
        [v4("198.19.0.114", 32, flags=PERMANENT)],
        [
            ks.Route(AF_INET, proto=3, dev="eth1", gateway="198.18.200.1", flags=ks.RTNH_F_ONLINK),
            ks.Route(AF_INET, table=100, dst="198.18.210.0", dst_len=24, proto=3,
                     multipath=(ks.Nexthop("eth1", "198.19.0.1"), ks.Nexthop("eth1", "198.19.0.2", hops=1))),
            ks.Route(AF_INET, table=100, dst="198.19.0.0", dst_len=24, proto=3, scope=253, dev="eth1", prefsrc="198.19.0.114"),
        ],
    ),
}  # fmt: skip


def snapshot(addresses, routes):
    links = [
        ks.Link(1, "lo", mac="00:00:00:00:00:00", mtu=65536, up=True, loopback=True),
        ks.Link(2, "eth0", mac="52:54:00:00:00:01", up=True),
        ks.Link(3, "eth1", mac="52:54:00:00:00:02", up=True),
    ]
    return ks.Snapshot(links, addresses, routes)


def spec():
    params = {"name": "breth0", "state": "present", "ports": ["eth1"], "ports_exclusive": False, "mac": "inherit",
              "migrate_addresses": True, "up": True, "force": False, "mtu": None}  # fmt: skip
    params.update(dict.fromkeys(ks.BRIDGE_OPTION_NAMES))
    return bp.BridgeSpec.from_params(params)


def reachable(snap, route):
    """True if every gateway of ``route`` is reachable as the kernel checks it: over an on-link route on its device."""
    hops = route.multipath or (ks.Nexthop(route.dev, route.gateway, flags=route.flags),)
    for hop in hops:
        if not hop.gateway or hop.flags & ks.RTNH_F_ONLINK:
            continue
        gateway = ipaddress.ip_address(hop.gateway)
        if gateway.is_link_local:
            continue
        if not any(
            r.dev == hop.dev and not r.gateway and not r.multipath and r.dst and r.table != ks.RT_TABLE_LOCAL
            and gateway in ipaddress.ip_network("%s/%d" % (r.dst, r.dst_len))
            for r in snap.routes
        ):  # fmt: skip
            return False
    return True


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_every_route_lands_after_what_it_needs(shape):
    before = snapshot(*SHAPES[shape])
    assert all(reachable(before, r) for r in before.routes), "the shape itself is one the kernel would not hold"
    plan = bp.plan_bridge(before, spec(), ())
    snap = before.copy()
    for step in plan.steps:
        snap = bp.simulate(snap, [step])
        if step.op == "replace_route":
            assert reachable(snap, step.args["route"]), "'%s' before the route to its gateway" % step.description


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_every_user_route_moves_with_its_attributes(shape):
    before = snapshot(*SHAPES[shape])
    plan = bp.plan_bridge(before, spec(), ())
    moved = {step.args["old"]: step.args["route"] for step in plan.steps if step.op == "replace_route"}
    for route in before.routes:
        if route == LL_ROUTE or (route.proto == 2 and shape == "dhclient initscripts"):
            assert route not in moved  # the kernel makes these on the bridge itself
            continue
        assert moved[route] == route.on("eth1", "breth0")
    after = bp.simulate(before, plan.steps)
    assert not [r.describe() for r in after.routes if r.uses("eth1") and ks.is_movable_route(r, after.addresses)]


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_addresses_keep_flags_and_lifetimes(shape):
    before = snapshot(*SHAPES[shape])
    plan = bp.plan_bridge(before, spec(), ())
    added = {step.args["address"].ip: step.args["address"] for step in plan.steps if step.op == "add_address"}
    for address in before.addresses:
        if not ks.is_migratable_address(address):
            assert address.ip not in added  # link-local and temporary addresses: the bridge makes its own
            continue
        new = added[address.ip]
        flags = address.flags & ks.IFA_SETTABLE_FLAGS | (ks.IFA_F_NODAD if address.family == AF_INET6 else 0)
        assert new == replace(address, dev="breth0", flags=flags)


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_second_run_plans_nothing(shape):
    before = snapshot(*SHAPES[shape])
    after = bp.simulate(before, bp.plan_bridge(before, spec(), ()).steps)
    assert bp.plan_bridge(after, spec(), ()).steps == []


def test_reproduction_moves_the_prefix_route_before_the_default_route():
    before = snapshot(*SHAPES["networkmanager ipv4 dhcp"])
    moves = [a for a in bp.plan_bridge(before, spec(), ()).actions if a.startswith("move route")]
    assert moves == [
        "move route '198.19.0.0/24 dev eth1 proto kernel scope link src 198.19.0.114 metric 100' to breth0",
        "move route 'default via 198.19.0.1 dev eth1 proto dhcp src 198.19.0.114 metric 100' to breth0",
    ]


def test_address_metric_is_kept():
    address = v4("198.19.0.114", rt_priority=300)
    prefix = ks.kernel_prefix_route(address)
    assert (prefix.dst, prefix.dst_len, prefix.priority, prefix.prefsrc) == ("198.19.0.0", 24, 300, "198.19.0.114")
    before = snapshot([address], [prefix])
    plan = bp.plan_bridge(before, spec(), ())
    assert [s.op for s in plan.steps if "route" in s.op] == []  # the kernel moves it with the address
    added = next(s.args["address"] for s in plan.steps if s.op == "add_address")
    assert added.rt_priority == 300


@pytest.mark.parametrize(
    ("route", "needs"),
    [
        (ks.Route(AF_INET, dst="198.19.0.0", dst_len=24, proto=4, dev="eth1"), False),
        (ks.Route(AF_INET, proto=4, dev="eth1", gateway="198.19.0.1"), True),
        (ks.Route(AF_INET, proto=4, dev="eth1", gateway="198.19.0.1", flags=ks.RTNH_F_ONLINK), False),
        (ks.Route(AF_INET, proto=4, multipath=(ks.Nexthop("eth1", "198.19.0.1", flags=ks.RTNH_F_ONLINK), ks.Nexthop("eth1", "198.19.0.2"))), True),
        (ks.Route(AF_INET6, type=6, dst="2001:db8:66::", dst_len=48, proto=4), False),
    ],
)
def test_route_needs_onlink(route, needs):
    assert bp.route_needs_onlink(route) is needs


def test_a_lease_moves_with_a_plain_warning():
    before = snapshot(*SHAPES["networkmanager ipv4 dhcp"])
    plan = bp.plan_bridge(before, spec(), ())
    assert len(plan.warnings) == 1
    warning = plan.warnings[0]
    assert warning.startswith("198.19.0.114/24 moves from eth1 to breth0 with its lifetime (3600 s left)")
    assert "nothing renews it on breth0 and it will expire" in warning
    after = bp.simulate(before, plan.steps)
    assert bp.expiring_addresses(after, "breth0") == [{"address": "198.19.0.114/24", "valid_lft": 3600, "preferred_lft": 3600}]
    assert bp.expiring_addresses(after, "eth1") == []


def test_static_addresses_move_without_a_warning():
    before = snapshot(*SHAPES["networkd static"])
    plan = bp.plan_bridge(before, spec(), ())
    assert plan.warnings == []
    assert bp.expiring_addresses(bp.simulate(before, plan.steps), "breth0") == []
