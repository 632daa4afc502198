# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading the kernel: the snapshot records and one dump of links, addresses and routes.

read_snapshot() dumps links, addresses and routes once (with _rtnl's
standard-library reader, no pyroute2) into a Snapshot of plain records (Link,
Address, Route) that name devices by name, never by index. The classifiers
(link_class(), is_guest_port(), is_migratable_address(), is_movable_route(),
stacked_on()) and runtime_state() say what a bridging may move and what a
restore must bring back. Nothing here changes the kernel.

PRIVATE: this module is internal to kvmhost.bridging; it is not part of the
public API and may change without notice.
"""

from __future__ import annotations

import copy
import dataclasses
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from socket import AF_INET, AF_INET6
from typing import TYPE_CHECKING, Any, cast

from ansible_collections.kvmhost.bridging.plugins.module_utils._rtnl import MessageSource

if TYPE_CHECKING:
    from collections.abc import Mapping

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
OPTION_NLA = {name: nla for name, nla, _how in BRIDGE_OPTIONS}
OPTION_HOW = {name: how for name, _nla, how in BRIDGE_OPTIONS}
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

# Kinds of links that sit on top of a lower device (IFLA_LINK) in the same namespace.
STACKED_KINDS = ("vlan", "macvlan", "macvtap", "ipvlan", "ipvtap")


# --------------------------------------------------------------------------
# Validation (interface names and MACs: _names)
# --------------------------------------------------------------------------
def normalize_ip(text: object) -> str | None:
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
    bridge: dict[str, int] = field(default_factory=dict)  # bridge options (BRIDGE_OPTION_NAMES), netlink units


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
    def ip(self) -> str:
        """Our own address on the device (IFA_LOCAL for IPv4, IFA_ADDRESS for IPv6)."""
        return self.local or self.address

    @property
    def cidr(self) -> str:
        text = "%s/%d" % (self.ip, self.prefixlen)
        if self.local and self.address and self.local != self.address:
            text = "%s peer %s/%d" % (self.local, self.address, self.prefixlen)
        return text

    @property
    def key(self) -> tuple[int, str]:
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
    metrics: tuple[tuple[str, int | str], ...] = ()  # ((RTAX_NAME, value), ...): RTAX_CC_ALGO is a name, the others numbers
    multipath: tuple[Nexthop, ...] = ()
    unsupported: tuple[str, ...] = ()  # names of attributes that cannot be copied

    @property
    def expires(self) -> bool:
        """True for a route with a lifetime (the kernel's own from router advertisements)."""
        return "RTA_EXPIRES" in self.unsupported

    @property
    def devices(self) -> tuple[str | None, ...]:
        if self.multipath:
            return tuple(nh.dev for nh in self.multipath)
        return (self.dev,)

    def uses(self, name: str) -> bool:
        return name in self.devices

    @property
    def key(self) -> tuple[int | str | None, ...]:
        """What the kernel tells routes apart by in a table (a replace swaps the route with this key)."""
        if self.family == AF_INET6:
            return (self.family, self.table, self.dst, self.dst_len, self.src, self.src_len, self.priority or 1024)
        return (self.family, self.table, self.dst, self.dst_len, self.tos, self.priority or 0)

    def on(self, old: str, new: str) -> Route:
        """This route with device ``old`` replaced by ``new`` (also in the nexthops)."""
        if self.multipath:
            hops = tuple(replace(nh, dev=new) if nh.dev == old else nh for nh in self.multipath)
            return replace(self, multipath=hops)
        return replace(self, dev=new if self.dev == old else self.dev)

    def describe(self) -> str:
        """iproute2-like text, e.g. ``default via 198.18.0.1 dev eth0 proto boot``."""
        words: list[str] = []
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

    def __init__(self, links: Iterable[Link] = (), addresses: Iterable[Address] = (), routes: Iterable[Route] = ()) -> None:
        self.links = {link.name: link for link in links}
        self.addresses = list(addresses)
        self.routes = list(routes)

    def link(self, name: str) -> Link | None:
        return self.links.get(name)

    def addresses_on(self, name: str) -> list[Address]:
        return [a for a in self.addresses if a.dev == name]

    def routes_using(self, name: str) -> list[Route]:
        return [r for r in self.routes if r.uses(name)]

    def ports_of(self, name: str) -> list[str]:
        """Names of the links enslaved to ``name``, in ifindex order."""
        return [link.name for link in sorted(self.links.values(), key=lambda x: x.index) if link.master == name]

    def copy(self) -> Snapshot:
        return copy.deepcopy(self)


# --------------------------------------------------------------------------
# Reading the kernel: one session, one dump of each table
# --------------------------------------------------------------------------
def _nla(msg: Any, name: str) -> Any:
    """Attribute ``name`` of a pyroute2 message or nested attribute, or None."""
    if msg is None:
        return None
    try:
        return msg.get_attr(name)
    except (AttributeError, KeyError, TypeError):
        return None


def _field(msg: Any, name: str, default: Any = 0) -> Any:
    try:
        value = msg[name]
    except (KeyError, TypeError):
        return default
    return default if value is None else value


def links_from_messages(messages: Iterable[Any]) -> list[Link]:
    """Link records from RTM_NEWLINK messages (a link dump)."""
    messages = list(messages)
    names = {_field(m, "index"): _nla(m, "IFLA_IFNAME") for m in messages}
    links = []
    for msg in messages:
        info = _nla(msg, "IFLA_LINKINFO")
        kind = _nla(info, "IFLA_INFO_KIND") or ""
        bridge: dict[str, int] = {}
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


def _ifname(names: Mapping[int, str], index: int | None) -> str | None:
    return names.get(index, "if%d" % index) if index else None


def addresses_from_messages(messages: Iterable[Any], names: dict[int, str]) -> list[Address]:
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
                dev=cast(str, _ifname(names, _field(msg, "index"))),  # ifa_index 0 only in a malformed message; kept as it came
                family=family,
                address=cast(str, address or local),  # None only in a malformed message; kept as it came
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


def routes_from_messages(messages: Iterable[Any], names: dict[int, str]) -> list[Route]:
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


def read_snapshot(source: Any = None) -> Snapshot:
    """Dump links, addresses and IPv4/IPv6 routes (all tables) into a Snapshot.

    ``source`` answers get_links(), get_addr() and get_routes(family): by
    default _rtnl's standard-library reader (no pyroute2); a pyroute2 IPRoute
    answers the same calls with the same message interface.
    """
    ipr = source if source is not None else MessageSource()
    links = links_from_messages(ipr.get_links())
    names = {link.index: link.name for link in links}
    addresses = addresses_from_messages(ipr.get_addr(), names)
    routes: list[Route] = []
    for family in (AF_INET, AF_INET6):
        routes.extend(routes_from_messages(ipr.get_routes(family=family), names))
    return Snapshot(links, addresses, routes)


# --------------------------------------------------------------------------
# Classification
# --------------------------------------------------------------------------
def link_class(link: Link) -> str:
    """What a link is, for messages and rules: loopback, bridge, bond, team, vlan, veth, tap, physical or its kind."""
    if link.loopback or link.name == "lo":
        return "loopback"
    if link.kind == "tun":
        return "tap"
    if not link.kind:
        return "physical"
    return link.kind


def is_guest_port(link: Link) -> bool:
    """True for a guest's port (a tun/tap opened by qemu): never the source of a bridge's MAC."""
    return link.kind == "tun"


def stacked_on(snapshot: Snapshot, link: Link, target: str) -> bool:
    """True if ``link`` is ``target`` or sits on it through a chain of lower devices (vlan, macvlan...)."""
    seen: set[str] = set()
    current: Link | None = link
    while current is not None and current.name not in seen:
        if current.name == target:
            return True
        seen.add(current.name)
        if current.kind not in STACKED_KINDS or not current.lower:
            return False
        current = snapshot.link(current.lower)
    return False


def is_link_local(address: Address) -> bool:
    try:
        return ipaddress.ip_address(address.ip).is_link_local and address.family == AF_INET6
    except ValueError:
        return False


def is_migratable_address(address: Address) -> bool:
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


def prefix_route_of(route: Route, address: Address) -> bool:
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


def kernel_prefix_route(address: Address) -> Route | None:
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


def is_movable_route(route: Route, addresses: Iterable[Address] | None = None) -> bool:
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
    return not any(prefix_route_of(route, address) for address in addresses)


# --------------------------------------------------------------------------
# Bridge options: user units <-> netlink units
# --------------------------------------------------------------------------
def option_to_kernel(name: str, value: Any) -> int:
    """Netlink value of a bridge option given in user units (seconds, bool, int)."""
    how = OPTION_HOW[name]
    if how == "time":
        return round(float(value) * USER_HZ)
    if how == "bool":
        return 1 if value else 0
    return int(value)


def option_from_kernel(name: str, raw: int) -> int | float | bool:
    """User-unit value of a bridge option read from netlink."""
    how = OPTION_HOW[name]
    if how == "time":
        seconds = raw / float(USER_HZ)
        return int(seconds) if seconds == int(seconds) else seconds
    if how == "bool":
        return bool(raw)
    return int(raw)


def option_matches(name: str, current: int | None, desired: int) -> bool:
    """Compare netlink values; timers tolerate one hundredth (the kernel keeps them in jiffies)."""
    if current is None:
        return False
    how = OPTION_HOW[name]
    if how == "time":
        return abs(int(current) - int(desired)) <= 1
    if how == "bool":
        return bool(current) == bool(desired)
    return int(current) == int(desired)


def linkinfo_bridge(options: dict[str, int]) -> dict[str, Any]:
    """IFLA_LINKINFO for a bridge with ``options`` ({option name: netlink value})."""
    attrs = [[OPTION_NLA[name], int(value)] for name, value in options.items()]
    info: list[list[Any]] = [["IFLA_INFO_KIND", "bridge"]]
    if attrs:
        info.append(["IFLA_INFO_DATA", {"attrs": attrs}])
    return {"attrs": info}


# --------------------------------------------------------------------------
# Views: what the diff and the result show
# --------------------------------------------------------------------------
def runtime_state(snapshot: Snapshot, names: Iterable[str]) -> dict[str, dict[str, Any] | None]:
    """What a restore must bring back for ``names``: existence, kind, master, link state, MAC, MTU,
    bridge options, addresses (without their lifetimes, which run on) and the user's routes."""
    state: dict[str, dict[str, Any] | None] = {}
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


def state_differences(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Human-readable differences between two runtime_state() results."""
    problems: list[str] = []
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
# Snapshots as plain JSON values (the guard's state file)
# --------------------------------------------------------------------------
def snapshot_to_json(snapshot: Snapshot) -> dict[str, Any]:
    """A Snapshot as plain JSON values."""
    return {
        "links": [dataclasses.asdict(link) for link in snapshot.links.values()],
        "addresses": [dataclasses.asdict(address) for address in snapshot.addresses],
        "routes": [dataclasses.asdict(route) for route in snapshot.routes],
    }


def _route_from_json(data: Mapping[str, Any]) -> Route:
    data = dict(data)
    data["multipath"] = tuple(Nexthop(**hop) for hop in data.get("multipath") or ())
    data["metrics"] = tuple(tuple(pair) for pair in data.get("metrics") or ())
    data["unsupported"] = tuple(data.get("unsupported") or ())
    return Route(**data)


def snapshot_from_json(data: dict[str, Any]) -> Snapshot:
    """The Snapshot that snapshot_to_json() was given."""
    return Snapshot(
        links=[Link(**link) for link in data.get("links") or ()],
        addresses=[Address(**address) for address in data.get("addresses") or ()],
        routes=[_route_from_json(route) for route in data.get("routes") or ()],
    )
