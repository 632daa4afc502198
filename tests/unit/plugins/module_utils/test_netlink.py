"""The bridge layers (_kernel_snapshot, _bridge_plan, _kernel_apply, _ssh_connection): checks, reading, units, the connection."""

from __future__ import annotations

import os
from socket import AF_INET, AF_INET6

import pytest

from ansible_collections.kvmhost.bridging.plugins.module_utils import _bridge_plan as bp
from ansible_collections.kvmhost.bridging.plugins.module_utils import _kernel_apply as ka
from ansible_collections.kvmhost.bridging.plugins.module_utils import _kernel_snapshot as ks
from ansible_collections.kvmhost.bridging.plugins.module_utils import _ssh_connection as sshc
from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import ModuleError


class Msg(dict):
    """A stand-in for a pyroute2 message: fields by key, attributes through get_attr()."""

    def __init__(self, fields=None, attrs=None):
        super().__init__(fields or {})
        self.attrs = dict(attrs or {})

    def get_attr(self, name):
        return self.attrs.get(name)


# -- names and MACs: test_names.py (the one validator, _names) ----------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("198.18.0.2", "198.18.0.2"),
        ("::ffff:198.18.0.2", "198.18.0.2"),
        ("2001:DB8:0::2", "2001:db8::2"),
        ("fe80::1%eth0", "fe80::1"),
        ("[2001:db8::2]", "2001:db8::2"),
        ("not an address", None),
    ],
)
def test_normalize_ip(text, expected):
    assert ks.normalize_ip(text) == expected


# -- classification -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("link", "cls"),
    [
        (ks.Link(1, "lo", loopback=True), "loopback"),
        (ks.Link(2, "eth0"), "physical"),
        (ks.Link(3, "vnet0", kind="tun"), "tap"),
        (ks.Link(4, "veth0", kind="veth"), "veth"),
        (ks.Link(5, "br0", kind="bridge"), "bridge"),
        (ks.Link(6, "bond0", kind="bond"), "bond"),
    ],
)
def test_link_class(link, cls):
    assert ks.link_class(link) == cls


def test_guest_ports_are_taps_only():
    assert ks.is_guest_port(ks.Link(3, "vnet0", kind="tun"))
    assert not ks.is_guest_port(ks.Link(3, "vnet0", kind="veth"))
    assert not ks.is_guest_port(ks.Link(2, "eth0"))


def test_stacked_on_follows_lower_devices():
    snap = ks.Snapshot(
        [
            ks.Link(2, "br0", kind="bridge"),
            ks.Link(3, "mv0", kind="macvlan", lower="br0"),
            ks.Link(4, "mv0.5", kind="vlan", lower="mv0"),
            ks.Link(5, "eth1.5", kind="vlan", lower="eth1"),
            ks.Link(6, "eth1"),
            ks.Link(7, "va", kind="veth", lower="br0"),  # a veth's IFLA_LINK is its peer, not a lower device
            ks.Link(8, "loop1", kind="vlan", lower="loop2"),
            ks.Link(9, "loop2", kind="vlan", lower="loop1"),
        ]
    )
    assert ks.stacked_on(snap, snap.link("mv0"), "br0")
    assert ks.stacked_on(snap, snap.link("mv0.5"), "br0")
    assert not ks.stacked_on(snap, snap.link("eth1.5"), "br0")
    assert not ks.stacked_on(snap, snap.link("va"), "br0")
    assert not ks.stacked_on(snap, snap.link("loop1"), "br0")  # a cycle ends the walk


@pytest.mark.parametrize(
    ("address", "movable"),
    [
        (ks.Address("eth0", AF_INET, "198.18.0.2", 24, local="198.18.0.2"), True),
        (ks.Address("eth0", AF_INET, "169.254.1.1", 16, local="169.254.1.1", scope=253), True),
        (ks.Address("eth0", AF_INET6, "2001:db8::2", 64), True),
        (ks.Address("eth0", AF_INET6, "2001:db8::2", 64, flags=ks.IFA_F_NODAD), True),
        (ks.Address("eth0", AF_INET6, "fe80::1", 64, scope=253), False),
        (ks.Address("eth0", AF_INET6, "2001:db8::99", 64, flags=ks.IFA_F_TEMPORARY), False),
        (ks.Address("eth0", AF_INET6, "2001:db8::98", 64, flags=ks.IFA_F_DADFAILED), False),
        (ks.Address("eth0", AF_INET6, "2001:db8::97", 64, proto=2), False),  # SLAAC (IFA_PROTO kernel_ra)
        (ks.Address("eth0", 17, "x", 0), False),
    ],
)
def test_migratable_addresses(address, movable):
    assert ks.is_migratable_address(address) is movable


@pytest.mark.parametrize(("proto", "movable"), [(2, False), (9, True), (1, False), (3, True), (4, True), (16, True), (0, True)])
def test_movable_routes(proto, movable):
    assert ks.is_movable_route(ks.Route(AF_INET, proto=proto, dev="eth0")) is movable


EXPIRES = ("RTA_EXPIRES",)
NOPREFIX = ks.IFA_F_NOPREFIXROUTE
PORT_ADDRESSES = [
    ks.Address("eth0", AF_INET, "198.19.0.114", 24, local="198.19.0.114", flags=NOPREFIX, valid=3600, preferred=3600),
    ks.Address("eth0", AF_INET, "198.18.5.2", 24, local="198.18.5.2", flags=0x80),
    ks.Address("eth0", AF_INET, "198.18.6.2", 24, local="198.18.6.2", flags=0x80, rt_priority=50),
    ks.Address("eth0", AF_INET6, "2001:db8:1::2", 64, flags=0x80),
    ks.Address("eth0", AF_INET6, "2001:db8:2::2", 64, flags=0x80 | NOPREFIX),
]


@pytest.mark.parametrize(
    ("route", "movable"),
    [
        # The kernel's own prefix route of an address: the kernel makes it again on the bridge.
        (ks.Route(AF_INET, dst="198.18.5.0", dst_len=24, proto=2, scope=253, dev="eth0", prefsrc="198.18.5.2"), False),
        (ks.Route(AF_INET, dst="198.18.6.0", dst_len=24, proto=2, scope=253, dev="eth0", priority=50), False),
        (ks.Route(AF_INET6, dst="2001:db8:1::", dst_len=64, proto=2, dev="eth0", priority=256), False),
        (ks.Route(AF_INET6, dst="fe80::", dst_len=64, proto=2, dev="eth0", priority=256), False),
        # NetworkManager / networkd: the address has noprefixroute, its prefix route is explicit.
        (ks.Route(AF_INET, dst="198.19.0.0", dst_len=24, proto=2, scope=253, dev="eth0", prefsrc="198.19.0.114", priority=100), True),
        (ks.Route(AF_INET6, dst="2001:db8:2::", dst_len=64, proto=2, dev="eth0", priority=100), True),
        # proto kernel with another metric than the address's prefix route: explicit.
        (ks.Route(AF_INET, dst="198.18.5.0", dst_len=24, proto=2, scope=253, dev="eth0", priority=100), True),
        (ks.Route(AF_INET6, dst="2001:db8:1::", dst_len=64, proto=2, dev="eth0", priority=100), True),
        # Router advertisements: the kernel's routes expire; NetworkManager's (proto ra, no lifetime) move.
        (ks.Route(AF_INET6, proto=9, dev="eth0", gateway="fe80::1", priority=1024, unsupported=EXPIRES), False),
        (ks.Route(AF_INET6, dst="2001:db8:3::", dst_len=64, proto=2, dev="eth0", priority=256, unsupported=EXPIRES), False),
        (ks.Route(AF_INET6, proto=9, dev="eth0", gateway="fe80::1", priority=100), True),
        # The local table and redirects stay.
        (ks.Route(AF_INET, table=255, type=2, dst="198.18.5.2", dst_len=32, proto=2, scope=254, dev="eth0"), False),
        (ks.Route(AF_INET6, table=255, dst="ff00::", dst_len=8, proto=2, type=5, dev="eth0", priority=256), False),
        (ks.Route(AF_INET, dst="198.18.9.9", dst_len=32, proto=1, dev="eth0", gateway="198.18.5.1"), False),
        # proto kernel in another table: not a prefix route of an address.
        (ks.Route(AF_INET, table=100, dst="198.18.5.0", dst_len=24, proto=2, scope=253, dev="eth0"), True),
    ],
)
def test_movable_routes_tell_the_kernels_prefix_routes_from_explicit_ones(route, movable):
    assert ks.is_movable_route(route, PORT_ADDRESSES) is movable
    if route.proto == 2:
        assert ks.is_movable_route(route) is False  # without the addresses, proto kernel stays


# -- records ---------------------------------------------------------------------------
def test_address_text():
    a = ks.Address("eth0", AF_INET, "198.18.0.2", 24, local="198.18.0.2")
    assert (a.ip, a.cidr, a.key) == ("198.18.0.2", "198.18.0.2/24", (AF_INET, "198.18.0.2"))
    p2p = ks.Address("ppp0", AF_INET, "198.18.9.1", 32, local="198.18.9.2")
    assert p2p.ip == "198.18.9.2" and p2p.cidr == "198.18.9.2 peer 198.18.9.1/32"


def test_route_describe_and_move():
    route = ks.Route(
        AF_INET, table=100, dst="198.18.99.0", dst_len=24, proto=4, dev="eth0", gateway="198.18.0.1", priority=5, prefsrc="198.18.0.2", flags=ks.RTNH_F_ONLINK
    )
    assert route.describe() == "198.18.99.0/24 via 198.18.0.1 dev eth0 table 100 proto static src 198.18.0.2 metric 5 onlink"
    moved = route.on("eth0", "breth0")
    assert moved.dev == "breth0" and moved.key == route.key
    assert ks.Route(AF_INET6, type=7, dst="2001:db8::", dst_len=32, proto=3, dev="lo").describe().startswith("unreachable 2001:db8::/32")
    multi = ks.Route(AF_INET, dst="198.18.77.0", dst_len=24, multipath=(ks.Nexthop("eth0", "198.18.0.1"), ks.Nexthop("eth1", "198.18.1.1", hops=1)))
    assert multi.uses("eth1") and not multi.uses("eth2")
    assert multi.on("eth1", "br1").devices == ("eth0", "br1")
    assert "nexthop via 198.18.1.1 dev eth1 weight 2" in multi.describe()


def test_route_keys():
    v4 = ks.Route(AF_INET, dev="eth0", gateway="198.18.0.1")
    assert v4.key == ks.Route(AF_INET, dev="breth0", gateway="198.18.0.9", priority=0).key
    assert v4.key != ks.Route(AF_INET, dev="eth0", priority=10).key
    v6 = ks.Route(AF_INET6, dev="eth0", gateway="2001:db8::1")
    assert v6.key == ks.Route(AF_INET6, dev="breth0", priority=1024).key


# -- reading dump messages ---------------------------------------------------------------
def test_links_from_messages():
    bridge_data = Msg(attrs={"IFLA_BR_FORWARD_DELAY": 0, "IFLA_BR_STP_STATE": 0, "IFLA_BR_PRIORITY": 4096})
    messages = [
        Msg({"index": 1, "flags": ks.IFF_UP | ks.IFF_LOOPBACK}, {"IFLA_IFNAME": "lo", "IFLA_ADDRESS": "00:00:00:00:00:00", "IFLA_MTU": 65536}),
        Msg(
            {"index": 2, "flags": ks.IFF_UP},
            {
                "IFLA_IFNAME": "eth0",
                "IFLA_ADDRESS": "52:54:00:AA:00:01",
                "IFLA_MTU": 1500,
                "IFLA_MASTER": 5,
                "IFLA_LINK": 9,
                "IFLA_LINK_NETNSID": 0,
                "IFLA_LINKINFO": Msg(attrs={"IFLA_INFO_KIND": "veth"}),
            },
        ),
        Msg({"index": 3, "flags": 0}, {"IFLA_IFNAME": "mv0", "IFLA_LINK": 5, "IFLA_LINKINFO": Msg(attrs={"IFLA_INFO_KIND": "macvlan"})}),
        Msg({"index": 4, "flags": 0}, {"IFLA_IFNAME": "eth1", "IFLA_LINK": 4}),
        Msg(
            {"index": 5, "flags": ks.IFF_UP},
            {
                "IFLA_IFNAME": "br0",
                "IFLA_ADDRESS": "52:54:00:aa:00:01",
                "IFLA_MTU": 1500,
                "IFLA_LINKINFO": Msg(attrs={"IFLA_INFO_KIND": "bridge", "IFLA_INFO_DATA": bridge_data}),
            },
        ),
    ]
    links = {link.name: link for link in ks.links_from_messages(messages)}
    assert links["lo"].loopback and links["lo"].up and ks.link_class(links["lo"]) == "loopback"
    eth0 = links["eth0"]
    assert (eth0.kind, eth0.master, eth0.lower, eth0.mac, eth0.up) == ("veth", "br0", None, "52:54:00:aa:00:01", True)
    assert links["mv0"].lower == "br0" and not links["mv0"].up
    assert links["eth1"].lower is None  # IFLA_LINK pointing at itself, as physical NICs report it
    assert links["br0"].bridge == {"forward_delay": 0, "stp": 0, "priority": 4096}


def test_addresses_from_messages():
    names = {2: "eth0"}
    forever = {"ifa_valid": ks.INFINITY_LIFETIME, "ifa_preferred": ks.INFINITY_LIFETIME}
    messages = [
        Msg(
            {"index": 2, "family": AF_INET, "prefixlen": 24, "scope": 0, "flags": 0x80},
            {
                "IFA_ADDRESS": "198.18.0.2",
                "IFA_LOCAL": "198.18.0.2",
                "IFA_LABEL": "eth0",
                "IFA_BROADCAST": "198.18.0.255",
                "IFA_FLAGS": 0x80,
                "IFA_CACHEINFO": forever,
            },
        ),
        Msg(
            {"index": 2, "family": AF_INET, "prefixlen": 24, "scope": 0, "flags": 0x00},
            {
                "IFA_ADDRESS": "198.18.0.7",
                "IFA_LOCAL": "198.18.0.7",
                "IFA_CACHEINFO": {"ifa_valid": 600, "ifa_preferred": 300},
            },
        ),
        Msg(
            {"index": 2, "family": AF_INET6, "prefixlen": 64, "scope": 0, "flags": 0x02},
            {
                "IFA_ADDRESS": "2001:db8::2",
                "IFA_FLAGS": 0x282,
                "IFA_PROTO": 4,
                "IFA_CACHEINFO": forever,
            },
        ),
    ]
    static, dynamic, v6 = ks.addresses_from_messages(messages, names)
    assert (static.dev, static.cidr, static.label, static.broadcast, static.valid, static.preferred) == (
        "eth0",
        "198.18.0.2/24",
        "eth0",
        "198.18.0.255",
        None,
        None,
    )
    assert (dynamic.valid, dynamic.preferred, dynamic.flags) == (600, 300, 0)
    assert (v6.flags, v6.proto, v6.local, v6.cidr) == (0x282, 4, None, "2001:db8::2/64")


def test_routes_from_messages():
    names = {2: "eth0", 3: "eth1"}
    nh1 = Msg({"oif": 2, "hops": 0, "flags": 16}, {"RTA_GATEWAY": "198.18.0.1"})  # 16: RTNH_F_LINKDOWN, kernel state
    nh2 = Msg({"oif": 3, "hops": 2, "flags": 4}, {"RTA_GATEWAY": "198.18.1.1"})
    messages = [
        Msg(
            {"family": AF_INET, "table": 254, "dst_len": 0, "proto": 3, "scope": 0, "type": 1, "flags": 0},
            {"RTA_TABLE": 254, "RTA_GATEWAY": "198.18.0.1", "RTA_OIF": 2},
        ),
        Msg(
            {"family": AF_INET, "table": 252, "dst_len": 24, "proto": 4, "scope": 0, "type": 1, "flags": 0},
            {"RTA_TABLE": 1000, "RTA_DST": "198.18.77.0", "RTA_PRIORITY": 7, "RTA_MULTIPATH": [nh1, nh2], "RTA_METRICS": Msg({"attrs": [("RTAX_MTU", 1400)]})},
        ),
        Msg(
            {"family": AF_INET6, "table": 254, "dst_len": 0, "proto": 3, "scope": 0, "type": 1, "flags": 0},
            {"RTA_TABLE": 254, "RTA_GATEWAY": "2001:db8::1", "RTA_OIF": 2, "RTA_PRIORITY": 1024, "RTA_PREF": 1, "RTA_CACHEINFO": {"rta_expires": 0}},
        ),
        Msg(
            {"family": AF_INET6, "table": 254, "dst_len": 64, "proto": 3, "scope": 0, "type": 1, "flags": 0},
            {"RTA_DST": "2001:db8:9::", "RTA_OIF": 2, "RTA_CACHEINFO": {"rta_expires": 5000}},
        ),
        Msg(
            {"family": AF_INET, "table": 254, "dst_len": 24, "proto": 4, "scope": 0, "type": 1, "flags": 0},
            {"RTA_DST": "198.18.50.0", "RTA_OIF": 2, "RTA_ENCAP": Msg()},
        ),
    ]
    default, multi, v6, expiring, encap = ks.routes_from_messages(messages, names)
    assert (default.dev, default.gateway, default.priority, default.table, default.proto) == ("eth0", "198.18.0.1", None, 254, 3)
    assert multi.table == 1000 and multi.dev is None and multi.metrics == (("RTAX_MTU", 1400),)
    assert multi.multipath == (ks.Nexthop("eth0", "198.18.0.1", 0, 0), ks.Nexthop("eth1", "198.18.1.1", 2, 4))
    assert (v6.pref, v6.priority, v6.unsupported) == (1, 1024, ())
    assert expiring.unsupported == ("RTA_EXPIRES",)
    assert encap.unsupported == ("RTA_ENCAP",)


class DumpIPR:
    """Answers the three dumps of read_snapshot()."""

    def __init__(self, links, addrs, routes):
        self.calls = []
        self._links, self._addrs, self._routes = links, addrs, routes

    def get_links(self):
        self.calls.append("links")
        return self._links

    def get_addr(self):
        self.calls.append("addr")
        return self._addrs

    def get_routes(self, family):
        self.calls.append("routes%d" % family)
        return [r for r in self._routes if r["family"] == family]


def test_read_snapshot_dumps_each_table_once():
    ipr = DumpIPR(
        [Msg({"index": 2, "flags": 1}, {"IFLA_IFNAME": "eth0", "IFLA_ADDRESS": "52:54:00:00:00:01", "IFLA_MTU": 1500})],
        [Msg({"index": 2, "family": AF_INET, "prefixlen": 24}, {"IFA_ADDRESS": "198.18.0.2", "IFA_LOCAL": "198.18.0.2"})],
        [
            Msg({"family": AF_INET, "table": 254, "proto": 3, "type": 1}, {"RTA_GATEWAY": "198.18.0.1", "RTA_OIF": 2}),
            Msg({"family": AF_INET6, "table": 254, "proto": 3, "type": 1}, {"RTA_GATEWAY": "2001:db8::1", "RTA_OIF": 2}),
        ],
    )
    snap = ks.read_snapshot(ipr)
    assert ipr.calls == ["links", "addr", "routes%d" % AF_INET, "routes%d" % AF_INET6]
    assert [a.cidr for a in snap.addresses_on("eth0")] == ["198.18.0.2/24"]
    assert [r.gateway for r in snap.routes_using("eth0")] == ["198.18.0.1", "2001:db8::1"]


# -- bridge options ------------------------------------------------------------------------
def test_option_units():
    assert ks.option_to_kernel("forward_delay", 0) == 0
    assert ks.option_to_kernel("forward_delay", 15) == 1500
    assert ks.option_to_kernel("hello_time", 0.5) == 50
    assert ks.option_to_kernel("ageing_time", 300.0) == 30000
    assert ks.option_to_kernel("stp", True) == 1
    assert ks.option_to_kernel("priority", 4096) == 4096
    assert ks.option_from_kernel("forward_delay", 1500) == 15
    assert ks.option_from_kernel("hello_time", 50) == 0.5
    assert ks.option_from_kernel("stp", 2) is True  # user-space STP counts as on
    assert ks.option_matches("forward_delay", 1499, 1500)  # jiffies rounding
    assert not ks.option_matches("forward_delay", 1400, 1500)
    assert ks.option_matches("stp", 2, 1)
    assert not ks.option_matches("priority", None, 1)


def test_linkinfo_bridge():
    assert ks.linkinfo_bridge({}) == {"attrs": [["IFLA_INFO_KIND", "bridge"]]}
    assert ks.linkinfo_bridge({"forward_delay": 0, "stp": 1}) == {
        "attrs": [["IFLA_INFO_KIND", "bridge"], ["IFLA_INFO_DATA", {"attrs": [["IFLA_BR_FORWARD_DELAY", 0], ["IFLA_BR_STP_STATE", 1]]}]]
    }


@pytest.mark.parametrize(
    ("options", "stp", "problem"),
    [
        ({"hello_time": 0.5}, None, "hello_time 0.5 is out of range"),
        ({"hello_time": 11}, None, "hello_time 11 is out of range"),
        ({"max_age": 5}, None, "max_age 5 is out of range"),
        ({"forward_delay": -1}, None, "must not be negative"),
        ({"ageing_time": -1}, None, "must not be negative"),
        ({"ageing_time": 2000000}, None, "at most"),
        ({"priority": 70000}, None, "priority 70000"),
        ({"stp": True, "forward_delay": 0}, None, "does not work with STP on"),
        ({"forward_delay": 1}, True, "does not work with STP on"),
        ({"stp": True, "forward_delay": 31}, None, "does not work with STP on"),
    ],
)
def test_option_problems(options, stp, problem):
    problems = bp.option_problems(options, stp=stp)
    assert any(problem in p for p in problems), problems


@pytest.mark.parametrize("options", [{"stp": False, "forward_delay": 0}, {"stp": True, "forward_delay": 2}, {"forward_delay": 0}, {"ageing_time": 0}])
def test_options_without_problems(options):
    assert bp.option_problems(options) == []


# -- the connection to keep -------------------------------------------------------------------
def _proc(tmp_path, pid, ppid, environ):
    entry = tmp_path / str(pid)
    entry.mkdir()
    (entry / "stat").write_text("%d (sh (x) y) S %d 1 1 0 -1" % (pid, ppid))
    (entry / "environ").write_bytes(b"\0".join(b"%s=%s" % (k.encode(), v.encode()) for k, v in environ.items()) + b"\0")


def test_connection_addresses_from_environment_and_ancestors(tmp_path):
    _proc(tmp_path, 300, 200, {"PATH": "/bin"})  # the module, under sudo: no SSH_CONNECTION
    _proc(tmp_path, 200, 100, {"SSH_CONNECTION": "198.18.0.1 50000 198.18.0.2 22"})
    _proc(tmp_path, 100, 1, {"SSH_CONNECTION": "2001:db8::1 50001 ::ffff:198.18.0.9 22"})
    found = sshc.connection_addresses(environ={}, proc=str(tmp_path), pid=300)
    assert found == ["198.18.0.2", "198.18.0.9"]
    assert sshc.connection_addresses(environ={"SSH_CONNECTION": "fe80::1%eth0 1 fe80::2%eth0 22"}, proc=str(tmp_path / "none"), pid=5) == ["fe80::2"]
    assert sshc.connection_addresses(environ={"SSH_CONNECTION": "garbage"}, proc=str(tmp_path / "none"), pid=5) == []


def test_connection_addresses_of_this_process_do_not_fail():
    assert isinstance(sshc.connection_addresses(), list)
    assert os.getpid() > 1


# -- the testing aid ---------------------------------------------------------------------------
def test_fail_after_step_from_env():
    assert ka.fail_after_step_from_env({}) is None
    assert ka.fail_after_step_from_env({"KVMB_TEST_FAIL_AFTER_STEP": ""}) is None
    assert ka.fail_after_step_from_env({"KVMB_TEST_FAIL_AFTER_STEP": "3"}) == 3
    for bad in ("0", "-1", "three", "1.5"):
        with pytest.raises(ModuleError) as exc:
            ka.fail_after_step_from_env({"KVMB_TEST_FAIL_AFTER_STEP": bad})
        assert "testing aid" in exc.value.msg
