"""The standard-library rtnetlink reader: wire bytes made by pyroute2's encoder, parsed by _rtnl.

pyroute2 is the reference: every message here is encoded by pyroute2 (the
library the collection used to read with), so the parser is checked against an
independent implementation of the same wire format. The kernel side is covered
by the integration tests (tests/integration/test_rtnl.py).
"""

from __future__ import annotations

import errno
import socket
import struct

import pytest

from ansible_collections.kvmhost.bridging.plugins.module_utils import _rtnl
from ansible_collections.kvmhost.bridging.plugins.module_utils._tap import is_held, is_tap

ifinfmsg = pytest.importorskip("pyroute2.netlink.rtnl.ifinfmsg").ifinfmsg
ifaddrmsg = pytest.importorskip("pyroute2.netlink.rtnl.ifaddrmsg").ifaddrmsg

SEQ = 7


def encoded(msg_class, fields, attrs, seq=SEQ, msg_type=None, flags=_rtnl.NLM_F_MULTI):
    """One complete netlink message (header included) as pyroute2 encodes it."""
    msg = msg_class()
    for key, value in fields.items():
        msg[key] = value
    msg["attrs"] = attrs
    msg["header"]["type"] = msg_type if msg_type is not None else (_rtnl.RTM_NEWLINK if msg_class is ifinfmsg else _rtnl.RTM_NEWADDR)
    msg["header"]["flags"] = flags
    msg["header"]["sequence_number"] = seq
    msg.encode()
    return bytes(msg.data)


def control(kind, code=0, seq=SEQ):
    """NLMSG_DONE or NLMSG_ERROR with an int payload (an error message also carries the request's header)."""
    payload = struct.pack("=i", code) + (b"\0" * 16 if kind == _rtnl.NLMSG_ERROR else b"")
    return struct.pack("=IHHII", 16 + len(payload), kind, _rtnl.NLM_F_MULTI, seq, 0) + payload


def links(*chunks):
    return _rtnl.parse_dump(iter(chunks), _rtnl.RTM_NEWLINK, _rtnl.link_from_message, SEQ)


TAP_ATTRS = [
    ("IFLA_IFNAME", "vnet0"),
    ("IFLA_ADDRESS", "52:54:00:AB:CD:EF"),
    ("IFLA_MTU", 9000),
    ("IFLA_MASTER", 3),
    ("IFLA_CARRIER", 1),
    ("IFLA_OPERSTATE", "UP"),
    ("IFLA_GROUP", 5),
    (
        "IFLA_LINKINFO",
        {
            "attrs": [
                ("IFLA_INFO_KIND", "tun"),
                ("IFLA_INFO_DATA", {"attrs": [("IFLA_TUN_TYPE", 2), ("IFLA_TUN_OWNER", 107), ("IFLA_TUN_VNET_HDR", 1), ("IFLA_TUN_PERSIST", 1)]}),
                ("IFLA_INFO_SLAVE_KIND", "bridge"),
                ("IFLA_INFO_SLAVE_DATA", {"attrs": [("IFLA_BRPORT_STATE", 3)]}),
            ]
        },
    ),
]


def test_a_tap_on_a_bridge():
    (rec,) = links(encoded(ifinfmsg, {"index": 7, "flags": 1}, TAP_ATTRS) + control(_rtnl.NLMSG_DONE))
    assert (rec["index"], rec["name"], rec["mac"], rec["kind"], rec["slave_kind"]) == (7, "vnet0", "52:54:00:ab:cd:ef", "tun", "bridge")
    assert (rec["mtu"], rec["master"], rec["up"], rec["carrier"], rec["operstate"], rec["group"]) == (9000, 3, True, True, "up", 5)
    assert rec["tun"] == {
        "type": 2,
        "pi": False,
        "vnet_hdr": True,
        "multi_queue": False,
        "persist": True,
        "owner": 107,
        "group": None,
        "num_queues": 0,
        "num_disabled_queues": 0,
    }
    assert rec["brport"] == {"state": 3}
    assert rec["br"] is None
    assert is_tap(rec)
    assert is_held(rec)


def test_a_plain_nic_has_defaults_for_what_the_kernel_left_out():
    (rec,) = links(encoded(ifinfmsg, {"index": 2, "flags": 0}, [("IFLA_IFNAME", "eth0"), ("IFLA_MTU", 1500)]) + control(_rtnl.NLMSG_DONE))
    assert rec == {
        "index": 2,
        "name": "eth0",
        "kind": None,
        "slave_kind": None,
        "master": None,
        "mac": None,
        "mtu": 1500,
        "up": False,
        "carrier": False,
        "operstate": "unknown",
        "group": 0,
        "tun": None,
        "br": None,
        "brport": None,
    }


def test_a_bridge_with_its_stp_settings_and_id():
    data = [
        ("IFLA_BR_FORWARD_DELAY", 1500),
        ("IFLA_BR_STP_STATE", 1),
        ("IFLA_BR_PRIORITY", 4096),
        ("IFLA_BR_BRIDGE_ID", {"prio": 4096, "addr": "52:54:00:aa:bb:cc"}),
    ]
    linkinfo = {"attrs": [("IFLA_INFO_KIND", "bridge"), ("IFLA_INFO_DATA", {"attrs": data})]}
    attrs = [("IFLA_IFNAME", "breth0"), ("IFLA_OPERSTATE", "LOWERLAYERDOWN"), ("IFLA_LINKINFO", linkinfo)]
    message = encoded(ifinfmsg, {"index": 3, "flags": 1}, attrs)
    (rec,) = links(message + control(_rtnl.NLMSG_DONE))
    assert rec["br"] == {"stp_state": 1, "forward_delay": 1500, "priority": 4096, "id_addr": "52:54:00:aa:bb:cc"}
    assert rec["operstate"] == "lowerlayerdown"
    assert rec["tun"] is None


def test_a_dump_spread_over_datagrams_with_foreign_messages():
    first = encoded(ifinfmsg, {"index": 1, "flags": 9}, [("IFLA_IFNAME", "lo")])
    other_seq = encoded(ifinfmsg, {"index": 99, "flags": 0}, [("IFLA_IFNAME", "stale")], seq=SEQ + 1)
    second = encoded(ifinfmsg, {"index": 7, "flags": 1}, TAP_ATTRS)
    result = links(first + other_seq, second, control(_rtnl.NLMSG_DONE))
    assert [rec["name"] for rec in result] == ["lo", "vnet0"]


def test_a_later_attribute_of_the_same_type_wins():
    (rec,) = links(encoded(ifinfmsg, {"index": 4, "flags": 0}, [("IFLA_IFNAME", "old"), ("IFLA_IFNAME", "new")]) + control(_rtnl.NLMSG_DONE))
    assert rec["name"] == "new"


def test_addresses_v4_takes_the_local_address_and_v6_the_address():
    v4 = encoded(ifaddrmsg, {"family": socket.AF_INET, "prefixlen": 30, "index": 3}, [("IFA_ADDRESS", "198.18.0.2"), ("IFA_LOCAL", "198.18.0.1")])
    v6 = encoded(ifaddrmsg, {"family": socket.AF_INET6, "prefixlen": 64, "index": 3}, [("IFA_ADDRESS", "fe80::1")])
    result = _rtnl.parse_dump(iter([v4 + v6 + control(_rtnl.NLMSG_DONE)]), _rtnl.RTM_NEWADDR, _rtnl.address_from_message, SEQ)
    assert result == [
        {"index": 3, "family": "ipv4", "address": "198.18.0.1", "prefixlen": 30},
        {"index": 3, "family": "ipv6", "address": "fe80::1", "prefixlen": 64},
    ]


def test_an_error_message_raises_with_the_errno():
    with pytest.raises(_rtnl.RtnlError) as caught:
        links(control(_rtnl.NLMSG_ERROR, -errno.EPERM))
    assert caught.value.errno == errno.EPERM
    assert "not permitted" in str(caught.value)


def test_a_done_with_a_negative_code_is_a_failed_dump():
    with pytest.raises(_rtnl.RtnlError) as caught:
        links(control(_rtnl.NLMSG_DONE, -errno.ENOBUFS))
    assert caught.value.errno == errno.ENOBUFS


def test_an_interrupted_dump_is_reported_for_a_retry():
    message = encoded(ifinfmsg, {"index": 1, "flags": 0}, [("IFLA_IFNAME", "lo")], flags=_rtnl.NLM_F_MULTI | _rtnl.NLM_F_DUMP_INTR)
    with pytest.raises(_rtnl.RtnlError) as caught:
        links(message + control(_rtnl.NLMSG_DONE))
    assert caught.value.errno == errno.EINTR


def test_a_truncated_message_and_a_dump_without_its_end_are_errors():
    message = encoded(ifinfmsg, {"index": 1, "flags": 0}, [("IFLA_IFNAME", "lo")])
    with pytest.raises(_rtnl.RtnlError, match="truncated"):
        links(message[:-4])
    with pytest.raises(_rtnl.RtnlError, match="without NLMSG_DONE"):
        links(message)


def test_malformed_attributes_end_the_walk_without_reading_past_the_message():
    buf = struct.pack("=HH", 9, 3) + b"eth0\0\0\0\0" + struct.pack("=HH", 2, 4) + struct.pack("=HH", 200, 4)
    assert _rtnl.attributes(buf, 0, len(buf)) == {3: (4, 9)}


def test_unsigned_follows_the_payload_width():
    assert _rtnl._unsigned(b"\x05", (0, 1)) == 5
    assert _rtnl._unsigned(struct.pack("=H", 4096), (0, 2)) == 4096
    assert _rtnl._unsigned(struct.pack("=I", 70000), (0, 4)) == 70000
    assert _rtnl._unsigned(b"", (0, 0)) is None


# ------------------------------------------- whole messages for _kernel_snapshot's snapshot

rtmsg = pytest.importorskip("pyroute2.netlink.rtnl.rtmsg").rtmsg


def both_ways(msg_class, fields, attrs, parse, msg_type):
    """The same wire bytes decoded by pyroute2 and by _rtnl."""
    data = encoded(msg_class, fields, attrs, msg_type=msg_type)
    theirs = msg_class(data)
    theirs.decode()
    (ours,) = _rtnl.parse_dump(iter([data + control(_rtnl.NLMSG_DONE)]), msg_type, parse, SEQ)
    return ours, theirs


def test_routes_decode_as_pyroute2_decodes_them():
    from ansible_collections.kvmhost.bridging.plugins.module_utils import _kernel_snapshot as ks

    names = {2: "eth0", 3: "eth1"}
    cases = [
        ({"family": socket.AF_INET, "dst_len": 0, "table": 254, "proto": 3, "scope": 0, "type": 1},
         [("RTA_TABLE", 254), ("RTA_GATEWAY", "198.18.0.1"), ("RTA_OIF", 2), ("RTA_PREFSRC", "198.18.0.2")]),
        ({"family": socket.AF_INET, "dst_len": 24, "table": 252, "proto": 4, "scope": 0, "type": 1, "tos": 16},
         [("RTA_TABLE", 1000), ("RTA_DST", "198.18.77.0"), ("RTA_PRIORITY", 7), ("RTA_FLOW", 7),
          ("RTA_METRICS", {"attrs": [("RTAX_LOCK", 4), ("RTAX_MTU", 1400), ("RTAX_CC_ALGO", "cubic")]}),
          ("RTA_MULTIPATH", [{"oif": 2, "hops": 1, "flags": 4, "attrs": [("RTA_GATEWAY", "198.18.0.9")]},
                             {"oif": 3, "hops": 0, "flags": 0, "attrs": [("RTA_GATEWAY", "198.18.1.9")]}])]),
        ({"family": socket.AF_INET6, "dst_len": 64, "table": 254, "proto": 3, "scope": 0, "type": 1},
         [("RTA_TABLE", 254), ("RTA_DST", "2001:db8:9::"), ("RTA_OIF", 2), ("RTA_PRIORITY", 1024), ("RTA_PREF", 1),
          ("RTA_GATEWAY", "fe80::1")]),
        ({"family": socket.AF_INET, "dst_len": 24, "table": 254, "proto": 4, "scope": 0, "type": 6},
         [("RTA_TABLE", 254), ("RTA_DST", "198.18.50.0")]),
    ]  # fmt: skip
    for fields, attrs in cases:
        ours, theirs = both_ways(rtmsg, fields, attrs, _rtnl.route_message, _rtnl.RTM_NEWROUTE)
        assert ks.routes_from_messages([ours], names) == ks.routes_from_messages([theirs], names)
    multi = ks.routes_from_messages([both_ways(rtmsg, *cases[1], _rtnl.route_message, _rtnl.RTM_NEWROUTE)[0]], names)[0]
    assert multi.metrics == (("RTAX_LOCK", 4), ("RTAX_MTU", 1400), ("RTAX_CC_ALGO", "cubic"))
    assert [(hop.dev, hop.gateway, hop.hops, hop.flags) for hop in multi.multipath] == [("eth0", "198.18.0.9", 1, 4), ("eth1", "198.18.1.9", 0, 0)]
    assert (multi.table, multi.tos, multi.flow, multi.priority) == (1000, 16, 7, 7)


def test_addresses_and_links_decode_as_pyroute2_decodes_them():
    from ansible_collections.kvmhost.bridging.plugins.module_utils import _kernel_snapshot as ks

    address_cases = [
        ({"family": socket.AF_INET, "prefixlen": 24, "flags": 0x80, "scope": 0, "index": 2},
         [("IFA_ADDRESS", "198.18.0.2"), ("IFA_LOCAL", "198.18.0.2"), ("IFA_LABEL", "eth0:a"), ("IFA_BROADCAST", "198.18.0.255"),
          ("IFA_FLAGS", 0x80), ("IFA_CACHEINFO", {"ifa_preferred": 0xFFFFFFFF, "ifa_valid": 0xFFFFFFFF, "cstamp": 1, "tstamp": 2})]),
        ({"family": socket.AF_INET, "prefixlen": 32, "flags": 0, "scope": 0, "index": 2},
         [("IFA_ADDRESS", "198.18.9.2"), ("IFA_LOCAL", "198.18.9.1"),
          ("IFA_CACHEINFO", {"ifa_preferred": 300, "ifa_valid": 600, "cstamp": 1, "tstamp": 2})]),
        ({"family": socket.AF_INET6, "prefixlen": 64, "flags": 0x02, "scope": 0, "index": 2},
         [("IFA_ADDRESS", "2001:db8::2"), ("IFA_FLAGS", 0x282), ("IFA_PROTO", 4)]),
    ]  # fmt: skip
    for fields, attrs in address_cases:
        ours, theirs = both_ways(ifaddrmsg, fields, attrs, _rtnl.address_message, _rtnl.RTM_NEWADDR)
        assert ks.addresses_from_messages([ours], {2: "eth0"}) == ks.addresses_from_messages([theirs], {2: "eth0"})
    bridge_data = {"attrs": [("IFLA_BR_FORWARD_DELAY", 400), ("IFLA_BR_HELLO_TIME", 300), ("IFLA_BR_STP_STATE", 1), ("IFLA_BR_PRIORITY", 4096)]}
    link_cases = [
        ({"index": 5, "flags": 1}, [("IFLA_IFNAME", "br0"), ("IFLA_ADDRESS", "52:54:00:AA:00:01"), ("IFLA_MTU", 1500),
                                    ("IFLA_LINKINFO", {"attrs": [("IFLA_INFO_KIND", "bridge"), ("IFLA_INFO_DATA", bridge_data)]})]),
        ({"index": 2, "flags": 1}, [("IFLA_IFNAME", "eth0"), ("IFLA_MASTER", 5), ("IFLA_LINK", 9), ("IFLA_LINK_NETNSID", 0),
                                    ("IFLA_LINKINFO", {"attrs": [("IFLA_INFO_KIND", "veth")]})]),
        ({"index": 1, "flags": 9}, [("IFLA_IFNAME", "lo"), ("IFLA_ADDRESS", "00:00:00:00:00:00"), ("IFLA_MTU", 65536)]),
    ]  # fmt: skip
    ours = [both_ways(ifinfmsg, f, a, _rtnl.link_message, _rtnl.RTM_NEWLINK)[0] for f, a in link_cases]
    theirs = [both_ways(ifinfmsg, f, a, _rtnl.link_message, _rtnl.RTM_NEWLINK)[1] for f, a in link_cases]
    assert ks.links_from_messages(ours) == ks.links_from_messages(theirs)
    assert ks.links_from_messages(ours)[0].bridge == {"stp": 1, "forward_delay": 400, "hello_time": 300, "priority": 4096}


def test_a_metric_pyroute2_cannot_set_makes_the_route_unsupported():
    from ansible_collections.kvmhost.bridging.plugins.module_utils import _kernel_snapshot as ks

    metrics = struct.pack("=HH", 8, 17) + struct.pack("=I", 1)  # RTAX_FASTOPEN_NO_COOKIE
    body = struct.pack("=BBBBBBBBI", socket.AF_INET, 24, 0, 0, 254, 4, 0, 1, 0)
    body += struct.pack("=HH", 8, 1) + socket.inet_aton("198.18.5.0") + struct.pack("=HH", 4 + len(metrics), 8) + metrics
    message = struct.pack("=IHHII", 16 + len(body), _rtnl.RTM_NEWROUTE, _rtnl.NLM_F_MULTI, SEQ, 0) + body
    (msg,) = _rtnl.parse_dump(iter([message + control(_rtnl.NLMSG_DONE)]), _rtnl.RTM_NEWROUTE, _rtnl.route_message, SEQ)
    (route,) = ks.routes_from_messages([msg], {})
    assert route.metrics == (("RTAX_FASTOPEN_NO_COOKIE", 1),)
    assert route.unsupported == ("RTAX_FASTOPEN_NO_COOKIE",)
