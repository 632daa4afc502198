# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Runtime links over netlink (pyroute2): snapshots, validation, bridge planning and applying.

The layers, each usable on its own:

- validation: names and MACs through _names (validate_ifname(), normalize_mac());
- reading: read_snapshot() dumps links, addresses and routes once (with
  _rtnl's standard-library reader, no pyroute2) into a Snapshot of plain
  records (Link, Address, Route) that name devices by name, never by index;
- classification: link_class(), is_guest_port(), is_migratable_address(),
  is_movable_route(), stacked_on();
- bridge planning, pure (no kernel, no root): BridgeSpec.from_params(),
  plan_bridge() returns a Plan, an ordered list of Steps, each with a
  description and the steps that undo it; simulate() applies a plan to a
  Snapshot in memory (check mode's "after", and the idempotence tests);
- applying: iproute_session() opens one pyroute2 IPRoute socket (the only
  use of pyroute2); apply_plan() runs the steps in that session and, on any
  error, undoes the steps already applied in reverse order before it raises
  ApplyError; manage_bridge() is the whole module flow.

Moving a NIC into a bridge without losing the SSH session that runs over it
(the order of plan_bridge):

1. create the bridge down, with the NIC's MAC (mac: inherit) and its options;
2. bring the bridge up;
3. add the NIC's addresses to the bridge, same prefix (IPv6 with nodad: the
   address is already ours on this link);
4. enslave the NIC (from now on frames arrive through the bridge, and the
   bridge answers ARP with the same MAC, so peers' ARP entries stay valid);
5. move the NIC's routes (default route too) to the bridge, one atomic
   RTM_NEWROUTE replace per route, keeping gateway, metric, scope, protocol,
   table, preferred source and metrics;
6. remove the addresses from the NIC, secondaries first. Only now, because
   removing the last IPv4 address of a device flushes every route through it.

PRIVATE: this module is internal to kvmhost.bridging; it is not part of the
public API and may change without notice.
"""

from __future__ import annotations

import copy
import errno
import ipaddress
import math
import os
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from socket import AF_INET, AF_INET6

from ansible_collections.kvmhost.bridging.plugins.module_utils import _dhcp_client
from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import ModuleError
from ansible_collections.kvmhost.bridging.plugins.module_utils._names import IFNAMSIZ, normalize_mac, validate_ifname
from ansible_collections.kvmhost.bridging.plugins.module_utils._pyroute2_dep import iproute, netlink_error
from ansible_collections.kvmhost.bridging.plugins.module_utils._rtnl import MessageSource

# --------------------------------------------------------------------------
# Kernel constants (linux/if.h, if_addr.h, rtnetlink.h, if_bridge.h)
# --------------------------------------------------------------------------
IFF_UP = 0x1
IFF_LOOPBACK = 0x8
USER_HZ = 100  # netlink carries bridge timers in clock_t, hundredths of a second

IFA_F_SECONDARY = 0x01  # IPv4; the same bit is IFA_F_TEMPORARY for IPv6
IFA_F_TEMPORARY = 0x01
IFA_F_NODAD = 0x02
IFA_F_DADFAILED = 0x08
IFA_F_HOMEADDRESS = 0x10
IFA_F_PERMANENT = 0x80
IFA_F_MANAGETEMPADDR = 0x100
IFA_F_NOPREFIXROUTE = 0x200
IFA_F_MCAUTOJOIN = 0x400
# Flags a user can set on an address; the others are the kernel's own state.
IFA_SETTABLE_FLAGS = IFA_F_NODAD | IFA_F_HOMEADDRESS | IFA_F_MANAGETEMPADDR | IFA_F_NOPREFIXROUTE | IFA_F_MCAUTOJOIN
INFINITY_LIFETIME = 0xFFFFFFFF
# IFA_PROTO values of addresses the kernel makes itself (loopback, SLAAC, link-local).
IFA_PROTO_KERNEL = (1, 2, 3)

RTPROT_REDIRECT = 1
RTPROT_KERNEL = 2
RTPROT_RA = 9
IP6_RT_PRIO_ADDRCONF = 256  # the metric of the kernel's IPv6 prefix routes
RTNH_F_ONLINK = 0x4
RT_TABLE_MAIN = 254
RT_TABLE_LOCAL = 255
# Route attributes this module cannot copy faithfully: such a route is not moved blindly.
UNSUPPORTED_ROUTE_ATTRS = ("RTA_ENCAP", "RTA_NH_ID", "RTA_VIA", "RTA_NEWDST", "RTA_EXPIRES")
# Route metrics (RTAX_*) that a route request through pyroute2 can carry.
SETTABLE_METRICS = (
    "RTAX_LOCK", "RTAX_MTU", "RTAX_WINDOW", "RTAX_RTT", "RTAX_RTTVAR", "RTAX_SSTHRESH", "RTAX_CWND", "RTAX_ADVMSS",
    "RTAX_REORDERING", "RTAX_HOPLIMIT", "RTAX_INITCWND", "RTAX_FEATURES", "RTAX_RTO_MIN", "RTAX_INITRWND",
    "RTAX_QUICKACK", "RTAX_CC_ALGO",
)  # fmt: skip

ROUTE_PROTOCOL_NAMES = {0: "unspec", 1: "redirect", 2: "kernel", 3: "boot", 4: "static", 9: "ra", 16: "dhcp"}
ROUTE_TYPE_NAMES = {1: "unicast", 2: "local", 3: "broadcast", 4: "anycast", 5: "multicast", 6: "blackhole", 7: "unreachable", 8: "prohibit"}
ROUTE_SCOPE_NAMES = {0: "global", 200: "site", 253: "link", 254: "host", 255: "nowhere"}
TABLE_NAMES = {RT_TABLE_MAIN: "main", RT_TABLE_LOCAL: "local", 253: "default"}

# --------------------------------------------------------------------------
# Bridge options: user name, netlink attribute, how the value is carried
# --------------------------------------------------------------------------
BRIDGE_OPTIONS = (
    ("stp", "IFLA_BR_STP_STATE", "bool"),
    ("forward_delay", "IFLA_BR_FORWARD_DELAY", "time"),
    ("hello_time", "IFLA_BR_HELLO_TIME", "time"),
    ("max_age", "IFLA_BR_MAX_AGE", "time"),
    ("ageing_time", "IFLA_BR_AGEING_TIME", "time"),
    ("priority", "IFLA_BR_PRIORITY", "int"),
    ("vlan_filtering", "IFLA_BR_VLAN_FILTERING", "bool"),
)
BRIDGE_OPTION_NAMES = tuple(name for name, _nla, _how in BRIDGE_OPTIONS)
_OPTION_NLA = {name: nla for name, nla, _how in BRIDGE_OPTIONS}
_OPTION_HOW = {name: how for name, _nla, how in BRIDGE_OPTIONS}
# What the kernel gives a new bridge, in netlink units.
BRIDGE_DEFAULTS = {
    "stp": 0,
    "forward_delay": 1500,
    "hello_time": 200,
    "max_age": 2000,
    "ageing_time": 30000,
    "priority": 32768,
    "vlan_filtering": 0,
}
# Ranges in seconds the kernel enforces (net/bridge/br_private_stp.h); the
# forward delay only while STP runs (and STP clamps it into range when it starts).
TIMER_RANGES = {"hello_time": (1, 10), "max_age": (6, 40), "forward_delay": (2, 30)}
AGEING_TIME_MAX = 1000000
# IFLA_BR_FORWARD_DELAY is a u32 of centiseconds: the longest delay without STP.
FORWARD_DELAY_MAX = (2**32 - 1) // 100
MTU_MIN = 68
MTU_MAX = 65535

# Kinds of links that sit on top of a lower device (IFLA_LINK) in the same namespace.
STACKED_KINDS = ("vlan", "macvlan", "macvtap", "ipvlan", "ipvtap")

TEST_FAIL_ENV = "KVMB_TEST_FAIL_AFTER_STEP"


# --------------------------------------------------------------------------
# Validation (interface names and MACs: _names)
# --------------------------------------------------------------------------
def normalize_ip(text):
    """Return an IP address in canonical text form (IPv4-mapped IPv6 as IPv4, zone index dropped), or None."""
    try:
        address = ipaddress.ip_address(str(text).split("%", 1)[0].strip("[]"))
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return str(address)


# --------------------------------------------------------------------------
# Snapshot records
# --------------------------------------------------------------------------
@dataclass
class Link:
    """One network interface, as the kernel reported it. Devices are named, never indexed."""

    index: int
    name: str
    kind: str = ""  # IFLA_INFO_KIND: "" for a physical NIC, else bridge, veth, tun, vlan, bond...
    master: str | None = None  # name of the bridge/bond it is enslaved to
    lower: str | None = None  # IFLA_LINK in the same namespace: lower device, or the peer of a veth
    mac: str = ""
    mtu: int = 1500
    up: bool = False  # administrative state (IFF_UP)
    loopback: bool = False
    bridge: dict = field(default_factory=dict)  # bridge options (BRIDGE_OPTION_NAMES), netlink units


@dataclass(frozen=True)
class Address:
    """One IPv4/IPv6 address on a device. ``valid``/``preferred``: remaining lifetime in seconds, None for forever."""

    dev: str
    family: int
    address: str  # IFA_ADDRESS (the peer for point-to-point IPv4)
    prefixlen: int
    local: str | None = None  # IFA_LOCAL (IPv4): our own address
    broadcast: str | None = None
    label: str | None = None
    scope: int = 0
    flags: int = 0
    valid: int | None = None
    preferred: int | None = None
    proto: int | None = None
    rt_priority: int | None = None  # IFA_RT_PRIORITY: the metric of the prefix route the kernel makes for it

    @property
    def ip(self):
        """Our own address on the device (IFA_LOCAL for IPv4, IFA_ADDRESS for IPv6)."""
        return self.local or self.address

    @property
    def cidr(self):
        text = "%s/%d" % (self.ip, self.prefixlen)
        if self.local and self.address and self.local != self.address:
            text = "%s peer %s/%d" % (self.local, self.address, self.prefixlen)
        return text

    @property
    def key(self):
        return (self.family, self.ip)


@dataclass(frozen=True)
class Nexthop:
    """One hop of a multipath route."""

    dev: str | None
    gateway: str | None = None
    hops: int = 0  # weight - 1
    flags: int = 0


@dataclass(frozen=True)
class Route:
    """One route. ``dev`` and the nexthops' devices are names; ``priority`` is the metric."""

    family: int
    table: int = RT_TABLE_MAIN
    dst: str | None = None  # None: the default route
    dst_len: int = 0
    src: str | None = None
    src_len: int = 0
    tos: int = 0
    proto: int = 3
    scope: int = 0
    type: int = 1
    flags: int = 0
    dev: str | None = None
    gateway: str | None = None
    priority: int | None = None
    prefsrc: str | None = None
    pref: int | None = None
    flow: int | None = None
    metrics: tuple = ()  # ((RTAX_NAME, value), ...)
    multipath: tuple = ()  # (Nexthop, ...)
    unsupported: tuple = ()  # names of attributes that cannot be copied

    @property
    def expires(self):
        """True for a route with a lifetime (the kernel's own from router advertisements)."""
        return "RTA_EXPIRES" in self.unsupported

    @property
    def devices(self):
        if self.multipath:
            return tuple(nh.dev for nh in self.multipath)
        return (self.dev,)

    def uses(self, name):
        return name in self.devices

    @property
    def key(self):
        """What the kernel tells routes apart by in a table (a replace swaps the route with this key)."""
        if self.family == AF_INET6:
            return (self.family, self.table, self.dst, self.dst_len, self.src, self.src_len, self.priority or 1024)
        return (self.family, self.table, self.dst, self.dst_len, self.tos, self.priority or 0)

    def on(self, old, new):
        """This route with device ``old`` replaced by ``new`` (also in the nexthops)."""
        if self.multipath:
            hops = tuple(replace(nh, dev=new) if nh.dev == old else nh for nh in self.multipath)
            return replace(self, multipath=hops)
        return replace(self, dev=new if self.dev == old else self.dev)

    def describe(self):
        """iproute2-like text, e.g. ``default via 198.18.0.1 dev eth0 proto boot``."""
        words = []
        if self.type != 1:
            words.append(ROUTE_TYPE_NAMES.get(self.type, "type %d" % self.type))
        words.append("%s/%d" % (self.dst, self.dst_len) if self.dst else "default")
        if self.src:
            words.append("from %s/%d" % (self.src, self.src_len))
        if self.multipath:
            for nh in self.multipath:
                words.append("nexthop")
                if nh.gateway:
                    words.append("via %s" % nh.gateway)
                words.append("dev %s weight %d" % (nh.dev, nh.hops + 1))
        else:
            if self.gateway:
                words.append("via %s" % self.gateway)
            words.append("dev %s" % self.dev)
        if self.table != RT_TABLE_MAIN:
            words.append("table %s" % TABLE_NAMES.get(self.table, self.table))
        words.append("proto %s" % ROUTE_PROTOCOL_NAMES.get(self.proto, self.proto))
        if self.scope:
            words.append("scope %s" % ROUTE_SCOPE_NAMES.get(self.scope, self.scope))
        if self.prefsrc:
            words.append("src %s" % self.prefsrc)
        if self.priority is not None:
            words.append("metric %d" % self.priority)
        if self.flags & RTNH_F_ONLINK:
            words.append("onlink")
        return " ".join(words)


class Snapshot:
    """Links, addresses and routes of one network namespace, read at one moment."""

    def __init__(self, links=(), addresses=(), routes=()):
        self.links = {link.name: link for link in links}
        self.addresses = list(addresses)
        self.routes = list(routes)

    def link(self, name):
        return self.links.get(name)

    def addresses_on(self, name):
        return [a for a in self.addresses if a.dev == name]

    def routes_using(self, name):
        return [r for r in self.routes if r.uses(name)]

    def ports_of(self, name):
        """Names of the links enslaved to ``name``, in ifindex order."""
        return [link.name for link in sorted(self.links.values(), key=lambda x: x.index) if link.master == name]

    def copy(self):
        return copy.deepcopy(self)


# --------------------------------------------------------------------------
# Reading the kernel: one session, one dump of each table
# --------------------------------------------------------------------------
@contextmanager
def iproute_session():
    """Yield one pyroute2 IPRoute socket for the current network namespace; always close it."""
    ipr = iproute()
    try:
        yield ipr
    finally:
        ipr.close()


def _nla(msg, name):
    """Attribute ``name`` of a pyroute2 message or nested attribute, or None."""
    if msg is None:
        return None
    try:
        return msg.get_attr(name)
    except (AttributeError, KeyError, TypeError):
        return None


def _field(msg, name, default=0):
    try:
        value = msg[name]
    except (KeyError, TypeError):
        return default
    return default if value is None else value


def links_from_messages(messages):
    """Link records from RTM_NEWLINK messages (a link dump)."""
    messages = list(messages)
    names = {_field(m, "index"): _nla(m, "IFLA_IFNAME") for m in messages}
    links = []
    for msg in messages:
        info = _nla(msg, "IFLA_LINKINFO")
        kind = _nla(info, "IFLA_INFO_KIND") or ""
        bridge = {}
        if kind == "bridge":
            data = _nla(info, "IFLA_INFO_DATA")
            for name, nla, _how in BRIDGE_OPTIONS:
                value = _nla(data, nla)
                if value is not None:
                    bridge[name] = int(value)
        master = _nla(msg, "IFLA_MASTER")
        lower = _nla(msg, "IFLA_LINK")
        # A lower device in another namespace (IFLA_LINK_NETNSID) is not ours to name.
        if _nla(msg, "IFLA_LINK_NETNSID") is not None or lower == _field(msg, "index"):
            lower = None
        flags = _field(msg, "flags")
        links.append(
            Link(
                index=_field(msg, "index"),
                name=_nla(msg, "IFLA_IFNAME"),
                kind=kind,
                master=names.get(master, "if%d" % master) if master else None,
                lower=names.get(lower) if lower else None,
                mac=(_nla(msg, "IFLA_ADDRESS") or "").lower(),
                mtu=_nla(msg, "IFLA_MTU") or 0,
                up=bool(flags & IFF_UP),
                loopback=bool(flags & IFF_LOOPBACK),
                bridge=bridge,
            )
        )
    return links


def _ifname(names, index):
    return names.get(index, "if%d" % index) if index else None


def addresses_from_messages(messages, names):
    """Address records from RTM_NEWADDR messages; ``names`` maps ifindex to name."""
    addresses = []
    for msg in messages:
        flags = _nla(msg, "IFA_FLAGS")
        if flags is None:
            flags = _field(msg, "flags")
        cache = _nla(msg, "IFA_CACHEINFO")
        valid = preferred = None
        if cache is not None and not flags & IFA_F_PERMANENT:
            valid = _field(cache, "ifa_valid", INFINITY_LIFETIME)
            preferred = _field(cache, "ifa_preferred", INFINITY_LIFETIME)
            valid = None if valid == INFINITY_LIFETIME else valid
            preferred = None if preferred == INFINITY_LIFETIME else preferred
        family = _field(msg, "family")
        address = _nla(msg, "IFA_ADDRESS")
        local = _nla(msg, "IFA_LOCAL") if family == AF_INET else None
        addresses.append(
            Address(
                dev=_ifname(names, _field(msg, "index")),
                family=family,
                address=address or local,
                prefixlen=_field(msg, "prefixlen"),
                local=local,
                broadcast=_nla(msg, "IFA_BROADCAST"),
                label=_nla(msg, "IFA_LABEL"),
                scope=_field(msg, "scope"),
                flags=flags,
                valid=valid,
                preferred=preferred,
                proto=_nla(msg, "IFA_PROTO"),
                rt_priority=_nla(msg, "IFA_RT_PRIORITY"),
            )
        )
    return addresses


def routes_from_messages(messages, names):
    """Route records from RTM_NEWROUTE messages; ``names`` maps ifindex to name."""
    routes = []
    for msg in messages:
        hops = []
        for nh in _nla(msg, "RTA_MULTIPATH") or ():
            hops.append(
                Nexthop(
                    dev=_ifname(names, _field(nh, "oif")),
                    gateway=_nla(nh, "RTA_GATEWAY"),
                    hops=_field(nh, "hops"),
                    flags=_field(nh, "flags") & RTNH_F_ONLINK,
                )
            )
        metrics = _nla(msg, "RTA_METRICS")
        metric_pairs = tuple((name, value) for name, value in (_field(metrics, "attrs", ()) or ()) if name not in (None, "RTAX_UNSPEC"))
        cache = _nla(msg, "RTA_CACHEINFO")
        unsupported = [name for name in UNSUPPORTED_ROUTE_ATTRS if _nla(msg, name) is not None]
        # A metric pyroute2 cannot set again would be lost when the route moves.
        unsupported.extend(name for name, _value in metric_pairs if name not in SETTABLE_METRICS)
        if cache is not None and _field(cache, "rta_expires"):
            unsupported.append("RTA_EXPIRES")
        table = _nla(msg, "RTA_TABLE") or _field(msg, "table")
        routes.append(
            Route(
                family=_field(msg, "family"),
                table=table,
                dst=_nla(msg, "RTA_DST"),
                dst_len=_field(msg, "dst_len"),
                src=_nla(msg, "RTA_SRC"),
                src_len=_field(msg, "src_len"),
                tos=_field(msg, "tos"),
                proto=_field(msg, "proto"),
                scope=_field(msg, "scope"),
                type=_field(msg, "type"),
                flags=_field(msg, "flags") & RTNH_F_ONLINK,
                dev=None if hops else _ifname(names, _nla(msg, "RTA_OIF")),
                gateway=_nla(msg, "RTA_GATEWAY"),
                priority=_nla(msg, "RTA_PRIORITY"),
                prefsrc=_nla(msg, "RTA_PREFSRC"),
                pref=_nla(msg, "RTA_PREF"),
                flow=_nla(msg, "RTA_FLOW"),
                metrics=metric_pairs,
                multipath=tuple(hops),
                unsupported=tuple(sorted(set(unsupported))),
            )
        )
    return routes


def read_snapshot(source=None):
    """Dump links, addresses and IPv4/IPv6 routes (all tables) into a Snapshot.

    ``source`` answers get_links(), get_addr() and get_routes(family): by
    default _rtnl's standard-library reader (no pyroute2); a pyroute2 IPRoute
    answers the same calls with the same message interface.
    """
    ipr = source if source is not None else MessageSource()
    links = links_from_messages(ipr.get_links())
    names = {link.index: link.name for link in links}
    addresses = addresses_from_messages(ipr.get_addr(), names)
    routes = []
    for family in (AF_INET, AF_INET6):
        routes.extend(routes_from_messages(ipr.get_routes(family=family), names))
    return Snapshot(links, addresses, routes)


# --------------------------------------------------------------------------
# Classification
# --------------------------------------------------------------------------
def link_class(link):
    """What a link is, for messages and rules: loopback, bridge, bond, team, vlan, veth, tap, physical or its kind."""
    if link.loopback or link.name == "lo":
        return "loopback"
    if link.kind == "tun":
        return "tap"
    if not link.kind:
        return "physical"
    return link.kind


def is_guest_port(link):
    """True for a guest's port (a tun/tap opened by qemu): never the source of a bridge's MAC."""
    return link.kind == "tun"


def stacked_on(snapshot, link, target):
    """True if ``link`` is ``target`` or sits on it through a chain of lower devices (vlan, macvlan...)."""
    seen = set()
    current = link
    while current is not None and current.name not in seen:
        if current.name == target:
            return True
        seen.add(current.name)
        if current.kind not in STACKED_KINDS or not current.lower:
            return False
        current = snapshot.link(current.lower)
    return False


def is_link_local(address):
    try:
        return ipaddress.ip_address(address.ip).is_link_local and address.family == AF_INET6
    except ValueError:
        return False


def is_migratable_address(address):
    """True if an address belongs to the user and moves with the NIC into the bridge.

    Not moved: IPv6 link-local addresses (the bridge makes its own, the same
    one when it has the NIC's MAC), IPv6 temporary (privacy) addresses, the
    kernel's own addresses (IFA_PROTO loopback/SLAAC/link-local) and addresses
    whose duplicate address detection failed.
    """
    if address.family not in (AF_INET, AF_INET6):
        return False
    if address.family == AF_INET6 and (is_link_local(address) or address.flags & (IFA_F_TEMPORARY | IFA_F_DADFAILED)):
        return False
    return address.proto not in IFA_PROTO_KERNEL


def _prefix_route_of(route, address):
    """True if ``route`` is the prefix route the kernel makes for ``address`` (none with noprefixroute)."""
    if address.dev not in route.devices or address.family != route.family or address.flags & IFA_F_NOPREFIXROUTE:
        return False
    if route.gateway or route.multipath or route.table != RT_TABLE_MAIN or not route.dst:
        return False
    try:
        network = ipaddress.ip_interface("%s/%d" % (address.address, address.prefixlen)).network
    except ValueError:
        return False
    if (str(network.network_address), network.prefixlen) != (normalize_ip(route.dst), route.dst_len):
        return False
    default = IP6_RT_PRIO_ADDRCONF if route.family == AF_INET6 else 0
    return (route.priority or 0) == (address.rt_priority or default)


def kernel_prefix_route(address):
    """The prefix route the kernel makes for ``address`` when it is added, or None (noprefixroute, /32, /128)."""
    if address.flags & IFA_F_NOPREFIXROUTE or address.family not in (AF_INET, AF_INET6):
        return None
    if address.family == AF_INET and address.flags & IFA_F_SECONDARY:
        return None  # the primary address of the network has it
    network = ipaddress.ip_interface("%s/%d" % (address.address, address.prefixlen)).network
    if network.prefixlen == network.max_prefixlen:
        return None
    if address.family == AF_INET6:
        return Route(AF_INET6, dst=str(network.network_address), dst_len=network.prefixlen, proto=RTPROT_KERNEL, dev=address.dev,
                     priority=address.rt_priority or IP6_RT_PRIO_ADDRCONF)  # fmt: skip
    return Route(AF_INET, dst=str(network.network_address), dst_len=network.prefixlen, proto=RTPROT_KERNEL, scope=253, dev=address.dev,
                 prefsrc=address.ip, priority=address.rt_priority or None)  # fmt: skip


def is_movable_route(route, addresses=None):
    """True for routes the user, a DHCP client or a network daemon made; the kernel's own stay.

    The kernel's own: redirects, the routes it learns from router
    advertisements (they expire), its local table, and the prefix routes it
    makes for an address, which it makes again on the bridge when the address
    moves there. A ``proto kernel`` route that is not such a prefix route (an
    address with ``noprefixroute``, as NetworkManager and systemd-networkd set
    them, and its prefix route added with a metric of its own) is an explicit
    route and moves. ``addresses``: the addresses to tell prefix routes by;
    None keeps every ``proto kernel`` route in place.
    """
    if route.proto == RTPROT_REDIRECT or route.table == RT_TABLE_LOCAL:
        return False
    if route.proto == RTPROT_RA:
        return not route.expires  # NetworkManager's own RA routes carry no lifetime; the kernel's do
    if route.proto != RTPROT_KERNEL:
        return True
    if addresses is None or route.expires:
        return False
    if route.family == AF_INET6 and route.dst and ipaddress.ip_address(route.dst).is_link_local and route.dst_len == 64:
        return False  # fe80::/64: every IPv6 link has its own
    return not any(_prefix_route_of(route, address) for address in addresses)


# --------------------------------------------------------------------------
# Bridge options: user units <-> netlink units
# --------------------------------------------------------------------------
def option_to_kernel(name, value):
    """Netlink value of a bridge option given in user units (seconds, bool, int)."""
    how = _OPTION_HOW[name]
    if how == "time":
        return round(float(value) * USER_HZ)
    if how == "bool":
        return 1 if value else 0
    return int(value)


def option_from_kernel(name, raw):
    """User-unit value of a bridge option read from netlink."""
    how = _OPTION_HOW[name]
    if how == "time":
        seconds = raw / float(USER_HZ)
        return int(seconds) if seconds == int(seconds) else seconds
    if how == "bool":
        return bool(raw)
    return int(raw)


def option_matches(name, current, desired):
    """Compare netlink values; timers tolerate one hundredth (the kernel keeps them in jiffies)."""
    if current is None:
        return False
    how = _OPTION_HOW[name]
    if how == "time":
        return abs(int(current) - int(desired)) <= 1
    if how == "bool":
        return bool(current) == bool(desired)
    return int(current) == int(desired)


def linkinfo_bridge(options):
    """IFLA_LINKINFO for a bridge with ``options`` ({option name: netlink value})."""
    attrs = [[_OPTION_NLA[name], int(value)] for name, value in options.items()]
    info = [["IFLA_INFO_KIND", "bridge"]]
    if attrs:
        info.append(["IFLA_INFO_DATA", {"attrs": attrs}])
    return {"attrs": info}


# --------------------------------------------------------------------------
# Desired state
# --------------------------------------------------------------------------
@dataclass
class BridgeSpec:
    """What the task asks for. ``options`` holds only the options the task sets, in user units."""

    name: str
    state: str = "present"
    ports: tuple = ()
    ports_exclusive: bool = False
    options: dict = field(default_factory=dict)
    mtu: int | None = None
    mac: str = "inherit"  # inherit | keep | a normalized MAC
    migrate_addresses: bool = True
    up: bool = True
    force: bool = False

    @classmethod
    def from_params(cls, params):
        """Validate module parameters into a BridgeSpec; raise ModuleError naming every problem."""
        problems = []

        def check(func, *args):
            try:
                return func(*args)
            except ModuleError as exc:
                problems.append(exc.msg)
                return None

        name = check(validate_ifname, params.get("name"), "bridge name")
        ports = []
        for port in params.get("ports") or []:
            if check(validate_ifname, port, "port name") is None:
                continue
            if port in ports:
                problems.append("Port %r is listed twice in ports." % port)
                continue
            ports.append(port)
        mac = params.get("mac") or "inherit"
        if mac not in ("inherit", "keep"):
            mac = check(normalize_mac, mac, "mac") or mac
        options = {}
        for option in BRIDGE_OPTION_NAMES:
            value = params.get(option)
            if value is not None:
                options[option] = value
        problems.extend(option_problems(options))
        mtu = params.get("mtu")
        if mtu is not None and not MTU_MIN <= mtu <= MTU_MAX:
            problems.append("mtu %s is out of range: use %d-%d." % (mtu, MTU_MIN, MTU_MAX))
        if problems:
            raise ModuleError(" ".join(problems))
        return cls(
            name=name,
            state=params.get("state") or "present",
            ports=tuple(ports),
            ports_exclusive=bool(params.get("ports_exclusive")),
            options=options,
            mtu=mtu,
            mac=mac,
            migrate_addresses=params.get("migrate_addresses", True) is not False,
            up=params.get("up", True) is not False,
            force=bool(params.get("force")),
        )


def option_problems(options, stp=None):
    """Range problems of bridge options in user units; ``stp`` is the STP state when the options do not set it."""
    problems = []
    options = dict(options)
    for name in ("forward_delay", "hello_time", "max_age", "ageing_time"):
        value = options.get(name)
        if value is not None and not math.isfinite(value):
            problems.append("%s %s is not a number of seconds; give a finite value." % (name, value))
            del options[name]
    for name in ("hello_time", "max_age"):
        value = options.get(name)
        low, high = TIMER_RANGES[name]
        if value is not None and not low <= value <= high:
            problems.append("%s %s is out of range: the kernel accepts %d-%d seconds." % (name, value, low, high))
    for name in ("forward_delay", "ageing_time"):
        value = options.get(name)
        if value is not None and value < 0:
            problems.append("%s must not be negative." % name)
    if options.get("forward_delay") is not None and options["forward_delay"] > FORWARD_DELAY_MAX:
        problems.append("forward_delay must be at most %d seconds." % FORWARD_DELAY_MAX)
    if options.get("ageing_time") is not None and options["ageing_time"] > AGEING_TIME_MAX:
        problems.append("ageing_time must be at most %d seconds." % AGEING_TIME_MAX)
    priority = options.get("priority")
    if priority is not None and not 0 <= priority <= 65535:
        problems.append("priority %s is out of range: use 0-65535." % priority)
    stp_on = options.get("stp", stp)
    delay = options.get("forward_delay")
    low, high = TIMER_RANGES["forward_delay"]
    if stp_on and delay is not None and not low <= delay <= high:
        problems.append(
            "forward_delay %s does not work with STP on: the kernel accepts %d-%d seconds while STP runs"
            " (and raises a smaller delay to %d when STP starts). Set stp: false for a shorter delay." % (delay, low, high, low)
        )
    return problems


# --------------------------------------------------------------------------
# Plans
# --------------------------------------------------------------------------
@dataclass
class Step:
    """One kernel change. ``undo`` lists (op, args) pairs that take it back, run in order."""

    op: str
    description: str
    args: dict
    undo: tuple = ()


@dataclass
class Plan:
    steps: list = field(default_factory=list)
    warnings: list = field(default_factory=list)

    @property
    def changed(self):
        return bool(self.steps)

    @property
    def actions(self):
        return [step.description for step in self.steps]

    def add(self, op, description, args, undo=()):
        self.steps.append(Step(op, description, args, tuple(undo)))


def _set_link(name, **changes):
    args = {"name": name}
    args.update(changes)
    return args


def plan_bridge(snapshot, spec, connection_addresses=(), clients=()):
    """Plan the steps from ``snapshot`` to ``spec``; pure. Raise ModuleError (nothing changed) on bad input.

    ``connection_addresses`` are the host's own addresses the controller is
    connected to (from SSH_CONNECTION): a step that would cut them off needs
    ``force``. ``clients``: the DHCP clients (_dhcp_client.DhcpClient) bound
    to the ports, which move to the bridge with the addresses.
    """
    connection = {normalize_ip(a) for a in connection_addresses} - {None}
    bridge = snapshot.link(spec.name)
    if bridge is not None and bridge.kind != "bridge":
        raise ModuleError("%s exists and is a %s link, not a bridge; choose another name or remove it first." % (spec.name, link_class(bridge)))
    if spec.state == "absent":
        return _plan_absent(snapshot, spec, bridge, connection)
    return _plan_present(snapshot, spec, bridge, connection, clients)


def _connection_on(snapshot, name, connection):
    return sorted(a.ip for a in snapshot.addresses_on(name) if normalize_ip(a.ip) in connection)


def _plan_absent(snapshot, spec, bridge, connection):
    plan = Plan()
    if bridge is None:
        return plan
    carried = _connection_on(snapshot, spec.name, connection)
    if carried and not spec.force:
        raise ModuleError(
            "Refusing to remove bridge %s: it carries %s, the address this Ansible connection uses, and removing it would"
            " cut the connection. Move the address off the bridge first, or set force: true." % (spec.name, ", ".join(carried))
        )
    ports = snapshot.ports_of(spec.name)
    description = "delete bridge %s" % spec.name
    if ports:
        description += " (releases %s)" % ", ".join(ports)
    plan.add("delete_link", description, {"name": spec.name})
    return plan


def _check_ports(snapshot, spec, bridge):
    """The links of the listed ports; raise ModuleError for any port that cannot join the bridge."""
    problems = []
    links = []
    for name in spec.ports:
        link = snapshot.link(name)
        if name == spec.name:
            problems.append("%s cannot be a port of itself." % name)
        elif link is None:
            problems.append("Port %s does not exist. Check the name (ip link shows the interfaces); a guest's tap exists only while its VM runs." % name)
        elif link_class(link) == "loopback":
            problems.append("%s is the loopback interface and cannot be a bridge port." % name)
        elif link.kind == "bridge":
            problems.append(
                "%s is itself a bridge; a bridge cannot be a port of another bridge (it would make a bridge loop)."
                " Connect bridges with a veth pair if you need to." % name
            )
        elif stacked_on(snapshot, link, spec.name):
            problems.append("%s sits on top of %s (a %s); making it a port of %s would make a bridge loop." % (name, spec.name, link.kind, spec.name))
        elif link.master and link.master != spec.name:
            master = snapshot.link(link.master)
            what = link_class(master) if master else "device"
            problems.append("%s is already a port of %s (a %s); detach it from %s first." % (name, link.master, what, link.master))
        else:
            links.append(link)
    if problems:
        raise ModuleError(" ".join(problems))
    # Both ends of a veth pair in one bridge loop every broadcast back to it.
    final = set(spec.ports)
    if not spec.ports_exclusive and bridge is not None:
        final.update(snapshot.ports_of(spec.name))
    for name in sorted(final):
        link = snapshot.link(name)
        if link is not None and link.kind == "veth" and link.lower in final and name < link.lower:
            problems.append("%s and %s are the two ends of one veth pair; both as ports of %s would make a bridge loop." % (name, link.lower, spec.name))
    if problems:
        raise ModuleError(" ".join(problems))
    return links


def _relabel(label, port, bridge):
    """The IPv4 label of a moved address: eth0 -> breth0, eth0:1 -> breth0:1 (dropped when too long)."""
    if not label or label == port:
        return None
    if label.startswith(port + ":"):
        new = bridge + label[len(port) :]
        return new if len(new.encode("utf-8")) < IFNAMSIZ else None
    return label


def _plan_present(snapshot, spec, bridge, connection, clients=()):
    plan = Plan()
    port_links = _check_ports(snapshot, spec, bridge)
    name = spec.name
    current_ports = snapshot.ports_of(name) if bridge is not None else []
    to_attach = [link for link in port_links if link.master != name]

    # -- MAC ----------------------------------------------------------------
    mac = None
    if spec.mac == "inherit":
        uplinks = [link for link in port_links if not is_guest_port(link)]
        if uplinks:
            mac = uplinks[0].mac
        elif port_links:
            plan.warnings.append("mac: inherit found no physical port among %s; %s keeps its own MAC." % (", ".join(spec.ports), name))
    elif spec.mac != "keep":
        mac = spec.mac

    # -- options ------------------------------------------------------------
    current_options = dict(BRIDGE_DEFAULTS)
    if bridge is not None:
        current_options.update(bridge.bridge)
    stp_now = bool(current_options.get("stp"))
    problems = option_problems(spec.options, stp=stp_now)
    if problems:
        raise ModuleError(" ".join(problems))
    wanted = {opt: option_to_kernel(opt, value) for opt, value in spec.options.items()}

    # -- addresses and routes to move ----------------------------------------
    moves_addr = []  # (port Address, bridge Address or None when the bridge has it already)
    moves_route = []  # (old Route, new Route)
    if spec.migrate_addresses:
        on_bridge = {a.key: a for a in snapshot.addresses_on(name)}
        port_names = [link.name for link in port_links]
        for link in port_links:
            for address in snapshot.addresses_on(link.name):
                if not is_migratable_address(address):
                    continue
                existing = on_bridge.get(address.key)
                if existing is not None and existing.prefixlen != address.prefixlen:
                    raise ModuleError(
                        "%s is on %s as /%d and on %s as /%d; remove one of them first." % (address.ip, link.name, address.prefixlen, name, existing.prefixlen)
                    )
                new = None
                if existing is None:
                    flags = address.flags & IFA_SETTABLE_FLAGS
                    if address.family == AF_INET6:
                        flags |= IFA_F_NODAD  # already ours on this link: no duplicate detection needed
                    new = replace(address, dev=name, flags=flags, label=_relabel(address.label, link.name, name))
                    on_bridge[address.key] = new
                moves_addr.append((address, new))
        seen = set()
        for route in snapshot.routes:
            if not any(route.uses(port) for port in port_names) or not is_movable_route(route, snapshot.addresses):
                continue
            if route in seen:
                continue
            seen.add(route)
            if route.unsupported:
                raise ModuleError(
                    "Cannot move route '%s': it has %s, which this module does not copy. Move that route to %s yourself,"
                    " or set migrate_addresses: false." % (route.describe(), ", ".join(route.unsupported), name)
                )
            new = route
            for port in port_names:
                new = new.on(port, name)
            moves_route.append((route, new))
        moves_route = order_route_moves(moves_route)

    # -- DHCP clients move with the addresses they lease ---------------------------
    client_moves = []  # (client on the port, argv on the bridge, lease file move)
    if spec.migrate_addresses:
        port_names = {link.name for link in port_links}
        for client in clients:
            if client.interface in port_names:
                client_moves.append((client, _dhcp_client.moved_argv(client, name), _dhcp_client.lease_move(client, name)))
    renewed = {(client.interface, client.family) for client, _argv, _lease in client_moves}
    for old, new in moves_addr:
        if new is not None and new.valid is not None and (old.dev, old.family) not in renewed:
            plan.warnings.append(unrenewed_warning(old, name))
    # A leased address whose client moves along goes to the bridge without the old lease's remaining time: the
    # client may confirm its lease without touching an address that is there already (dhclient-script's REBOOT),
    # and sets the lifetime again at its first renewal, from the lease it holds.
    moves_addr = [
        (old, replace(new, valid=None, preferred=None) if new is not None and (old.dev, old.family) in renewed else new) for old, new in moves_addr
    ]

    # -- 0. the DHCP clients stop on the ports first (a rollback starts them last) --
    for client, _argv, _lease in client_moves:
        plan.add(
            "stop_dhcp_client",
            "stop %s on %s (pid %d)" % (client.name, client.interface, client.pid),
            {"argv": client.argv},
            undo=[("start_dhcp_client", {"argv": client.argv})],
        )

    # -- the connection must survive -----------------------------------------
    if not spec.force:
        moved_ips = {normalize_ip(old.ip) for old, _new in moves_addr}
        for link in to_attach:
            cut = [ip for ip in _connection_on(snapshot, link.name, connection) if normalize_ip(ip) not in moved_ips]
            if cut:
                raise ModuleError(
                    "Refusing to make %s a port of %s: it carries %s, the address this Ansible connection uses, and it would not move"
                    " to the bridge (migrate_addresses: false, or a link-local address), so the connection would be cut."
                    " Set migrate_addresses: true, or force: true." % (link.name, name, ", ".join(cut))
                )
        if spec.ports_exclusive and bridge is not None:
            carried = _connection_on(snapshot, name, connection)
            uplinks = [p for p in current_ports if p not in spec.ports and not is_guest_port(snapshot.link(p))]
            if carried and uplinks:
                raise ModuleError(
                    "Refusing to detach %s from %s: %s carries %s, the address this Ansible connection uses, and the connection may"
                    " run through %s. List %s in ports, or set force: true."
                    % (", ".join(uplinks), name, name, ", ".join(carried), " or ".join(uplinks), " and ".join(uplinks))
                )
        if not spec.up:
            carried = _connection_on(snapshot, name, connection) if bridge is not None else []
            carried += [new.ip for _old, new in moves_addr if new is not None and normalize_ip(new.ip) in connection]
            if carried and (bridge is None or bridge.up or moves_addr):
                raise ModuleError(
                    "Refusing to leave %s down: it carries %s, the address this Ansible connection uses. Set up: true, or force: true."
                    % (name, ", ".join(sorted(set(carried))))
                )

    # -- 1. the bridge itself --------------------------------------------------
    if bridge is None:
        create = {"name": name, "mac": mac, "mtu": spec.mtu, "options": wanted}
        details = []
        if mac:
            details.append("mac %s" % mac)
        if spec.mtu:
            details.append("mtu %d" % spec.mtu)
        details.extend("%s %s" % (opt, _show_option(opt, spec.options[opt])) for opt in spec.options)
        plan.add(
            "create_bridge", "create bridge %s%s" % (name, " (%s)" % ", ".join(details) if details else ""), create, undo=[("delete_link", {"name": name})]
        )
    else:
        if mac and mac != bridge.mac:
            plan.add(
                "set_link", "set %s mac %s (was %s)" % (name, mac, bridge.mac), _set_link(name, mac=mac), undo=[("set_link", _set_link(name, mac=bridge.mac))]
            )
        if spec.mtu and spec.mtu != bridge.mtu:
            plan.add(
                "set_link",
                "set %s mtu %d (was %d)" % (name, spec.mtu, bridge.mtu),
                _set_link(name, mtu=spec.mtu),
                undo=[("set_link", _set_link(name, mtu=bridge.mtu))],
            )
        _plan_options(plan, name, wanted, current_options)

    # -- 2. up before anything moves onto it -----------------------------------
    bridge_up = bridge is not None and bridge.up
    if spec.up and not bridge_up:
        plan.add("set_link", "bring %s up" % name, _set_link(name, up=True), undo=[("set_link", _set_link(name, up=False))])

    # -- 3. addresses onto the bridge first ------------------------------------
    for old, new in moves_addr:
        if new is not None:
            plan.add("add_address", "add %s to %s (from %s)" % (new.cidr, name, old.dev), {"address": new}, undo=[("del_address", {"address": new})])

    # -- 4. ports ---------------------------------------------------------------
    for link in to_attach:
        undo_master = link.master or ""
        plan.add(
            "set_link", "attach %s to %s" % (link.name, name), _set_link(link.name, master=name), undo=[("set_link", _set_link(link.name, master=undo_master))]
        )
    if spec.up:
        for link in port_links:
            if not link.up:
                plan.add("set_link", "bring port %s up" % link.name, _set_link(link.name, up=True), undo=[("set_link", _set_link(link.name, up=False))])

    # -- 5. routes, each in one atomic replace ----------------------------------
    for old, new in moves_route:
        plan.add(
            "replace_route", "move route '%s' to %s" % (old.describe(), name), {"route": new, "old": old}, undo=[("replace_route", {"route": old, "old": new})]
        )

    # -- 6. addresses off the ports, secondaries first ----------------------------
    for old, _new in reversed(moves_addr):
        plan.add("del_address", "remove %s from %s" % (old.cidr, old.dev), {"address": old}, undo=[("add_address", {"address": old})])

    # -- 7. ports that are not listed --------------------------------------------
    if spec.ports_exclusive:
        for port in current_ports:
            if port not in spec.ports:
                plan.add("set_link", "detach %s from %s" % (port, name), _set_link(port, master=""), undo=[("set_link", _set_link(port, master=name))])

    # -- 8. down, last --------------------------------------------------------------
    if not spec.up and bridge_up:
        plan.add("set_link", "bring %s down" % name, _set_link(name, up=False), undo=[("set_link", _set_link(name, up=True))])

    # -- 9. the DHCP clients start on the bridge, with the lease carried over --------
    for client, argv, lease in client_moves:
        plan.add(
            "start_dhcp_client",
            "start %s on %s: %s" % (client.name, name, " ".join(argv)),
            {"argv": argv, "lease": lease, "old": client.interface, "new": name},
            undo=[("stop_dhcp_client", {"argv": argv})],
        )
    return plan


def unrenewed_warning(address, bridge):
    """What to tell the user about ``address``, which moves from a port to ``bridge`` with a finite lifetime."""
    return (
        "%s moves from %s to %s with its lifetime (%d s left): a DHCP client or a router advertisement gave it, and"
        " this module does not move the client, so nothing renews it on %s and it will expire. Run the DHCP client on %s"
        " (stop it on %s first), or give %s a static address." % (address.cidr, address.dev, bridge, address.valid, bridge, bridge, address.dev, bridge)
    )


def expiring_addresses(snapshot, name, clients=()):
    """The user's addresses on ``name`` with a finite lifetime (leases) that no DHCP client of ``clients`` on
    ``name`` renews, as dicts: address, valid_lft, preferred_lft."""
    renewed = {client.family for client in clients if client.interface == name}
    return [
        {"address": a.cidr, "valid_lft": a.valid, "preferred_lft": a.preferred}
        for a in snapshot.addresses_on(name)
        if a.valid is not None and is_migratable_address(a) and a.family not in renewed
    ]


def client_view(client):
    """A DHCP client as the result shows it."""
    return {"name": client.name, "interface": client.interface, "family": "ipv6" if client.family == AF_INET6 else "ipv4", "argv": list(client.argv)}


def route_needs_onlink(route):
    """True if adding ``route`` needs an on-link route to its gateway(s) on the new device first.

    The kernel looks a gateway up over the route's device when the route is
    added, and refuses it (ENETUNREACH) without a route there to reach it. A
    route without a gateway (on-link, blackhole...) and a gateway route marked
    ``onlink`` need nothing but the device.
    """
    hops = route.multipath or (Nexthop(route.dev, route.gateway, flags=route.flags),)
    return any(nh.gateway and not nh.flags & RTNH_F_ONLINK for nh in hops)


def order_route_moves(moves):
    """The (old, new) route moves with every route after what it needs: the routes that need nothing
    (on-link, onlink gateways) first, then the gateway routes, in every table, IPv4 and IPv6. Within each
    group the kernel's (the dump's) order stays.
    """
    return sorted(moves, key=lambda move: route_needs_onlink(move[1]))


def _show_option(name, value):
    if _OPTION_HOW[name] == "time":
        return "%gs" % value
    return str(value).lower() if isinstance(value, bool) else str(value)


def _plan_options(plan, name, wanted, current):
    """Option changes of an existing bridge. STP goes off before the timers, and on after them."""
    changes = {opt: raw for opt, raw in wanted.items() if not option_matches(opt, current.get(opt), raw)}
    if not changes:
        return
    stp = changes.pop("stp", None)

    def add(options):
        shown = ", ".join(
            "%s %s (was %s)" % (opt, _show_option(opt, option_from_kernel(opt, raw)), _show_option(opt, option_from_kernel(opt, current[opt])))
            for opt, raw in options.items()
        )
        before = {opt: current[opt] for opt in options}
        plan.add("set_link", "set %s %s" % (name, shown), _set_link(name, options=options), undo=[("set_link", _set_link(name, options=before))])

    if stp is not None and not stp:
        add({"stp": stp})
    if changes:
        add(changes)
    if stp:
        add({"stp": stp})


# --------------------------------------------------------------------------
# Views: what the diff and the result show
# --------------------------------------------------------------------------
def bridge_view(snapshot, name, ports=()):
    """The bridge as the diff and the result show it: settings, ports, addresses and routes.

    ``ports`` adds the addresses and routes of those ports (the ones a
    migration moves from) under ``port_addresses`` and ``port_routes``.
    """
    link = snapshot.link(name)
    if link is None or link.kind != "bridge":
        return {"name": name, "state": "absent"}
    view = {"name": name, "state": "present", "mac": link.mac, "mtu": link.mtu, "up": link.up}
    options = dict(BRIDGE_DEFAULTS)
    options.update(link.bridge)
    for option in BRIDGE_OPTION_NAMES:
        view[option] = option_from_kernel(option, options[option])
    view["ports"] = snapshot.ports_of(name)
    view["addresses"] = [a.cidr for a in snapshot.addresses_on(name) if not is_link_local(a)]
    view["routes"] = [r.describe() for r in snapshot.routes_using(name) if is_movable_route(r, snapshot.addresses)]
    port_addresses = {}
    port_routes = {}
    for port in ports:
        if snapshot.link(port) is None:
            continue
        port_addresses[port] = [a.cidr for a in snapshot.addresses_on(port) if not is_link_local(a)]
        port_routes[port] = [r.describe() for r in snapshot.routes_using(port) if is_movable_route(r, snapshot.addresses)]
    if ports:
        view["port_addresses"] = port_addresses
        view["port_routes"] = port_routes
    return view


def runtime_state(snapshot, names):
    """What a restore must bring back for ``names``: existence, kind, master, link state, MAC, MTU,
    bridge options, addresses (without their lifetimes, which run on) and the user's routes."""
    state = {}
    for name in sorted(names):
        link = snapshot.link(name)
        if link is None:
            state[name] = None
            continue
        state[name] = {
            "kind": link.kind,
            "master": link.master,
            "up": link.up,
            "mac": link.mac,
            "mtu": link.mtu,
            "bridge": dict(link.bridge),
            "addresses": sorted("%s flags 0x%x" % (a.cidr, a.flags & (IFA_SETTABLE_FLAGS | IFA_F_PERMANENT)) for a in snapshot.addresses_on(name)),
            "routes": sorted(r.describe() for r in snapshot.routes_using(name) if is_movable_route(r, snapshot.addresses)),
        }
    return state


def state_differences(before, after):
    """Human-readable differences between two runtime_state() results."""
    problems = []
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        if old is None:
            problems.append("%s exists but did not before" % name)
        elif new is None:
            problems.append("%s is gone" % name)
        else:
            for key in sorted(old):
                if old[key] != new.get(key):
                    problems.append("%s %s: was %s, now %s" % (name, key, old[key], new.get(key)))
    return problems


# --------------------------------------------------------------------------
# Simulation: apply a plan to a snapshot in memory
# --------------------------------------------------------------------------
def simulate(snapshot, steps):
    """A copy of ``snapshot`` with ``steps`` applied as the kernel would (the parts this module relies on)."""
    snap = snapshot.copy()
    auto = set()  # bridges whose MAC/MTU the kernel still picks from their ports
    for step in steps:
        _simulate_op(snap, step.op, step.args, auto)
    return snap


def _simulate_op(snap, op, args, auto):
    if op == "create_bridge":
        index = max([link.index for link in snap.links.values()] + [0]) + 1
        options = dict(BRIDGE_DEFAULTS)
        options.update(args.get("options") or {})
        if options.get("stp"):
            low, high = TIMER_RANGES["forward_delay"]
            options["forward_delay"] = min(max(options["forward_delay"], low * USER_HZ), high * USER_HZ)
        snap.links[args["name"]] = Link(index=index, name=args["name"], kind="bridge", mac=args.get("mac") or "", mtu=args.get("mtu") or 1500, bridge=options)
        if not args.get("mac"):
            auto.add((args["name"], "mac"))
        if not args.get("mtu"):
            auto.add((args["name"], "mtu"))
    elif op == "delete_link":
        name = args["name"]
        snap.links.pop(name, None)
        for link in snap.links.values():
            if link.master == name:
                link.master = None
        snap.addresses = [a for a in snap.addresses if a.dev != name]
        snap.routes = [r for r in snap.routes if not r.uses(name)]
    elif op == "set_link":
        link = snap.links[args["name"]]
        if "mac" in args:
            link.mac = args["mac"]
            auto.discard((link.name, "mac"))
        if "mtu" in args:
            link.mtu = args["mtu"]
            auto.discard((link.name, "mtu"))
        if "up" in args:
            link.up = bool(args["up"])
        if "options" in args:
            link.bridge.update(args["options"])
        if "master" in args:
            link.master = args["master"] or None
            master = snap.links.get(link.master) if link.master else None
            if master is not None:
                ports = [snap.links[p] for p in snap.ports_of(master.name)]
                if (master.name, "mac") in auto:
                    master.mac = min(p.mac for p in ports)
                if (master.name, "mtu") in auto:
                    master.mtu = min(p.mtu for p in ports)
    elif op == "add_address":
        address = args["address"]
        snap.addresses.append(address)
        prefix = kernel_prefix_route(address)
        if prefix is not None and not any(_prefix_route_of(r, address) for r in snap.routes):
            snap.routes.append(prefix)
    elif op == "del_address":
        gone = args["address"]
        snap.addresses = [a for a in snap.addresses if not (a.dev == gone.dev and a.key == gone.key and a.prefixlen == gone.prefixlen)]
        # The kernel keeps the prefix route while another address of the device is in that prefix (a secondary goes alone).
        remaining = [a for a in snap.addresses if a.dev == gone.dev]
        snap.routes = [r for r in snap.routes if not _prefix_route_of(r, gone) or any(_prefix_route_of(r, a) for a in remaining)]
    elif op in ("stop_dhcp_client", "start_dhcp_client"):
        pass  # processes, not kernel state
    elif op == "replace_route":
        new, old = args["route"], args.get("old")
        snap.routes = [r for r in snap.routes if r.key != new.key and r != old]
        snap.routes.append(new)
    else:  # pragma: no cover - a programming error
        raise ValueError("unknown op %s" % op)


# --------------------------------------------------------------------------
# Applying a plan to the kernel
# --------------------------------------------------------------------------
class InjectedFailure(Exception):
    """The failure the KVMB_TEST_FAIL_AFTER_STEP testing aid asks for."""


class ApplyError(Exception):
    """A step failed; the steps before it were undone. Carries what happened."""

    def __init__(self, step_number, step, cause, done, restore_errors):
        super().__init__(str(cause))
        self.step_number = step_number
        self.step = step
        self.cause = cause
        self.done = done
        self.restore_errors = restore_errors


def fail_after_step_from_env(environ=None):
    """The step number after which the KVMB_TEST_FAIL_AFTER_STEP testing aid injects a failure, or None.

    A testing aid only: it lets the integration tests prove the restore on a
    real kernel. It must be a positive integer; anything else is an error, so a
    stray value cannot go unnoticed.
    """
    environ = os.environ if environ is None else environ
    value = environ.get(TEST_FAIL_ENV)
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise ModuleError("%s=%r is not a positive step number; unset it (it is a testing aid)." % (TEST_FAIL_ENV, value))
    return number


def describe_error(exc):
    if isinstance(exc, netlink_error()):
        code = getattr(exc, "code", 0)
        return "%s (errno %d, %s)" % (os.strerror(code) if code else exc, code, errno.errorcode.get(code, "?"))
    return str(exc) or exc.__class__.__name__


class KernelApplier:
    """Runs plan ops over one IPRoute session; devices are looked up by name when needed."""

    # Errors an undo may meet because the step it undoes did not (fully) happen.
    UNDO_TOLERATED = {
        "delete_link": (errno.ENODEV,),
        "del_address": (errno.EADDRNOTAVAIL, errno.ENODEV),
        "add_address": (errno.EEXIST,),
        "set_link": (),
        "replace_route": (),
        "create_bridge": (errno.EEXIST,),
    }

    def __init__(self, ipr, module=None):
        self.ipr = ipr
        self.module = module  # for the lease file a DHCP client takes along (atomic_write)

    def index(self, name):
        found = self.ipr.link_lookup(ifname=name)
        if not found:
            raise ModuleError("%s does not exist (any more)." % name)
        return found[0]

    def run(self, op, args, undoing=False):
        try:
            getattr(self, "op_" + op)(**args)
        except netlink_error() as exc:
            if undoing and getattr(exc, "code", None) in self.UNDO_TOLERATED.get(op, ()):
                return
            raise

    # -- ops ------------------------------------------------------------------
    def op_create_bridge(self, name, mac=None, mtu=None, options=None):
        request = {"ifname": name, "IFLA_LINKINFO": linkinfo_bridge(options or {})}
        if mac:
            request["address"] = mac
        if mtu:
            request["mtu"] = mtu
        self.ipr.link("add", **request)

    def op_delete_link(self, name):
        found = self.ipr.link_lookup(ifname=name)
        if found:
            self.ipr.link("del", index=found[0])

    def op_set_link(self, name, mac=None, mtu=None, up=None, master=None, options=None):
        index = self.index(name)
        if options:
            self.ipr.link("set", index=index, IFLA_LINKINFO=linkinfo_bridge(options))
        if mac:
            self.ipr.link("set", index=index, address=mac)
        if mtu:
            self.ipr.link("set", index=index, mtu=mtu)
        if master is not None:
            self.ipr.link("set", index=index, master=self.index(master) if master else 0)
        if up is not None:
            self.ipr.link("set", index=index, flags=IFF_UP if up else 0, change=IFF_UP)

    def _address_request(self, address):
        request = {"index": self.index(address.dev), "family": address.family, "prefixlen": address.prefixlen, "address": address.address}
        if address.local:
            request["local"] = address.local
        return request

    def op_add_address(self, address):
        request = self._address_request(address)
        if address.broadcast:
            request["broadcast"] = address.broadcast
        if address.label:
            request["label"] = address.label
        if address.scope:
            request["scope"] = address.scope
        flags = address.flags & IFA_SETTABLE_FLAGS
        if flags:
            request["IFA_FLAGS"] = flags
        if address.valid is not None or address.preferred is not None:
            valid = INFINITY_LIFETIME if address.valid is None else address.valid
            preferred = INFINITY_LIFETIME if address.preferred is None else min(address.preferred, valid)
            # ifa_* for pyroute2 >= 0.8, valid/preferred for 0.7's request filter: both read their own keys.
            request["IFA_CACHEINFO"] = {"ifa_valid": valid, "ifa_preferred": preferred, "valid": valid, "preferred": preferred, "cstamp": 0, "tstamp": 0}
        if address.proto is not None:
            request["IFA_PROTO"] = address.proto
        if address.rt_priority:
            request["IFA_RT_PRIORITY"] = address.rt_priority
        self.ipr.addr("add", **request)

    def op_del_address(self, address):
        self.ipr.addr("del", **self._address_request(address))

    def _route_request(self, route):
        request = {
            "family": route.family,
            "table": route.table,
            "dst_len": route.dst_len,
            "tos": route.tos,
            "proto": route.proto,
            "scope": route.scope,
            "type": route.type,
        }
        if route.dst:
            request["dst"] = "%s/%d" % (route.dst, route.dst_len)
        if route.src:
            request["src"] = "%s/%d" % (route.src, route.src_len)
            request["src_len"] = route.src_len
        if route.flags:
            request["flags"] = route.flags
        if route.multipath:
            hops = []
            for nh in route.multipath:
                hop = {"oif": self.index(nh.dev), "hops": nh.hops, "flags": nh.flags}
                if nh.gateway:
                    hop["gateway"] = nh.gateway
                hops.append(hop)
            request["multipath"] = hops
        else:
            if route.dev:
                request["oif"] = self.index(route.dev)
            if route.gateway:
                request["gateway"] = route.gateway
        if route.priority is not None:
            request["priority"] = route.priority
        if route.prefsrc:
            request["prefsrc"] = route.prefsrc
        if route.pref is not None:
            request["RTA_PREF"] = route.pref
        if route.flow is not None:
            request["RTA_FLOW"] = route.flow
        if route.metrics:
            request["metrics"] = dict(route.metrics)
        return request

    def op_replace_route(self, route, old=None):
        self.ipr.route("replace", **self._route_request(route))
        if old is not None and old.key != route.key:
            self.op_delete_route(old)
        elif old is not None:
            # Same key: the replace took the old route's place. Where the kernel
            # kept both (an IPv6 multipath sibling), remove the old one.
            with suppress(ModuleError):
                self.op_delete_route(old)

    def op_stop_dhcp_client(self, argv):
        _dhcp_client.stop_client(argv)

    def op_start_dhcp_client(self, argv, lease=None, old=None, new=None):
        _dhcp_client.start_client(argv, lease=lease, module=self.module, old=old, new=new)

    def op_delete_route(self, route):
        try:
            self.ipr.route("del", **self._route_request(route))
        except netlink_error() as exc:
            if getattr(exc, "code", None) != errno.ESRCH:
                raise


def apply_plan(applier, plan, fail_after_step=None):
    """Run the plan's steps; on any error undo the applied ones in reverse order and raise ApplyError.

    Returns the descriptions of the steps applied. ``fail_after_step`` (the
    testing aid) raises InjectedFailure right after that step number.
    """
    done = []
    number = 0
    step = None
    try:
        for number, step in enumerate(plan.steps, 1):
            applier.run(step.op, step.args)
            done.append(step)
            if fail_after_step is not None and number == fail_after_step:
                raise InjectedFailure("failure injected after step %d by %s (a testing aid)" % (number, TEST_FAIL_ENV))
    except BaseException as exc:
        restore_errors = []
        for applied in reversed(done):
            for op, args in applied.undo:
                try:
                    applier.run(op, args, undoing=True)
                except Exception as undo_exc:  # keep undoing the rest
                    restore_errors.append("undo of '%s' failed: %s" % (applied.description, describe_error(undo_exc)))
        if not isinstance(exc, Exception):
            raise
        raise ApplyError(number, step, exc, [s.description for s in done], restore_errors) from exc
    return [s.description for s in done]


# --------------------------------------------------------------------------
# The connection to keep
# --------------------------------------------------------------------------
def _server_address(value):
    """The server-side address (third field) of an SSH_CONNECTION value, or None."""
    fields = (value or "").split()
    return normalize_ip(fields[2]) if len(fields) >= 4 else None


def _proc_environ(proc, pid, name):
    try:
        with open(os.path.join(proc, str(pid), "environ"), "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    prefix = name.encode() + b"="
    for item in data.split(b"\0"):
        if item.startswith(prefix):
            return item[len(prefix) :].decode("utf-8", "replace")
    return None


def _proc_parent(proc, pid):
    try:
        with open(os.path.join(proc, str(pid), "stat")) as handle:
            stat = handle.read()
    except OSError:
        return 0
    # The command name (field 2) may hold spaces and parentheses: read after the last ')'.
    rest = stat.rsplit(")", 1)[-1].split()
    return int(rest[1]) if len(rest) > 1 else 0


def connection_addresses(environ=None, proc="/proc", pid=None, depth=32):
    """The host's addresses the controller is connected to, from SSH_CONNECTION.

    Read from this process's environment, and from its ancestors' (become
    methods such as sudo drop SSH_CONNECTION from the environment, but the
    login shell above still has it).
    """
    environ = os.environ if environ is None else environ
    found = set()
    address = _server_address(environ.get("SSH_CONNECTION"))
    if address:
        found.add(address)
    pid = os.getpid() if pid is None else pid
    for _level in range(depth):
        pid = _proc_parent(proc, pid)
        if pid <= 1:
            break
        address = _server_address(_proc_environ(proc, pid, "SSH_CONNECTION"))
        if address:
            found.add(address)
    return sorted(found)


# --------------------------------------------------------------------------
# The module's flow
# --------------------------------------------------------------------------
def manage_bridge(params, check_mode=False, fail_after_step=None, connection=(), session=iproute_session, module=None, find_clients=None):
    """params -> BridgeSpec -> one snapshot (read without pyroute2) -> plan -> apply unless check mode -> result dict.

    ``find_clients`` (interfaces -> DhcpClients; default: from /proc) finds the
    DHCP clients of the ports, which move with their addresses; ``module``
    writes the lease file they take along.

    Raises ModuleError (nothing changed, or everything restored) on bad input
    and on a failed step.
    """
    spec = BridgeSpec.from_params(params)
    watch = set(spec.ports) | {spec.name}
    before = read_snapshot()
    find_clients = _dhcp_client.find_clients if find_clients is None else find_clients
    clients = find_clients([*spec.ports, spec.name]) if spec.state == "present" else []
    plan = plan_bridge(before, spec, connection, clients)
    on_bridge = [c for c in clients if c.interface == spec.name]
    on_bridge += [_dhcp_client.parse_client(step.args["argv"]) for step in plan.steps if step.op == "start_dhcp_client"]
    if spec.state == "present" and before.link(spec.name) is not None:
        watch.update(before.ports_of(spec.name))
    shown_ports = tuple(p for p in spec.ports if before.link(p) is not None)
    predicted = simulate(before, plan.steps)
    result = {
        "changed": plan.changed,
        "actions": plan.actions,
        "diff": {
            "before": bridge_view(before, spec.name, shown_ports),
            "after": bridge_view(predicted, spec.name, shown_ports),
            "before_header": "%s (runtime)" % spec.name,
            "after_header": "%s (runtime)" % spec.name,
        },
        "bridge": bridge_view(predicted, spec.name),
        "expiring_addresses": expiring_addresses(predicted, spec.name, on_bridge),
        "dhcp_clients": [client_view(c) for c in on_bridge],
    }
    if plan.warnings:
        result["warnings"] = plan.warnings
    if check_mode or not plan.changed:
        return result
    # Only a change needs pyroute2.
    with session() as ipr:
        try:
            apply_plan(KernelApplier(ipr, module), plan, fail_after_step=fail_after_step)
        except ApplyError as exc:
            raise _failure(exc, before, read_snapshot(), watch, plan) from exc
    after = read_snapshot()
    result["diff"]["after"] = bridge_view(after, spec.name, shown_ports)
    result["bridge"] = bridge_view(after, spec.name)
    on_bridge = find_clients([spec.name])
    result["expiring_addresses"] = expiring_addresses(after, spec.name, on_bridge)
    result["dhcp_clients"] = [client_view(c) for c in on_bridge]
    return result


def _failure(exc, before, now, watch, plan):
    left = state_differences(runtime_state(before, watch), runtime_state(now, watch))
    restored = not exc.restore_errors and not left
    msg = "Step %d of %d failed (%s): %s." % (exc.step_number, len(plan.steps), exc.step.description if exc.step else "-", describe_error(exc.cause))
    if restored:
        if exc.done:
            msg += " The previous runtime state was restored (%d applied step(s) undone); nothing is changed." % len(exc.done)
        else:
            msg += " Nothing was changed."
    else:
        msg += " Restoring the previous runtime state did not fully succeed: %s. Check the host from its console." % "; ".join(exc.restore_errors + left)
    return ModuleError(
        msg,
        changed=not restored,
        restored=restored,
        failed_step=exc.step_number,
        actions=exc.done,
        restore_errors=exc.restore_errors,
        differences=left,
    )
