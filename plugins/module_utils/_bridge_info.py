# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the bridges of a KVM host are made of: bridges, ports, taps and guests.

One link dump and one address dump (over _rtnl, without pyroute2), one scan
of /proc for the processes that hold taps and a few sysctl reads; everything
else is pure and linear in the number of links (``describe``, ``render_report``).

PRIVATE: this module is internal to kvmhost.bridging; it is not part of the
public API and may change without notice.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import ModuleError
from ansible_collections.kvmhost.bridging.plugins.module_utils._rtnl import RtnlError, dump_addresses, dump_links
from ansible_collections.kvmhost.bridging.plugins.module_utils._tap import TUN_TYPE_TAP, find_tap_holders

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping, Sequence

    from ansible_collections.kvmhost.bridging.plugins.module_utils._tap import Holders

# _port() looks a state up with None too (no IFLA_BRPORT_STATE): "unknown"
STP_STATES: Mapping[int | None, str] = {0: "disabled", 1: "listening", 2: "learning", 3: "forwarding", 4: "blocking"}
STP_MODES = {0: "off", 1: "kernel", 2: "user"}
# Ports that connect a bridge to the world outside the host.
UPLINK_KINDS = ("physical", "bond", "vlan", "team")
# When the host itself is a container or a network namespace, its NICs are
# veths named like NICs (eth0, ens3, ...): those lead out of the host. Veths
# named otherwise (vethXXXX, vnetN) are ports of containers or guests.
NIC_LIKE_NAME = re.compile(r"^(eth|en|em)[0-9a-z]*$")


def is_uplink(port: Mapping[str, Any]) -> bool:
    """Whether a bridge port leads out of the host (or out of its namespace)."""
    if port["kind"] in UPLINK_KINDS:
        return True
    return port["kind"] == "veth" and bool(NIC_LIKE_NAME.match(port["name"]))


SYSCTLS = (
    ("ip_forward", "net/ipv4/ip_forward"),
    ("ipv6_forwarding", "net/ipv6/conf/all/forwarding"),
    ("bridge_nf_call_iptables", "net/bridge/bridge-nf-call-iptables"),
    ("bridge_nf_call_ip6tables", "net/bridge/bridge-nf-call-ip6tables"),
    ("bridge_nf_call_arptables", "net/bridge/bridge-nf-call-arptables"),
)


def natural_key(name: str | None) -> list[int | str]:
    """Sort vnet2 before vnet10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name or "")]


def port_kind(rec: Mapping[str, Any]) -> str:
    """physical, tap, tun, veth, vlan, bond, bridge, or the kernel's own kind name."""
    kind: str | None = rec["kind"]
    if kind is None:
        return "physical"
    if kind == "tun":
        if rec["tun"] is not None and rec["tun"]["type"] != TUN_TYPE_TAP:
            return "tun"
        return "tap"
    return kind


def read_sysctls(root: str = "/proc/sys") -> dict[str, int | None]:
    """The forwarding sysctls as integers; None where the file is missing (bridge-nf-* without br_netfilter)."""
    values: dict[str, int | None] = {}
    for key, rel in SYSCTLS:
        try:
            with open(os.path.join(root, rel)) as handle:
                values[key] = int(handle.read().strip())
        except (OSError, ValueError):
            values[key] = None
    return values


def _bridge_id(rec: Mapping[str, Any]) -> str:
    br = rec["br"] or {}
    addr = br.get("id_addr") or rec["mac"] or "00:00:00:00:00:00"
    priority = br.get("priority")
    if priority is None:
        priority = 0x8000
    return "%04x.%s" % (priority, addr.replace(":", ""))


def _holder_view(holders: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [{"pid": h["pid"], "cmdline": h["cmdline"], "guest": h["guest"]} for h in holders]


def _port(rec: Mapping[str, Any], holders: Holders) -> dict[str, Any]:
    kind = port_kind(rec)
    port: dict[str, Any] = {
        "name": rec["name"],
        "ifindex": rec["index"],
        "kind": kind,
        "stp_state": STP_STATES.get((rec["brport"] or {}).get("state"), "unknown"),
        "carrier": rec["carrier"],
        "operstate": rec["operstate"],
        "mac": rec["mac"],
        "mtu": rec["mtu"],
    }
    if kind == "tap":
        port.update(_tap_fields(rec, holders))
    return port


def _tap_fields(rec: Mapping[str, Any], holders: Holders) -> dict[str, Any]:
    procs = _holder_view(holders.get(rec["name"], []))
    tun = rec["tun"] or {}
    return {
        "process": procs[0] if procs else None,
        "processes": procs,
        "guest": next((p["guest"] for p in procs if p["guest"]), None),
        "owner": tun.get("owner"),
        "group": tun.get("group"),
        "persistent": tun.get("persist"),
        "multi_queue": tun.get("multi_queue"),
        "vnet_hdr": tun.get("vnet_hdr"),
    }


def describe(links: Sequence[Mapping[str, Any]], addresses: Iterable[Mapping[str, Any]], holders: Holders, sysctls: Mapping[str, int | None]) -> dict[str, Any]:
    """The bridge_info result from link records, address records, tap holders and sysctls."""
    by_index = {rec["index"]: rec for rec in links}
    ports_of: dict[int, list[Mapping[str, Any]]] = {}
    for rec in links:
        master = by_index.get(rec["master"]) if rec["master"] else None
        if master is not None and master["kind"] == "bridge":
            ports_of.setdefault(master["index"], []).append(rec)
    addrs_of: dict[int, list[Mapping[str, Any]]] = {}
    for addr in addresses:
        addrs_of.setdefault(addr["index"], []).append(addr)

    bridges: list[dict[str, Any]] = []
    for rec in sorted((r for r in links if r["kind"] == "bridge"), key=lambda r: natural_key(r["name"])):
        br = rec["br"] or {}
        stp_state = br.get("stp_state") or 0
        delay = br.get("forward_delay")
        ports = [_port(p, holders) for p in sorted(ports_of.get(rec["index"], []), key=lambda r: natural_key(r["name"]))]
        bridges.append(
            {
                "name": rec["name"],
                "ifindex": rec["index"],
                "mac": rec["mac"],
                "mtu": rec["mtu"],
                "operstate": rec["operstate"],
                "bridge_id": _bridge_id(rec),
                "stp": stp_state != 0,
                "stp_mode": STP_MODES.get(stp_state, str(stp_state)),
                "forward_delay": None if delay is None else delay / 100.0,
                "addresses": [
                    {"family": a["family"], "address": a["address"], "prefixlen": a["prefixlen"], "cidr": "%s/%s" % (a["address"], a["prefixlen"])}
                    for a in addrs_of.get(rec["index"], [])
                ],
                "ports": ports,
                "uplinks": [p["name"] for p in ports if is_uplink(p)],
            }
        )

    unbridged = _unbridged_taps(links, by_index, holders)

    info: dict[str, Any] = {"bridges": bridges, "unbridged_taps": unbridged, "forwarding": dict(sysctls)}
    info["report"] = render_report(info)
    return info


def _unbridged_taps(links: Iterable[Mapping[str, Any]], by_index: Mapping[int, Mapping[str, Any]], holders: Holders) -> list[dict[str, Any]]:
    """The tap devices that are in no bridge, in natural name order."""
    unbridged: list[dict[str, Any]] = []
    for rec in sorted(links, key=lambda r: natural_key(r["name"])):
        if port_kind(rec) != "tap":
            continue
        master = by_index.get(rec["master"]) if rec["master"] else None
        if master is not None and master["kind"] == "bridge":
            continue
        tap: dict[str, Any] = {
            "name": rec["name"],
            "ifindex": rec["index"],
            "kind": "tap",
            "master": master["name"] if master else None,
            "carrier": rec["carrier"],
            "operstate": rec["operstate"],
            "mac": rec["mac"],
            "mtu": rec["mtu"],
        }
        tap.update(_tap_fields(rec, holders))
        unbridged.append(tap)
    return unbridged


def _all_taps(info: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    for bridge in info["bridges"]:
        yield from (port for port in bridge["ports"] if port["kind"] == "tap")
    yield from info["unbridged_taps"]


def add_domains(info: dict[str, Any], libvirt_info: Mapping[str, Any]) -> dict[str, Any]:
    """Name the libvirt domain behind each tap, add ``libvirt`` to the result and render the report again.

    ``libvirt_info`` is what ``_libvirt_iface.read_domains`` returns; a tap gets ``domain`` (the running domain
    whose interface has the tap as its target), ``domain_mac`` (the guest's MAC) and ``domain_model``, each
    null when libvirt knows no such tap or was not reachable; a bridge gets ``libvirt_network``, the libvirt
    network whose bridge it is (``_libvirt_iface.network_info``), or null.
    """
    owners: dict[str, tuple[Any, Any, Any]] = {}
    for item in libvirt_info["domains"]:
        for iface in item["interfaces"]:
            if iface["view"] == "live" and iface["target"]:
                owners[iface["target"]] = (item["domain"], iface["mac"], iface["model"])
    for tap in _all_taps(info):
        tap["domain"], tap["domain_mac"], tap["domain_model"] = owners.get(tap["name"], (None, None, None))
    networks = {net["bridge"]: net for net in libvirt_info.get("networks", []) if net["bridge"]}
    for bridge in info["bridges"]:
        bridge["libvirt_network"] = networks.get(bridge["name"])
    info["libvirt"] = libvirt_info
    info["report"] = render_report(info)
    return info


def _yes(value: object) -> str:
    return "yes" if value else "no"


def _sysctl_text(value: int | None, missing: str) -> str:
    return missing if value is None else str(value)


def _tap_note(port: Mapping[str, Any]) -> str:
    proc = port.get("process")
    if proc is None:
        note = "tap, no process holds it"
    else:
        prog = os.path.basename(proc["cmdline"].split(" ", 1)[0]) if proc["cmdline"] else "?"
        who = "guest %s, " % port["guest"] if port.get("guest") else ""
        note = "tap of %spid %d (%s)" % (who, proc["pid"], prog)
    if port.get("domain"):
        details = ", ".join(x for x in (port.get("domain_mac"), port.get("domain_model")) if x)
        note += ", libvirt domain %s%s" % (port["domain"], " (%s)" % details if details else "")
    return note


# libvirt's <forward mode> in a few words (``isolated``: the network has no <forward>).
FORWARD_WORDS = {"nat": "NAT", "route": "routed", "open": "open", "isolated": "isolated", "bridge": "a host bridge"}


def _network_note(bridge: str, net: Mapping[str, Any]) -> str:
    """``virbr2: libvirt network natnet (NAT, 198.18.122.0/24), active, autostart``."""
    what = ", ".join([FORWARD_WORDS.get(net["forward"], net["forward"]), *net["subnets"]])
    state = "active" if net["active"] else "inactive"
    return "%s: libvirt network %s (%s), %s%s" % (bridge, net["network"], what, state, ", autostart" if net["autostart"] else "")


def _port_note(port: Mapping[str, Any]) -> str:
    kind: str = port["kind"]  # port_kind()'s
    if kind == "tap":
        return _tap_note(port)
    if kind in UPLINK_KINDS:
        return "uplink to the network outside the host"
    if kind == "veth" and is_uplink(port):
        return "uplink: a NIC that is one end of a veth pair (this host is a container or namespace)"
    if kind == "veth":
        return "one end of a veth pair (a container or namespace)"
    return kind


def render_report(info: Mapping[str, Any]) -> str:
    """A text for people, like ``brctl show`` but saying what each port is."""
    lines: list[str] = []
    header = ("bridge name", "bridge id", "STP enabled", "interfaces")
    rows: list[tuple[str, str, str, str]] = []
    for br in info["bridges"]:
        names = [p["name"] for p in br["ports"]] or [""]
        rows.append((br["name"], br["bridge_id"], _yes(br["stp"]), names[0]))
        rows.extend(("", "", "", name) for name in names[1:])
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(3)]
    for row in [header, *rows]:
        lines.append(("  ".join(str(row[i]).ljust(widths[i]) for i in range(3)) + "  " + row[3]).rstrip())
    lines.append("")
    for br in info["bridges"]:
        addrs = ", ".join(a["cidr"] for a in br["addresses"]) or "no address"
        delay = "" if br["forward_delay"] is None else ", forward delay %gs" % br["forward_delay"]
        lines.append("%s: %s, mtu %s, mac %s, %s, STP %s%s" % (br["name"], br["operstate"], br["mtu"], br["mac"], addrs, br["stp_mode"], delay))
        if br.get("libvirt_network"):
            lines.append("  " + _network_note(br["name"], br["libvirt_network"]))
        if br["uplinks"]:
            lines.append("  bridged to the network outside the host through %s" % ", ".join(br["uplinks"]))
        else:
            lines.append("  no uplink: a network inside this host only (routed or NATed, like libvirt's virbr0)")
        for port in br["ports"]:
            lines.append(
                "  %s: %s, %s, carrier %s, mac %s" % (port["name"], _port_note(port), port["stp_state"], "on" if port["carrier"] else "off", port["mac"])
            )
    if info["unbridged_taps"]:
        lines.append("taps on no bridge:")
        for tap in info["unbridged_taps"]:
            where = " (port of %s)" % tap["master"] if tap["master"] else ""
            lines.append("  %s%s: %s, carrier %s" % (tap["name"], where, _port_note(tap), "on" if tap["carrier"] else "off"))
    fwd = info["forwarding"]
    nf = "n/a (br_netfilter not loaded)"
    lines.append(
        "forwarding: net.ipv4.ip_forward=%s net.ipv6.conf.all.forwarding=%s"
        % (_sysctl_text(fwd.get("ip_forward"), "n/a"), _sysctl_text(fwd.get("ipv6_forwarding"), "n/a (no IPv6)"))
    )
    lines.append(
        "bridge netfilter: bridge-nf-call-iptables=%s bridge-nf-call-ip6tables=%s bridge-nf-call-arptables=%s"
        % tuple(_sysctl_text(fwd.get(k), nf) for k in ("bridge_nf_call_iptables", "bridge_nf_call_ip6tables", "bridge_nf_call_arptables"))
    )
    if fwd.get("bridge_nf_call_iptables"):
        lines.append("  bridged frames pass the iptables FORWARD chain: a REJECT there also blocks the guests' DHCP")
    if "libvirt" in info:
        lines.append(_libvirt_line(info["libvirt"]))
    return "\n".join(lines) + "\n"


def _libvirt_line(libvirt_info: Mapping[str, Any]) -> str:
    if libvirt_info["status"] == "ok":
        return "libvirt %s: %s" % (libvirt_info["uri"], libvirt_info["msg"])
    if libvirt_info["status"] == "off":
        return "libvirt: %s" % libvirt_info["msg"]
    return "libvirt %s: %s; taps are not matched to domains" % (libvirt_info["uri"] or "", libvirt_info["msg"])


def gather(proc: str = "/proc", sysctl_root: str = "/proc/sys") -> dict[str, Any]:
    """Read everything once and describe it."""
    try:
        links = dump_links()
        addresses = dump_addresses()
    except (RtnlError, OSError) as exc:
        raise ModuleError("reading links and addresses over netlink failed: %s" % exc) from exc
    taps = [rec["name"] for rec in links if port_kind(rec) == "tap"]
    holders = find_tap_holders(taps, proc=proc) if taps else {}
    return describe(links, addresses, holders, read_sysctls(sysctl_root))
