# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The doctor's checks and its report: pure functions over what the readers return.

Inputs are what the collection's readers give: the bridge_info result
(``_bridge_info``, with ``libvirt`` from ``_libvirt_iface``), the ifcfg files
per device (``ifcfg_devices`` over ``_ifcfg.parse``), the FORWARD chain
(``Forward``, from ``_firewall``'s reader), the addresses as ``ip -j addr
show`` prints them, and whether NetworkManager runs. The firewalld, NetworkManager
profile, DHCP and libvirt routing checks live in their own module_utils
(``_firewalld_check``, ``_nm_doctor``, ``_dhcp_client``, ``_libvirt_routing``);
``combine`` merges their problems. Every problem is a dict with ``check``,
``subject``, ``problem`` and ``fix``. Nothing here reads the host.

PRIVATE: this module is internal to kvmhost.bridging; it is not part of the
public API and may change without notice.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

Problem = dict[str, str]

CORE_CHECKS = ("forwarding", "reject_rule", "empty_bridge", "stp", "multicast_mac", "nic_address", "nm_controlled", "bridge_mac", "domain_bridge")
FIREWALLD_CHECKS = ("firewalld_block", "firewalld_zone", "firewalld_forward", "firewalld_libvirt")
NM_CHECKS = ("nm_ifcfg", "nm_boot")
DHCP_CHECKS = ("dhcp_port", "dhcp_expiry")
CHECKS = CORE_CHECKS + FIREWALLD_CHECKS + NM_CHECKS + DHCP_CHECKS + ("libvirt_routing",)

_NO = ("no", "n", "false", "f", "0")
_YES = ("yes", "y", "true", "t", "1")
_UNCONDITIONAL_REJECT = re.compile(r"^-A FORWARD -j REJECT( --reject-with [a-z0-9-]+)?$")
_QEMU_MAC = re.compile(r"mac=([0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5})")


def _problem(check: str, subject: str, problem: str, fix: str) -> Problem:
    return {"check": check, "subject": subject, "problem": problem, "fix": fix}


@dataclass
class Forward:
    """The FORWARD chain of the live IPv4 rules: its unconditional REJECT rules, and whether bridged traffic is accepted first."""

    rejects: list[str] = field(default_factory=list)
    accept_bridged_first: bool = False


@dataclass
class Readings:
    """What the doctor's core checks read (see the module docstring)."""

    info: dict[str, Any]
    ifcfg: dict[str, dict[str, Any]] = field(default_factory=dict)
    forward: Forward | None = None
    addresses: list[dict[str, Any]] = field(default_factory=list)
    nm_running: bool = False


def ifcfg_devices(files: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """{device: {FILE: file name, KEY: value, ...}} from {file name: variables}; the device is DEVICE= or the name's tail."""
    devices = {}
    for name in sorted(files):
        values = dict(files[name], FILE=name)
        devices[values.get("DEVICE") or name[len("ifcfg-") :]] = values
    return devices


def _naming(ifcfg: dict[str, dict[str, Any]], bridge: str) -> list[str]:
    """The devices whose ifcfg file makes them a port of ``bridge`` (BRIDGE=)."""
    return [device for device, values in ifcfg.items() if values.get("BRIDGE") == bridge]


def bridge_nics(bridges: Sequence[dict[str, Any]], ifcfg: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """Each bridge's NICs: the uplinks bridge_info names, then the non-tap ports whose ifcfg file names the bridge."""
    nics = {}
    for bridge in bridges:
        named = _naming(ifcfg, bridge["name"])
        ports = [p["name"] for p in bridge["ports"] if p["kind"] != "tap" and p["name"] in named]
        out: list[str] = []
        for name in list(bridge.get("uplinks") or []) + ports:
            if name not in out:
                out.append(name)
        nics[bridge["name"]] = out
    return nics


def routed_v4(bridges: Sequence[dict[str, Any]], nics: dict[str, list[str]]) -> list[str]:
    """'name (cidr, ...)' of each bridge with no NIC and an IPv4 address: its guests leave only through the host."""
    out = []
    for bridge in bridges:
        cidrs = [a["cidr"] for a in bridge.get("addresses") or () if a["family"] == "ipv4"]
        if not nics.get(bridge["name"]) and cidrs:
            out.append("%s (%s)" % (bridge["name"], ", ".join(cidrs)))
    return out


def check_forwarding(readings: Readings, routed: list[str]) -> list[Problem]:
    if readings.info.get("forwarding", {}).get("ip_forward", 1) != 0 or not routed:
        return []
    return [
        _problem(
            "forwarding",
            "net.ipv4.ip_forward",
            "IPv4 forwarding is off, but %s ha%s no NIC: their guests reach other networks only through this host, which does not route."
            % (" and ".join(routed), "ve" if len(routed) > 1 else "s"),
            "Turn forwarding on: run playbooks/forwarding.yml (the forwarding role), or isolated_bridge with isolated_bridge_routing: true;"
            " by hand, sysctl -w net.ipv4.ip_forward=1 and net.ipv4.ip_forward = 1 in a file of /etc/sysctl.d.",
        )
    ]


def check_reject_rule(readings: Readings, routed: list[str]) -> list[Problem]:
    forward = readings.forward
    if forward is None:
        return []
    rejects = []
    for text in forward.rejects:
        if _UNCONDITIONAL_REJECT.match(text) and text not in rejects:
            rejects.append(text)
    fwd = readings.info.get("forwarding", {})
    bridges = readings.info.get("bridges", [])
    bridged = any(b["ports"] for b in bridges) and fwd.get("bridge_nf_call_iptables") == 1 and not forward.accept_bridged_first
    routing = fwd.get("ip_forward") == 1 and bool(routed)
    if not rejects or not (bridged or routing):
        return []
    problem = "FORWARD has " + ", ".join("'%s'" % text for text in rejects)
    if bridged:
        problem += (", and with net.bridge.bridge-nf-call-iptables=1 bridged frames pass through iptables and hit it:"
                    " bridged guests get no DHCP lease and no traffic")  # fmt: skip
    if bridged and routed:
        problem += ";"
    if routing:
        problem += " traffic routed from %s hits it" % ", ".join(routed)
    fix = "Remove the rule at runtime and from /etc/sysconfig/iptables: run playbooks/forwarding.yml (the forwarding role)."
    if bridged:
        fix += (" Or keep it and let bridged traffic pass first (forwarding_accept_bridged: true), or stop filtering bridged"
                " frames (forwarding_bridge_nf_call: 0).")  # fmt: skip
    return [_problem("reject_rule", "iptables FORWARD", problem + ".", fix)]


def check_empty_bridge(readings: Readings, isolated: Sequence[str] = ()) -> list[Problem]:
    """Bridges with no port; one with its own ifcfg file (or keyfile: ``isolated``) that no port's file names is a private network."""
    problems = []
    for bridge in readings.info.get("bridges", []):
        if bridge["ports"] or bridge["name"] in isolated:
            continue
        naming = _naming(readings.ifcfg, bridge["name"])
        if bridge["name"] in readings.ifcfg and not naming:
            continue
        name = bridge["name"]
        problem = "Bridge %s has no port" % name
        if naming:
            problem += ", although the ifcfg file of %s makes %s its port" % (", ".join(naming), "it" if len(naming) == 1 else "them")
            fix = "Make %s its port without cutting the host off: run playbooks/host_bridge.yml with host_bridge_nic: %s and host_bridge_name: %s." % (
                ", ".join(naming), naming[0], name)  # fmt: skip
        else:
            fix = ("Make the NIC a port (playbooks/host_bridge.yml), or start the VMs that use it; if it is a private network"
                   " for VMs, give it an ifcfg file (playbooks/isolated_bridge.yml); else remove it (ip link del %s)." % name)  # fmt: skip
        problems.append(_problem("empty_bridge", name, problem + ": nothing reaches it, and a guest on it reaches nothing.", fix))
    return problems


def _delay(bridge: dict[str, Any]) -> str:
    delay = bridge.get("forward_delay")
    return "?" if delay is None else str(delay)


def check_stp(readings: Readings, nics: dict[str, list[str]]) -> list[Problem]:
    problems = []
    for bridge in readings.info.get("bridges", []):
        name = bridge["name"]
        for port in bridge["ports"]:
            state = port["stp_state"]
            if state not in ("listening", "learning", "blocking"):
                continue
            if state == "blocking":
                why, fix = "STP found a loop and blocks it.", "Check the cabling: two ports of the bridge reach the same LAN."
            else:
                why = ("STP holds its traffic for the forward delay (%ss) after each link change, long enough for a guest's DHCP or"
                       " PXE to give up." % _delay(bridge))  # fmt: skip
                fix = ("With one NIC on the bridge there is no loop to break: turn STP off and the delay to 0 (host_bridge_stp: false,"
                       " host_bridge_forward_delay: 0, or STP=no and DELAY=0 in ifcfg-%s)." % name)  # fmt: skip
            problems.append(_problem("stp", "%s:%s" % (name, port["name"]), "Port %s of %s is %s, not forwarding: %s" % (port["name"], name, state, why), fix))
        for port in bridge["ports"]:
            if port["name"] not in nics.get(name, ()) or port["stp_state"] != "disabled":
                continue
            problems.append(_problem(
                "stp", "%s:%s" % (name, port["name"]),
                "NIC %s of %s does not forward: it is %s%s, so the bridge reaches nothing outside the host."
                % (port["name"], name, port["operstate"], "" if port.get("carrier") else " without carrier"),
                "Bring it up (ip link set %s up, ONBOOT=yes in ifcfg-%s) and check its cable and switch port." % (port["name"], port["name"]),
            ))  # fmt: skip
    return problems


def _multicast(mac: str) -> bool:
    try:
        return int(mac[:2], 16) % 2 == 1
    except ValueError:
        return False


def check_multicast_mac(readings: Readings) -> list[Problem]:
    taps: list[tuple[Any, Any]] = []
    for bridge in readings.info.get("bridges", []):
        taps.extend((port, bridge["name"]) for port in bridge["ports"] if port["kind"] == "tap")
    taps.extend((tap, None) for tap in readings.info.get("unbridged_taps", []))
    problems = []
    for tap, bridge in taps:
        macs: list[str] = []
        for mac in [tap.get("mac") or ""] + [m for holder in tap.get("processes") or () for m in _QEMU_MAC.findall(holder.get("cmdline") or "")]:
            if mac.lower() not in macs:
                macs.append(mac.lower())
        for mac in (m for m in macs if _multicast(m)):
            problems.append(_problem(
                "multicast_mac", tap["name"],
                "%s on %s%s uses MAC %s, a multicast address (the lowest bit of the first octet is set): bridges flood or drop its"
                " frames, and it gets no DHCP lease." % ("Guest %s" % tap["guest"] if tap.get("guest") else "The VM", tap["name"],
                                                         " (bridge %s)" % bridge if bridge else "", mac),
                "Give the VM a unicast MAC, whose first octet is even, like 52:54:00:xx:xx:xx (the prefix libvirt uses); in libvirt,"
                " <mac address=\"52:54:00:...\"/> in the domain's interface.",
            ))  # fmt: skip
    return problems


def held_addresses(addresses: Sequence[dict[str, Any]], name: str) -> list[str]:
    """The IPv4 addresses and global IPv6 addresses of link ``name``, from ``ip -j addr show``."""
    held = []
    for link in addresses:
        if link.get("ifname") != name:
            continue
        for info in link.get("addr_info") or ():
            if info.get("family") == "inet" or (info.get("family") == "inet6" and info.get("scope") == "global"):
                held.append("%s/%s" % (info.get("local"), info.get("prefixlen")))
    return held


def check_nic_address(readings: Readings) -> list[Problem]:
    problems = []
    for bridge in readings.info.get("bridges", []):
        for port in bridge["ports"]:
            held = held_addresses(readings.addresses, port["name"]) if port["kind"] != "tap" else []
            if not held:
                continue
            nic, name = port["name"], bridge["name"]
            problems.append(_problem(
                "nic_address", nic,
                "%s is a port of %s but still holds %s: a port does not receive IP traffic for itself, so the host does not answer"
                " on that address, and routes through %s lead nowhere." % (nic, name, ", ".join(held), nic),
                "Move the address to the bridge without cutting SSH: run playbooks/host_bridge.yml with host_bridge_nic: %s and"
                " host_bridge_name: %s; by hand, add it to %s, then remove it from %s, and drop IPADDR/PREFIX/GATEWAY from ifcfg-%s."
                % (nic, name, name, nic, nic),
            ))  # fmt: skip
    return problems


def check_nm_controlled(readings: Readings) -> list[Problem]:
    """NM_CONTROLLED of the bridges' and ports' ifcfg files against whether NetworkManager runs."""
    problems = []
    seen = set()
    files = [(d, v) for d, v in readings.ifcfg.items() if "BRIDGE" in v]
    files += [(d, v) for d, v in readings.ifcfg.items() if re.match(r"(?i)bridge$", v.get("TYPE") or "")]
    for device, values in files:
        if device in seen:
            continue
        seen.add(device)
        nmc = (values.get("NM_CONTROLLED") or "").lower()
        name = values["FILE"]
        if readings.nm_running and nmc in _NO:
            problems.append(_problem(
                "nm_controlled", name,
                "NetworkManager runs this host, but %s says NM_CONTROLLED=no: NetworkManager leaves %s alone, so at boot nothing"
                " brings it up unless the network service runs as well." % (name, device),
                "Pick one: let NetworkManager manage the bridge and its port (NM_CONTROLLED=yes in both files), or disable NetworkManager"
                " and enable the network service (network-scripts), which these files are written for.",
            ))  # fmt: skip
        elif not readings.nm_running and nmc in _YES:
            problems.append(_problem(
                "nm_controlled", name,
                "NetworkManager does not run here (the network service does), but %s says NM_CONTROLLED=yes: the day NetworkManager"
                " starts, it takes %s over and may tear the bridge down." % (name, device),
                "Set NM_CONTROLLED=no in %s (the host_bridge role writes that)." % name,
            ))  # fmt: skip
    return problems


def check_bridge_mac(readings: Readings, nics: dict[str, list[str]]) -> list[Problem]:
    problems = []
    for bridge in readings.info.get("bridges", []):
        first = next(iter(nics.get(bridge["name"]) or []), None)
        nic = next((p for p in bridge["ports"] if p["name"] == first), None)
        if nic is None or (nic["mac"] or "").lower() == (bridge["mac"] or "").lower():
            continue
        name = bridge["name"]
        problems.append(_problem(
            "bridge_mac", name,
            "Bridge %s has MAC %s, its NIC %s has %s: a DHCP server sees another client, so the bridge loses the lease (and the"
            " address) the NIC had, and peers must learn a new MAC for the host." % (name, bridge["mac"], nic["name"], nic["mac"]),
            "Give the bridge the NIC's MAC: ip link set %s address %s and MACADDR=%s in ifcfg-%s (the host_bridge role does both)."
            % (name, nic["mac"], nic["mac"], name),
        ))  # fmt: skip
    return problems


def _domain_problem(dom: dict[str, Any], bridge: str, on: list[dict[str, Any]]) -> Problem:
    """The domain_bridge problem of ``dom``'s interfaces ``on`` a bridge that is missing or no bridge."""
    macs = list(dict.fromkeys(i["mac"] for i in on))
    in_config = any(i["view"] == "config" for i in on)
    in_live = any(i["view"] == "live" for i in on)
    taps = list(dict.fromkeys(i["target"] for i in on if i["view"] == "live" and i.get("target")))
    missing = on[0]["bridge_state"] == "missing"
    views = " and ".join(v for v, on_it in (("its persistent definition", in_config), ("the running domain", in_live)) if on_it)
    refusal = "Cannot get interface MTU on '%s': No such device" % bridge if missing else "its tap cannot be made a port of %s" % bridge
    harms = []
    if in_config:
        harms.append("the domain does not start%s (libvirt: %s)" % (" again once it stops" if dom.get("active") else "", refusal))
    if in_live:
        harms.append("its running NIC%s is on no bridge, so the guest has no network" % (" (%s)" % ", ".join(taps) if taps else ""))
    name = dom["domain"]
    problem = "Domain %s has %s (%s) on bridge %s in %s, but %s%s: %s." % (
        name, "an interface" if len(macs) == 1 else "%d interfaces" % len(macs), ", ".join(macs), bridge, views, bridge,
        " does not exist on this host" if missing else " is not a bridge (a NIC or another kind of link)", "; ".join(harms))  # fmt: skip
    if missing:
        fix = "Create %s (playbooks/host_bridge.yml bridges a NIC, playbooks/isolated_bridge.yml makes a private network for VMs)" % bridge
    else:
        fix = "Bridge %s (playbooks/host_bridge.yml with host_bridge_nic: %s) and use the new bridge" % (bridge, bridge)
    fix += (", or move the interface to a bridge that exists: playbooks/vm_network.yml with vm_network_interfaces: [{domain: %s,"
            " bridge: <bridge>, mac: %s}] (or virsh edit %s)." % (name, macs[0], name))  # fmt: skip
    if taps and missing:
        fix += " For the running domain, once the bridge is there: ip link set %s master %s." % (taps[0], bridge)
    return _problem("domain_bridge", "%s:%s" % (name, bridge), problem, fix)


def check_domain_bridge(readings: Readings) -> list[Problem]:
    """Domains with an interface on a bridge this host lacks, or that is no bridge (bridge_state from bridge_info)."""
    libvirt = readings.info.get("libvirt") or {}
    if libvirt.get("status") != "ok":
        return []
    problems = []
    for dom in libvirt.get("domains") or ():
        bad = [i for i in dom["interfaces"] if i.get("type") == "bridge" and i.get("bridge_state") in ("missing", "not_a_bridge")]
        for bridge in dict.fromkeys(i["bridge"] for i in bad):
            problems.append(_domain_problem(dom, bridge, [i for i in bad if i["bridge"] == bridge]))
    return problems


def core_problems(readings: Readings, skip: Sequence[str] = (), isolated: Sequence[str] = ()) -> list[Problem]:
    """The problems of the core checks (CORE_CHECKS) not in ``skip``, in the report's order.

    ``isolated`` names bridges that a NetworkManager profile makes as private networks for VMs (not empty_bridge).
    """
    bridges = readings.info.get("bridges", [])
    nics = bridge_nics(bridges, readings.ifcfg)
    routed = routed_v4(bridges, nics)
    runs = {
        "forwarding": lambda: check_forwarding(readings, routed),
        "reject_rule": lambda: check_reject_rule(readings, routed),
        "empty_bridge": lambda: check_empty_bridge(readings, isolated),
        "stp": lambda: check_stp(readings, nics),
        "multicast_mac": lambda: check_multicast_mac(readings),
        "nic_address": lambda: check_nic_address(readings),
        "nm_controlled": lambda: check_nm_controlled(readings),
        "bridge_mac": lambda: check_bridge_mac(readings, nics),
        "domain_bridge": lambda: check_domain_bridge(readings),
    }
    problems: list[Problem] = []
    for check in CORE_CHECKS:
        if check not in skip:
            problems.extend(runs[check]())
    return problems


@dataclass
class Outcome:
    """Everything the doctor found, and which checks could not run."""

    problems: list[Problem]
    not_run: list[str]
    routing_lines: list[str] = field(default_factory=list)


def combine(
    core: list[Problem],
    firewalld: dict[str, Any] | None,
    nm: list[Problem],
    dhcp: list[Problem],
    routing: dict[str, Any] | None,
    libvirt_status: str,
    skip: Sequence[str] = (),
) -> Outcome:
    """All problems in the report's order, and the checks that did not run.

    ``firewalld`` is firewalld_info's result (None when its checks are all skipped); ``routing`` is
    ``{problems, lines}`` of the libvirt_routing check (None when skipped).
    """
    firewalld_problems = [p for p in (firewalld or {}).get("problems", []) if p["check"] not in skip]
    routing = routing or {"problems": [], "lines": []}
    not_run = []
    if libvirt_status != "ok":
        not_run.append("domain_bridge")
    if not ((firewalld or {}).get("firewalld") or {}).get("running"):
        not_run.extend(FIREWALLD_CHECKS)
    if not routing["lines"]:
        not_run.append("libvirt_routing")
    problems = core + firewalld_problems + nm + dhcp + list(routing["problems"])
    return Outcome(problems, not_run, list(routing["lines"]) if "libvirt_routing" not in skip else [])


def report(host: str, outcome: Outcome, skip: Sequence[str], libvirt: dict[str, Any], info_report: str) -> str:
    """The doctor's report: each problem with its fix, the checks run, why one did not, the routing, bridge_info's report."""
    problems = outcome.problems
    lines = ["doctor: %s: %d problem(s) found%s" % (host, len(problems), ":" if problems else ".")]
    for index, problem in enumerate(problems, 1):
        lines.append("%d. [%s] %s: %s" % (index, problem["check"], problem["subject"], problem["problem"]))
        lines.append("   fix: %s" % problem["fix"])
    lines.append("checks run: %s" % ", ".join(c for c in CHECKS if c not in skip and c not in outcome.not_run))
    if "domain_bridge" in outcome.not_run and "domain_bridge" not in skip:
        at = " at %s" % libvirt["uri"] if libvirt.get("uri") else ""
        lines.append("not run: domain_bridge, because libvirt%s said nothing: %s" % (at, libvirt.get("msg") or "no libvirt data"))
    lines.extend(outcome.routing_lines)
    lines.append("")
    lines.append(info_report or "")
    return "\n".join(lines)
