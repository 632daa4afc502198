# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading links and addresses over rtnetlink with the standard library only.

The read path of tap and bridge_info: one RTM_GETLINK dump (and one
RTM_GETADDR dump) over a plain AF_NETLINK socket, parsed with ``struct`` into
the plain records the planners use. It needs neither pyroute2 nor root, and
it costs a few milliseconds per thousand links where pyroute2's generic
decoder costs about a second (bench/raw/link_dump.py measures both), so a
task that finds nothing to do never imports pyroute2 at all. Changes are
still made with pyroute2.

Wire formats (linux/netlink.h, linux/rtnetlink.h, linux/if_link.h,
linux/if_addr.h): a netlink message is a 16-byte header (length, type, flags,
sequence, port id), a fixed family header (struct ifinfomsg: 16 bytes;
struct ifaddrmsg: 8 bytes) and then attributes, each a 4-byte header (length,
type) and a payload padded to 4 bytes. Nested attributes (IFLA_LINKINFO and
the kind's data) use the same layout inside the payload.

PRIVATE: this module is internal to kvmhost.bridging; it is not part of the
public API and may change without notice.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
    from typing import TypeVar, Union

    # A received datagram (or a test's bytes) and a payload's (start, end) in it.
    Buffer = Union[bytes, bytearray, memoryview]
    Span = tuple[int, int]
    # An attribute's kernel name and the function that decodes its payload.
    Decoder = Callable[[Buffer, Span], Any]
    Schema = Mapping[int, tuple[str, Decoder]]
    T = TypeVar("T")

NETLINK_ROUTE = 0
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_DUMP = 0x1, 0x2, 0x300
NLM_F_DUMP_INTR = 0x10
RTM_NEWLINK, RTM_GETLINK = 16, 18
RTM_NEWADDR, RTM_GETADDR = 20, 22
NLA_TYPE_MASK = 0x3FFF  # drops NLA_F_NESTED and NLA_F_NET_BYTEORDER

IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_MASTER = 1, 3, 4, 10
IFLA_OPERSTATE, IFLA_LINKINFO, IFLA_GROUP, IFLA_EXT_MASK, IFLA_CARRIER = 16, 18, 27, 29, 33
IFLA_INFO_KIND, IFLA_INFO_DATA, IFLA_INFO_SLAVE_KIND, IFLA_INFO_SLAVE_DATA = 1, 2, 4, 5
RTEXT_FILTER_SKIP_STATS = 1 << 3  # leave out IFLA_STATS/STATS64: a third of each message

IFLA_TUN_OWNER, IFLA_TUN_GROUP, IFLA_TUN_TYPE, IFLA_TUN_PI = 1, 2, 3, 4
IFLA_TUN_VNET_HDR, IFLA_TUN_PERSIST, IFLA_TUN_MULTI_QUEUE = 5, 6, 7
IFLA_TUN_NUM_QUEUES, IFLA_TUN_NUM_DISABLED_QUEUES = 8, 9
IFLA_BR_FORWARD_DELAY, IFLA_BR_STP_STATE, IFLA_BR_PRIORITY, IFLA_BR_BRIDGE_ID = 1, 5, 6, 11
IFLA_BRPORT_STATE = 1

IFA_ADDRESS, IFA_LOCAL = 1, 2

IFF_UP = 0x1
# RFC 2863 operational states, as the kernel numbers them (IF_OPER_*).
OPERSTATES = ("unknown", "notpresent", "down", "lowerlayerdown", "testing", "dormant", "up")

_NLMSGHDR = struct.Struct("=IHHII")
_IFINFOMSG = struct.Struct("=BxHiII")
_IFADDRMSG = struct.Struct("=BBBBI")
_NLATTR = struct.Struct("=HH")
_U8, _U16, _U32 = struct.Struct("=B"), struct.Struct("=H"), struct.Struct("=I")
RECV_BUFFER = 1 << 16


class RtnlError(OSError):
    """A dump the kernel refused or that could not be read."""


def attributes(buf: Buffer, start: int, end: int) -> dict[int, Span]:
    """{attribute type: (payload start, payload end)} of the attributes in ``buf[start:end]``.

    A later attribute of the same type wins, as in the kernel's own parsers. A
    truncated or malformed attribute ends the walk.
    """
    return dict(attributes_in_order(buf, start, end))


def attributes_in_order(buf: Buffer, start: int, end: int) -> list[tuple[int, Span]]:
    """(type, (payload start, payload end)) of every attribute in ``buf[start:end]``, in order, repeats kept."""
    found: list[tuple[int, Span]] = []
    offset = start
    while offset + _NLATTR.size <= end:
        length, kind = _NLATTR.unpack_from(buf, offset)
        if length < _NLATTR.size or offset + length > end:
            break
        found.append((kind & NLA_TYPE_MASK, (offset + _NLATTR.size, offset + length)))
        offset += (length + 3) & ~3
    return found


def _string(buf: Buffer, span: Span) -> str:
    return bytes(buf[span[0] : span[1]]).split(b"\0", 1)[0].decode("utf-8", "replace")


def _unsigned(buf: Buffer, span: Span) -> int | None:
    """A u8, u16 or u32 payload (the kernel sends the attribute's own width)."""
    size = span[1] - span[0]
    value: int  # struct's "I", "H" and "B" unpack to int
    if size >= 4:
        value = _U32.unpack_from(buf, span[0])[0]
    elif size >= 2:
        value = _U16.unpack_from(buf, span[0])[0]
    elif size >= 1:
        value = _U8.unpack_from(buf, span[0])[0]
    else:
        return None
    return value


def _get(buf: Buffer, attrs: Mapping[int, Span], kind: int, reader: Callable[[Buffer, Span], T]) -> T | None:
    span = attrs.get(kind)
    return None if span is None else reader(buf, span)


def _hwaddr(buf: Buffer, span: Span) -> str | None:
    raw = bytes(buf[span[0] : span[1]])
    return ":".join("%02x" % octet for octet in raw) if raw else None


def _tun(buf: Buffer, data: Mapping[int, Span]) -> dict[str, Any]:
    def flag(kind: int) -> bool:
        return bool(_get(buf, data, kind, _unsigned))

    return {
        "type": _get(buf, data, IFLA_TUN_TYPE, _unsigned),
        "pi": flag(IFLA_TUN_PI),
        "vnet_hdr": flag(IFLA_TUN_VNET_HDR),
        "multi_queue": flag(IFLA_TUN_MULTI_QUEUE),
        "persist": flag(IFLA_TUN_PERSIST),
        "owner": _get(buf, data, IFLA_TUN_OWNER, _unsigned),
        "group": _get(buf, data, IFLA_TUN_GROUP, _unsigned),
        "num_queues": _get(buf, data, IFLA_TUN_NUM_QUEUES, _unsigned) or 0,
        "num_disabled_queues": _get(buf, data, IFLA_TUN_NUM_DISABLED_QUEUES, _unsigned) or 0,
    }


def _bridge(buf: Buffer, data: Mapping[int, Span]) -> dict[str, Any]:
    span = data.get(IFLA_BR_BRIDGE_ID)
    # struct ifla_bridge_id: two priority bytes, then the six-byte address.
    id_addr = _hwaddr(buf, (span[0] + 2, span[1])) if span is not None and span[1] - span[0] >= 8 else None
    return {
        "stp_state": _get(buf, data, IFLA_BR_STP_STATE, _unsigned) or 0,
        "forward_delay": _get(buf, data, IFLA_BR_FORWARD_DELAY, _unsigned),
        "priority": _get(buf, data, IFLA_BR_PRIORITY, _unsigned),
        "id_addr": id_addr,
    }


def link_from_message(buf: Buffer, start: int, end: int) -> dict[str, Any]:
    """The record of one RTM_NEWLINK message whose body (after the netlink header) is ``buf[start:end]``.

    Keys: index, name, kind, slave_kind, master (ifindex or None), mac, mtu,
    up, carrier, operstate, group, tun (dict or None), br (dict or None),
    brport (dict or None).
    """
    _family, _type, index, flags, _change = _IFINFOMSG.unpack_from(buf, start)
    attrs = attributes(buf, start + _IFINFOMSG.size, end)
    operstate = _get(buf, attrs, IFLA_OPERSTATE, _unsigned)
    rec: dict[str, Any] = {
        "index": index,
        "name": _get(buf, attrs, IFLA_IFNAME, _string),
        "kind": None,
        "slave_kind": None,
        "master": _get(buf, attrs, IFLA_MASTER, _unsigned) or None,
        "mac": _get(buf, attrs, IFLA_ADDRESS, _hwaddr),
        "mtu": _get(buf, attrs, IFLA_MTU, _unsigned),
        "up": bool(flags & IFF_UP),
        "carrier": bool(_get(buf, attrs, IFLA_CARRIER, _unsigned)),
        "operstate": OPERSTATES[operstate] if operstate is not None and operstate < len(OPERSTATES) else "unknown",
        "group": _get(buf, attrs, IFLA_GROUP, _unsigned) or 0,
        "tun": None,
        "br": None,
        "brport": None,
    }
    span = attrs.get(IFLA_LINKINFO)
    if span is None:
        return rec
    info = attributes(buf, *span)
    rec["kind"] = _get(buf, info, IFLA_INFO_KIND, _string)
    rec["slave_kind"] = _get(buf, info, IFLA_INFO_SLAVE_KIND, _string)
    data = attributes(buf, *info[IFLA_INFO_DATA]) if IFLA_INFO_DATA in info else None
    if data is not None and rec["kind"] == "tun":
        rec["tun"] = _tun(buf, data)
    elif data is not None and rec["kind"] == "bridge":
        rec["br"] = _bridge(buf, data)
    if rec["slave_kind"] == "bridge" and IFLA_INFO_SLAVE_DATA in info:
        slave = attributes(buf, *info[IFLA_INFO_SLAVE_DATA])
        rec["brport"] = {"state": _get(buf, slave, IFLA_BRPORT_STATE, _unsigned)}
    return rec


def _ip(buf: Buffer, span: Span, family: int) -> str | None:
    raw = bytes(buf[span[0] : span[1]])
    try:
        return socket.inet_ntop(family, raw)
    except (ValueError, OSError):
        return None


def address_from_message(buf: Buffer, start: int, end: int) -> dict[str, Any]:
    """The record of one RTM_NEWADDR message: index, family (ipv4/ipv6/number), address, prefixlen.

    For IPv4 the address is IFA_LOCAL (the interface's own address; IFA_ADDRESS
    is the peer on point-to-point links), as ``ip address`` shows it.
    """
    family, prefixlen, _flags, _scope, index = _IFADDRMSG.unpack_from(buf, start)
    attrs = attributes(buf, start + _IFADDRMSG.size, end)
    address = None
    if family in (socket.AF_INET, socket.AF_INET6):
        for kind in (IFA_LOCAL, IFA_ADDRESS) if family == socket.AF_INET else (IFA_ADDRESS, IFA_LOCAL):
            if kind in attrs:
                address = _ip(buf, attrs[kind], family)
                break
    return {
        "index": index,
        "family": "ipv4" if family == socket.AF_INET else "ipv6" if family == socket.AF_INET6 else str(family),
        "address": address,
        "prefixlen": prefixlen,
    }


def parse_dump(chunks: Iterable[bytes], message_type: int, parse: Callable[[memoryview, int, int], T], seq: int) -> list[T]:
    """Records from the datagrams of one dump; stops at NLMSG_DONE.

    ``chunks`` yields received datagrams. Raises RtnlError for an error
    message, for an interrupted dump (NLM_F_DUMP_INTR: the table changed while
    it was read; the caller reads it again) and for a dump that ends early.
    """
    records: list[T] = []
    for data in chunks:
        view = memoryview(data)
        offset = 0
        while offset + _NLMSGHDR.size <= len(view):
            length, kind, flags, msg_seq, _port = _NLMSGHDR.unpack_from(view, offset)
            if length < _NLMSGHDR.size or offset + length > len(view):
                raise RtnlError(errno.EBADMSG, "truncated netlink message in the dump")
            body = offset + _NLMSGHDR.size
            if msg_seq == seq:
                if flags & NLM_F_DUMP_INTR:
                    raise RtnlError(errno.EINTR, "the kernel's table changed during the dump")
                if kind == NLMSG_DONE:
                    # A dump's DONE carries an int: a negative errno when the dump failed part way.
                    code = struct.unpack_from("=i", view, body)[0] if length >= _NLMSGHDR.size + 4 else 0
                    if code < 0:
                        raise RtnlError(-code, os.strerror(-code))
                    return records
                if kind == NLMSG_ERROR:
                    code = struct.unpack_from("=i", view, body)[0]
                    if code:
                        raise RtnlError(-code, os.strerror(-code))
                    return records
                if kind == message_type:
                    records.append(parse(view, body, offset + length))
            offset += (length + 3) & ~3
    raise RtnlError(errno.EPIPE, "the netlink dump ended without NLMSG_DONE")


def _receive(sock: socket.socket) -> Iterator[bytes]:
    while True:
        data = sock.recv(RECV_BUFFER)
        if not data:
            return
        yield data


def _dump(request_type: int, body: bytes, message_type: int, parse: Callable[[memoryview, int, int], T], attempts: int = 3) -> list[T]:
    """One netlink dump of the current network namespace, retried if the kernel reports it interrupted."""
    for attempt in range(attempts):
        seq = attempt + 1
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
        try:
            sock.bind((0, 0))
            header = _NLMSGHDR.pack(_NLMSGHDR.size + len(body), request_type, NLM_F_REQUEST | NLM_F_DUMP, seq, 0)
            sock.sendall(header + body)
            return parse_dump(_receive(sock), message_type, parse, seq)
        except RtnlError as exc:
            if exc.errno != errno.EINTR or attempt == attempts - 1:
                raise
        finally:
            sock.close()
    raise RtnlError(errno.EINTR, "the kernel's table kept changing during the dump")  # pragma: no cover


def dump_links() -> list[dict[str, Any]]:
    """Every link of the current network namespace as a record (see link_from_message)."""
    body = _IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + _NLATTR.pack(8, IFLA_EXT_MASK) + _U32.pack(RTEXT_FILTER_SKIP_STATS)
    return _dump(RTM_GETLINK, body, RTM_NEWLINK, link_from_message)


def dump_addresses() -> list[dict[str, Any]]:
    """Every IPv4 and IPv6 address of the current network namespace as a record (see address_from_message)."""
    body = _IFADDRMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
    return _dump(RTM_GETADDR, body, RTM_NEWADDR, address_from_message)


# ---------------------------------------------------------------------------
# Whole messages with named attributes, for the bridge planner (_kernel_snapshot)
#
# _kernel_snapshot reads links, addresses and routes through the interface it first
# used with pyroute2: ``msg[field]`` for the fixed header and
# ``msg.get_attr("IFLA_...")`` for attributes, nested ones being messages too.
# Message gives the same interface from the wire format, for the attributes
# the planner reads; others are skipped.


if TYPE_CHECKING:
    _MessageBase = dict[str, Any]
else:  # the plain dict at run time: no typing generics in the class's MRO
    _MessageBase = dict


class Message(_MessageBase):
    """Header fields as dict items; attributes by their kernel names through get_attr()."""

    def __init__(self, fields: Mapping[str, Any] | None = None, attrs: dict[str, Any] | None = None) -> None:
        super().__init__(fields or {})
        self.attrs: dict[str, Any] = attrs or {}

    def get_attr(self, name: str, default: Any = None) -> Any:
        return self.attrs.get(name, default)


def _signed(buf: Buffer, span: Span) -> int | None:
    return struct.unpack_from("=i", buf, span[0])[0] if span[1] - span[0] >= 4 else None


def _present(buf: Buffer, span: Span) -> bytes:
    """An attribute the planner only needs to know is there."""
    return bytes(buf[span[0] : span[1]])


def _address_of(family: int) -> Callable[[Buffer, Span], str | None]:
    def decode(buf: Buffer, span: Span) -> str | None:
        return _ip(buf, span, family)

    return decode


def _struct(fmt: str, names: Sequence[str]) -> Callable[[Buffer, Span], Message | None]:
    layout = struct.Struct(fmt)

    def decode(buf: Buffer, span: Span) -> Message | None:
        if span[1] - span[0] < layout.size:
            return None
        return Message(dict(zip(names, layout.unpack_from(buf, span[0]))))

    return decode


def _nested(schema: Schema) -> Callable[[Buffer, Span], Message]:
    def decode(buf: Buffer, span: Span) -> Message:
        return Message(attrs=_named(buf, attributes(buf, *span), schema))

    return decode


def _named(buf: Buffer, attrs: Mapping[int, Span], schema: Schema) -> dict[str, Any]:
    named: dict[str, Any] = {}
    for kind, span in attrs.items():
        entry = schema.get(kind)
        if entry is not None:
            named[entry[0]] = entry[1](buf, span)
    return named


# Route metrics (RTAX_*, linux/rtnetlink.h), with the names pyroute2 uses to set them again.
RTAX_NAMES = (
    None, "RTAX_LOCK", "RTAX_MTU", "RTAX_WINDOW", "RTAX_RTT", "RTAX_RTTVAR", "RTAX_SSTHRESH", "RTAX_CWND",
    "RTAX_ADVMSS", "RTAX_REORDERING", "RTAX_HOPLIMIT", "RTAX_INITCWND", "RTAX_FEATURES", "RTAX_RTO_MIN",
    "RTAX_INITRWND", "RTAX_QUICKACK", "RTAX_CC_ALGO", "RTAX_FASTOPEN_NO_COOKIE",
)  # fmt: skip
RTAX_CC_ALGO = 16


def _metrics(buf: Buffer, span: Span) -> Message:
    """RTA_METRICS as pyroute2 shows it: a message whose "attrs" item lists (name, value) in the kernel's order."""
    pairs: list[tuple[str | None, str | int | None]] = []
    for kind, inner in attributes_in_order(buf, *span):
        name = RTAX_NAMES[kind] if kind < len(RTAX_NAMES) else "RTAX_%d" % kind
        pairs.append((name, _string(buf, inner) if kind == RTAX_CC_ALGO else _unsigned(buf, inner)))
    return Message({"attrs": pairs})


_RTNEXTHOP = struct.Struct("=HBBi")  # struct rtnexthop: length, flags, hops, ifindex


def _multipath(family: int) -> Callable[[Buffer, Span], list[Message]]:
    schema = {5: ("RTA_GATEWAY", _address_of(family))}

    def decode(buf: Buffer, span: Span) -> list[Message]:
        hops = []
        offset, end = span
        while offset + _RTNEXTHOP.size <= end:
            length, flags, hops_count, ifindex = _RTNEXTHOP.unpack_from(buf, offset)
            if length < _RTNEXTHOP.size or offset + length > end:
                break
            attrs = attributes(buf, offset + _RTNEXTHOP.size, offset + length)
            hops.append(Message({"oif": ifindex, "hops": hops_count, "flags": flags}, _named(buf, attrs, schema)))
            offset += (length + 3) & ~3
        return hops

    return decode


_BRIDGE_DATA = {
    1: ("IFLA_BR_FORWARD_DELAY", _unsigned),
    2: ("IFLA_BR_HELLO_TIME", _unsigned),
    3: ("IFLA_BR_MAX_AGE", _unsigned),
    4: ("IFLA_BR_AGEING_TIME", _unsigned),
    5: ("IFLA_BR_STP_STATE", _unsigned),
    6: ("IFLA_BR_PRIORITY", _unsigned),
    7: ("IFLA_BR_VLAN_FILTERING", _unsigned),
}


def _linkinfo(buf: Buffer, span: Span) -> Message:
    info = attributes(buf, *span)
    named = _named(buf, info, {IFLA_INFO_KIND: ("IFLA_INFO_KIND", _string), IFLA_INFO_SLAVE_KIND: ("IFLA_INFO_SLAVE_KIND", _string)})
    if IFLA_INFO_DATA in info and named.get("IFLA_INFO_KIND") == "bridge":
        named["IFLA_INFO_DATA"] = _nested(_BRIDGE_DATA)(buf, info[IFLA_INFO_DATA])
    return Message(attrs=named)


IFLA_LINK, IFLA_LINK_NETNSID = 5, 37
_LINK_SCHEMA = {
    IFLA_ADDRESS: ("IFLA_ADDRESS", _hwaddr),
    IFLA_IFNAME: ("IFLA_IFNAME", _string),
    IFLA_MTU: ("IFLA_MTU", _unsigned),
    IFLA_LINK: ("IFLA_LINK", _unsigned),
    IFLA_MASTER: ("IFLA_MASTER", _unsigned),
    IFLA_LINKINFO: ("IFLA_LINKINFO", _linkinfo),
    IFLA_LINK_NETNSID: ("IFLA_LINK_NETNSID", _signed),
}


def link_message(buf: Buffer, start: int, end: int) -> Message:
    family, kind, index, flags, change = _IFINFOMSG.unpack_from(buf, start)
    attrs = attributes(buf, start + _IFINFOMSG.size, end)
    return Message({"family": family, "ifi_type": kind, "index": index, "flags": flags, "change": change}, _named(buf, attrs, _LINK_SCHEMA))


_IFA_CACHEINFO = _struct("=IIII", ("ifa_preferred", "ifa_valid", "cstamp", "tstamp"))


def address_message(buf: Buffer, start: int, end: int) -> Message:
    family, prefixlen, flags, scope, index = _IFADDRMSG.unpack_from(buf, start)
    ip = _address_of(family)
    schema = {
        IFA_ADDRESS: ("IFA_ADDRESS", ip),
        IFA_LOCAL: ("IFA_LOCAL", ip),
        3: ("IFA_LABEL", _string),
        4: ("IFA_BROADCAST", ip),
        6: ("IFA_CACHEINFO", _IFA_CACHEINFO),
        8: ("IFA_FLAGS", _unsigned),
        9: ("IFA_RT_PRIORITY", _unsigned),
        11: ("IFA_PROTO", _unsigned),
    }
    attrs = attributes(buf, start + _IFADDRMSG.size, end)
    return Message({"family": family, "prefixlen": prefixlen, "flags": flags, "scope": scope, "index": index}, _named(buf, attrs, schema))


_RTMSG = struct.Struct("=BBBBBBBBI")  # struct rtmsg
_RTA_CACHEINFO = _struct("=IIiIIIII", ("rta_clntref", "rta_lastuse", "rta_expires", "rta_error", "rta_used", "rta_id", "rta_ts", "rta_tsage"))
RTM_NEWROUTE, RTM_GETROUTE = 24, 26


def route_message(buf: Buffer, start: int, end: int) -> Message:
    family, dst_len, src_len, tos, table, proto, scope, kind, flags = _RTMSG.unpack_from(buf, start)
    ip = _address_of(family)
    schema = {
        1: ("RTA_DST", ip),
        2: ("RTA_SRC", ip),
        4: ("RTA_OIF", _unsigned),
        5: ("RTA_GATEWAY", ip),
        6: ("RTA_PRIORITY", _unsigned),
        7: ("RTA_PREFSRC", ip),
        8: ("RTA_METRICS", _metrics),
        9: ("RTA_MULTIPATH", _multipath(family)),
        11: ("RTA_FLOW", _unsigned),
        12: ("RTA_CACHEINFO", _RTA_CACHEINFO),
        15: ("RTA_TABLE", _unsigned),
        18: ("RTA_VIA", _present),
        19: ("RTA_NEWDST", _present),
        20: ("RTA_PREF", _unsigned),
        22: ("RTA_ENCAP", _present),
        23: ("RTA_EXPIRES", _present),
        30: ("RTA_NH_ID", _unsigned),
    }
    fields = {"family": family, "dst_len": dst_len, "src_len": src_len, "tos": tos, "table": table}
    fields.update(proto=proto, scope=scope, type=kind, flags=flags)
    attrs = attributes(buf, start + _RTMSG.size, end)
    return Message(fields, _named(buf, attrs, schema))


class MessageSource:
    """The three dumps _kernel_snapshot.read_snapshot() asks for, answered from the wire without pyroute2."""

    @staticmethod
    def get_links() -> list[Message]:
        return _dump(RTM_GETLINK, _IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0), RTM_NEWLINK, link_message)

    @staticmethod
    def get_addr() -> list[Message]:
        return _dump(RTM_GETADDR, _IFADDRMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0), RTM_NEWADDR, address_message)

    @staticmethod
    def get_routes(family: int) -> list[Message]:
        # Every table: RTM_GETROUTE dumps all of them; the planner filters.
        return _dump(RTM_GETROUTE, _RTMSG.pack(family, 0, 0, 0, 0, 0, 0, 0, 0), RTM_NEWROUTE, route_message)
