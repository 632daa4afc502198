# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""firewalld: what is wanted, and the changes that get there (pure, no I/O).

Wanted state is a list of ZoneWant and PolicyWant, from the task's explicit
``zones`` and ``policies`` and from its ``bridges`` (bridge_wants decides the
zone and the policies of each bridge). plan() compares them with a
_firewalld_read.Snapshot and returns the changes, permanent first, then a
reload where the runtime needs one (new zones and every policy change: firewalld
creates zones and policies in the permanent configuration only), then the
runtime zone changes. Each change is also the diff's unit and the argv tail
of one firewall-cmd call.

PRIVATE: this module is internal to kvmhost.bridging; it is not part of the
public API and may change without notice.
"""

from __future__ import annotations

import copy
import ipaddress
import re
from typing import TYPE_CHECKING, Any, cast

from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import ModuleError
from ansible_collections.kvmhost.bridging.plugins.module_utils._names import validate_ifname

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from ansible_collections.kvmhost.bridging.plugins.module_utils._firewalld_read import Objects, Snapshot

TARGETS = ("CONTINUE", "ACCEPT", "DROP", "REJECT")
SPECIAL_ZONES = ("ANY", "HOST")
NAME = re.compile(r"[A-Za-z0-9_+-]{1,17}\Z")
LIBVIRT_ZONES = ("libvirt", "libvirt-routed")
LIBVIRT_BRIDGE = re.compile(r"virbr[0-9]+\Z")
DIRECTIONS = ("out", "in")


class ZoneWant:
    def __init__(self, name: str, interfaces: Iterable[str] = (), forward: bool | None = None, masquerade: bool | None = None) -> None:
        self.name = name
        self.interfaces = tuple(interfaces)
        self.forward = forward
        self.masquerade = masquerade


class PolicyWant:
    def __init__(
        self, name: str, present: bool = True, ingress: Iterable[str] = (), egress: Iterable[str] = (), target: str = "ACCEPT", masquerade: bool = False
    ) -> None:
        self.name = name
        self.present = present
        self.ingress = tuple(sorted(set(ingress)))
        self.egress = tuple(sorted(set(egress)))
        self.target = target
        self.masquerade = masquerade


class Change:
    """One firewall-cmd call: scope (permanent/runtime), the object, the operation and its value."""

    def __init__(self, scope: str, kind: str, name: str, op: str, value: str | bool | None = None) -> None:
        self.scope = scope
        self.kind = kind
        self.name = name
        self.op = op
        self.value = value

    def argv(self) -> list[str]:
        prefix = ["--permanent"] if self.scope == "permanent" else []
        if self.op == "reload":
            return ["--reload"]
        if self.op == "new":
            return [*prefix, "--new-%s=%s" % (self.kind, self.name)]
        if self.op == "delete":
            return [*prefix, "--delete-%s=%s" % (self.kind, self.name)]
        obj = ["--%s=%s" % (self.kind, self.name)]
        if self.op == "change-interface":
            return prefix + obj + ["--change-interface=%s" % self.value]
        if self.op in ("forward", "masquerade"):
            return prefix + obj + ["--%s-%s" % ("add" if self.value else "remove", self.op)]
        if self.op == "target":
            return prefix + obj + ["--set-target=%s" % self.value]
        # add-ingress-zone, remove-egress-zone, ...
        return prefix + obj + ["--%s=%s" % (self.op, self.value)]

    def text(self) -> str:
        return "firewall-cmd " + " ".join(self.argv())

    def as_result(self) -> dict[str, Any]:
        return {"scope": self.scope, "kind": self.kind, "name": self.name, "op": self.op, "value": self.value, "command": self.text()}


# -- wanted state from the task's parameters ------------------------------------------------------------------------
def _check_name(kind: str, name: object) -> None:
    if not isinstance(name, str) or not NAME.match(name):
        raise ModuleError("%s name %r is not valid: firewalld names are 1-17 letters, digits, '_', '+' or '-'." % (kind, name))


def zone_wants(items: Iterable[Mapping[str, Any]] | None) -> list[ZoneWant]:
    wants = []
    for item in items or []:
        _check_name("zone", item["name"])
        for interface in item.get("interfaces") or ():
            validate_ifname(interface, "zone %s interface" % item["name"])
        wants.append(ZoneWant(item["name"], item.get("interfaces") or (), item.get("forward"), item.get("masquerade")))
    return wants


def policy_wants(items: Iterable[Mapping[str, Any]] | None) -> list[PolicyWant]:
    wants = []
    for item in items or []:
        _check_name("policy", item["name"])
        present = item.get("state", "present") == "present"
        target = (item.get("target") or "ACCEPT").upper()
        if target not in TARGETS:
            raise ModuleError("policy %s: target %s is not one of %s." % (item["name"], target, ", ".join(TARGETS)))
        if present and (not item.get("ingress_zones") or not item.get("egress_zones")):
            raise ModuleError(
                "policy %s needs ingress_zones and egress_zones (zone names, ANY or HOST): firewalld applies a policy"
                " only between its ingress and egress zones." % item["name"]
            )
        wants.append(PolicyWant(item["name"], present, item.get("ingress_zones") or (), item.get("egress_zones") or (), target, bool(item.get("masquerade"))))
    return wants


def merge_zones(wants: Iterable[ZoneWant]) -> list[ZoneWant]:
    """One ZoneWant per zone; an interface wanted in two zones is an error."""
    merged: dict[str, ZoneWant] = {}
    owner: dict[str, str] = {}  # interface -> the zone that wants it
    for want in wants:
        for interface in want.interfaces:
            if owner.get(interface, want.name) != want.name:
                raise ModuleError(
                    "interface %s is wanted in zone %s and in zone %s; an interface is in one zone only."
                    " Name it in one of them." % (interface, owner[interface], want.name)
                )
            owner[interface] = want.name
        have = merged.get(want.name)
        if have is None:
            merged[want.name] = ZoneWant(want.name, want.interfaces, want.forward, want.masquerade)
            continue
        for attr in ("forward", "masquerade"):
            mine, theirs = getattr(have, attr), getattr(want, attr)
            if mine is not None and theirs is not None and mine != theirs:
                raise ModuleError("zone %s is wanted with %s on and off; give one value." % (want.name, attr))
            if mine is None:
                setattr(have, attr, theirs)
        have.interfaces = tuple(dict.fromkeys(have.interfaces + want.interfaces))
    return list(merged.values())


# -- bridges: which zone, which policies ------------------------------------------------------------------------------
def _host_address(bridge: Mapping[str, Any]) -> str | None:
    for addr in bridge.get("addresses") or []:
        ip = ipaddress.ip_address(addr["address"])
        if not ip.is_link_local:
            cidr: str = addr["cidr"]
            return cidr
    return None


def is_libvirt_bridge(bridge: Mapping[str, Any], snapshot: Snapshot) -> bool:
    if LIBVIRT_BRIDGE.match(bridge["name"]):
        return True
    return any(snapshot.zone_of(bridge["name"], scope) in LIBVIRT_ZONES for scope in ("runtime", "permanent"))


def _current_zone(snapshot: Snapshot, names: Iterable[str]) -> str | None:
    for name in names:
        for scope in ("runtime", "permanent"):
            zone = snapshot.zone_of(name, scope)
            if zone:
                return zone
    return None


def addressed_interfaces(links: Iterable[Mapping[str, Any]], addresses: Iterable[Mapping[str, Any]]) -> list[str]:
    """Names of the links that hold a host address and are neither loopback, bridge, tap nor a bridge's port."""
    holders = set()
    for addr in addresses:
        if not ipaddress.ip_address(addr["address"]).is_link_local:
            holders.add(addr["index"])
    return sorted(
        rec["name"] for rec in links if rec["index"] in holders and rec["name"] != "lo" and not rec.get("master") and rec.get("kind") not in ("bridge", "tun")
    )


def bridge_wants(
    bridges: Sequence[Mapping[str, Any]],
    names: Iterable[str] | None,
    snapshot: Snapshot,
    bridged_zone: str | None = None,
    routed_zone: str = "kvmb-routed",
    routed_to_zone: str | None = None,
    routed_directions: Sequence[str] | None = ("out",),
    routed_masquerade: bool = False,
    bridge_nf_call: int | None = None,
    interfaces: Iterable[str] | None = (),
) -> tuple[list[ZoneWant], list[PolicyWant], list[dict[str, Any]]]:
    """Zones and policies for the bridges ``names`` ('*': every bridge libvirt does not manage).

    ``bridges`` are bridge_info records (name, uplinks, addresses). A bridge with
    an uplink, or one without a host address, goes into a zone with intra-zone
    forwarding: ``bridged_zone``, else the zone it or its uplink is in, else the
    default zone. A bridge without an uplink but with a host address is routed:
    it goes into ``routed_zone`` (forwarding on) and a policy per direction of
    ``routed_directions`` joins that zone to ``routed_to_zone`` (default: the
    default zone). firewalld applies a policy only to interfaces bound to its
    zones (an interface in no zone falls into the default zone for everything
    else), so when the policies lead to the default zone, the host's
    ``interfaces`` (addressed_interfaces) that are in no zone are bound to it
    explicitly, which changes nothing else for them. Returns (zone wants,
    policy wants, report).
    """
    by_name = {br["name"]: br for br in bridges}
    selected = _selected_bridges(bridges, names, snapshot, by_name)
    for direction in routed_directions or ():
        if direction not in DIRECTIONS:
            raise ModuleError("routed_directions: %r is not one of out, in." % (direction,))
    zones, report, routed = _bridge_zones(selected, by_name, snapshot, bridged_zone, routed_zone)
    policies: list[PolicyWant] = []
    if routed:
        # bridge_wants is asked only of a running firewalld, whose snapshot has its default zone (read).
        other = routed_to_zone or cast(str, snapshot.default_zone)
        policies = _routed_policies(routed_zone, other, routed_directions, routed_masquerade)
        for entry in report:
            if entry["kind"] == "routed":
                entry["policies"] = [p.name for p in policies if p.present]
        unbound = [name for name in interfaces or () if name not in selected and not any(snapshot.zone_of(name, scope) for scope in ("runtime", "permanent"))]
        if other == snapshot.default_zone and unbound and any(p.present for p in policies):
            zones.append(ZoneWant(other, unbound))
            report.append(
                {
                    "bridge": None,
                    "interfaces": unbound,
                    "zone": other,
                    "kind": "policy_zone",
                    "msg": (
                        "%s: in no zone, bound to the default zone %s explicitly, so that the policies joining %s to it"
                        " apply to them (firewalld applies policies only to interfaces bound to a zone)" % (", ".join(unbound), other, routed_zone)
                    ),
                }
            )
    for entry in report:
        if "msg" not in entry:
            entry["msg"] = _bridge_message(entry, bridge_nf_call, policies)
    return zones, policies, report


def _selected_bridges(bridges: Iterable[Mapping[str, Any]], names: Iterable[str] | None, snapshot: Snapshot, by_name: Mapping[str, Any]) -> list[str]:
    """The bridges ``names`` selects ('*': every bridge libvirt does not manage), each once; ModuleError for a missing one."""
    selected: list[str] = []
    for name in names or []:
        if name == "*":
            selected.extend(br["name"] for br in bridges if not is_libvirt_bridge(br, snapshot))
        elif name not in by_name:
            raise ModuleError(
                "bridge %s does not exist on the host (bridges: %s). Make it first (kvmhost.bridging.host_bridge or"
                " isolated_bridge) or leave it out of bridges." % (name, ", ".join(sorted(by_name)) or "none")
            )
        else:
            selected.append(name)
    return list(dict.fromkeys(selected))


def _bridge_zones(
    selected: Iterable[str], by_name: Mapping[str, Mapping[str, Any]], snapshot: Snapshot, bridged_zone: str | None, routed_zone: str
) -> tuple[list[ZoneWant], list[dict[str, Any]], list[str]]:
    """(zone wants, report entries, routed bridges): the zone of each selected bridge and what kind it is."""
    zones = []
    report = []
    routed = []
    for name in selected:
        br = by_name[name]
        address = _host_address(br)
        if br.get("uplinks") or not address:
            kind = "bridged" if br.get("uplinks") else "isolated"
            # A running firewalld's snapshot has its default zone (read); bridge_wants is asked only of one.
            zone = bridged_zone or _current_zone(snapshot, [name, *(br.get("uplinks") or [])]) or cast(str, snapshot.default_zone)
        else:
            kind = "routed"
            zone = routed_zone
            routed.append(name)
        zones.append(ZoneWant(zone, [name], forward=True))
        report.append({"bridge": name, "kind": kind, "zone": zone, "uplinks": list(br.get("uplinks") or []), "address": address, "policies": []})
    return zones, report, routed


def _routed_policies(routed_zone: str, other: str, routed_directions: Sequence[str] | None, routed_masquerade: bool) -> list[PolicyWant]:
    """One policy per direction between the routed zone and ``other``; present for the wanted directions."""
    _check_name("zone", routed_zone)
    if other == routed_zone:
        raise ModuleError("routed_to_zone is the routed zone %s itself; name the zone of the LAN (for example public)." % other)
    policies = []
    for direction in DIRECTIONS:
        ingress, egress = (routed_zone, other) if direction == "out" else (other, routed_zone)
        wanted = direction in (routed_directions or ())
        policies.append(PolicyWant("%s-%s" % (routed_zone, direction), wanted, [ingress], [egress], "ACCEPT", bool(routed_masquerade) and direction == "out"))
    return policies


def _bridge_message(entry: Mapping[str, Any], bridge_nf_call: int | None, policies: Iterable[PolicyWant]) -> str:
    name, zone = entry["bridge"], entry["zone"]
    if entry["kind"] == "routed":
        joined = ["%s (%s -> %s%s)" % (p.name, ",".join(p.ingress), ",".join(p.egress), ", masquerade" if p.masquerade else "") for p in policies if p.present]
        return "%s (routed, host address %s): in zone %s with intra-zone forwarding; %s" % (
            name,
            entry["address"],
            zone,
            "routed through firewalld policy " + "; ".join(joined) if joined else "no policy: it reaches no other zone",
        )
    head = "%s (%s%s): in zone %s with intra-zone forwarding" % (
        name,
        entry["kind"],
        " through " + ",".join(entry["uplinks"]) if entry["uplinks"] else "",
        zone,
    )
    if bridge_nf_call == 1:
        return head + "; bridge-nf-call-iptables=1, so its guests' frames pass firewalld's forward rules and the zone lets them through"
    if bridge_nf_call == 0:
        return head + "; bridge-nf-call-iptables=0, so its guests' frames bypass firewalld (the zone matters if you set it to 1)"
    return head + "; br_netfilter is not loaded, so its guests' frames bypass firewalld"


# -- plan -------------------------------------------------------------------------------------------------------------
def _new_zone() -> dict[str, Any]:
    return {"interfaces": [], "forward": False, "masquerade": False}


def _new_policy() -> dict[str, Any]:
    return {"ingress-zones": [], "egress-zones": [], "target": "CONTINUE", "masquerade": False}


def simulate(zones: Objects, policies: Objects, changes: Iterable[Change]) -> tuple[Objects, Objects]:
    """(zones, policies) of one scope after ``changes`` (copies; the inputs stay as they are)."""
    zones = copy.deepcopy(zones)
    policies = copy.deepcopy(policies)
    for ch in changes:
        if ch.kind == "zone":
            if ch.op == "new":
                zones[ch.name] = _new_zone()
            elif ch.op == "change-interface":
                for other in zones.values():
                    if ch.value in other.get("interfaces", []):
                        other["interfaces"] = [i for i in other["interfaces"] if i != ch.value]
                zones[ch.name].setdefault("interfaces", []).append(ch.value)
            else:
                zones[ch.name][ch.op] = ch.value
        elif ch.kind == "policy":
            if ch.op == "new":
                policies[ch.name] = _new_policy()
            elif ch.op == "delete":
                policies.pop(ch.name, None)
            elif ch.op in ("add-ingress-zone", "add-egress-zone"):
                policies[ch.name].setdefault(ch.op[4:] + "s", []).append(ch.value)
            elif ch.op in ("remove-ingress-zone", "remove-egress-zone"):
                key = ch.op[7:] + "s"
                policies[ch.name][key] = [z for z in policies[ch.name].get(key, []) if z != ch.value]
            else:
                policies[ch.name][ch.op] = ch.value
    return zones, policies


def zone_changes(scope: str, wants: Iterable[ZoneWant], zones: Mapping[str, Mapping[str, Any]]) -> list[Change]:
    changes = []
    for want in wants:
        current = zones.get(want.name)
        if current is None:
            changes.append(Change(scope, "zone", want.name, "new"))
            current = _new_zone()
        for interface in want.interfaces:
            if interface not in current.get("interfaces", []):
                changes.append(Change(scope, "zone", want.name, "change-interface", interface))
        for attr in ("forward", "masquerade"):
            value = getattr(want, attr)
            if value is not None and bool(current.get(attr)) != value:
                changes.append(Change(scope, "zone", want.name, attr, value))
    return changes


def policy_changes(scope: str, wants: Iterable[PolicyWant], policies: Mapping[str, Mapping[str, Any]]) -> list[Change]:
    changes = []
    for want in wants:
        current = policies.get(want.name)
        if not want.present:
            if current is not None:
                changes.append(Change(scope, "policy", want.name, "delete"))
            continue
        if current is None:
            changes.append(Change(scope, "policy", want.name, "new"))
            current = _new_policy()
        for side, wanted in (("ingress-zone", want.ingress), ("egress-zone", want.egress)):
            have = current.get(side + "s", [])
            for zone in have:
                if zone not in wanted:
                    changes.append(Change(scope, "policy", want.name, "remove-" + side, zone))
            for zone in wanted:
                if zone not in have:
                    changes.append(Change(scope, "policy", want.name, "add-" + side, zone))
        if current.get("target", "CONTINUE").upper() != want.target:
            changes.append(Change(scope, "policy", want.name, "target", want.target))
        if bool(current.get("masquerade")) != want.masquerade:
            changes.append(Change(scope, "policy", want.name, "masquerade", want.masquerade))
    return changes


def check_support(snapshot: Snapshot, zones: Sequence[ZoneWant], policies: Sequence[PolicyWant]) -> None:
    """Fail before any change when this firewalld cannot do what is asked, or a policy names an unknown zone."""
    old = not snapshot.has_policies
    if old and any(z.forward is not None for z in zones):
        raise ModuleError(
            "firewalld %s has no intra-zone forwarding (firewalld 0.9 and later have it). Upgrade firewalld, or set"
            " net.bridge.bridge-nf-call-iptables=0 (kvmhost.bridging.ip_forward bridge_nf_call: false) so bridged"
            " guests bypass it." % snapshot.as_result()["version"]
        )
    if old and policies:
        raise ModuleError(
            "firewalld %s has no policies (firewalld 0.9 and later have them). Upgrade firewalld, or put the routed"
            " bridge in the same zone as the LAN with forward on." % snapshot.as_result()["version"]
        )
    known = set(snapshot.zones["permanent"]) | {z.name for z in zones} | set(SPECIAL_ZONES)
    for policy in policies:
        for zone in policy.ingress + policy.egress if policy.present else ():
            if zone not in known:
                raise ModuleError(
                    "policy %s names zone %s, which firewalld does not have (zones: %s). Create it (list it under zones)"
                    " or correct the name." % (policy.name, zone, ", ".join(sorted(snapshot.zones["permanent"])))
                )


def plan(snapshot: Snapshot, zones: Sequence[ZoneWant], policies: Sequence[PolicyWant]) -> tuple[list[Change], bool, list[Change]]:
    """(permanent changes, reload needed, runtime changes) bringing ``snapshot`` to the wanted zones and policies.

    The runtime changes are planned against the runtime as it will be: after
    a reload that is the permanent configuration after the permanent changes.
    """
    check_support(snapshot, zones, policies)
    permanent = zone_changes("permanent", zones, snapshot.zones["permanent"])
    permanent += policy_changes("permanent", policies, snapshot.policies["permanent"])
    reload_needed = any(ch.op in ("new", "delete") or ch.kind == "policy" for ch in permanent)
    reload_needed = reload_needed or any(z.name not in snapshot.zones["runtime"] for z in zones)
    reload_needed = reload_needed or bool(policy_changes("runtime", policies, snapshot.policies["runtime"]))
    if reload_needed:
        base, _policies = simulate(snapshot.zones["permanent"], snapshot.policies["permanent"], permanent)
        # After a reload firewalld binds the permanent interfaces, and keeps the
        # runtime bindings of interfaces that have no permanent zone.
        bound = {i for zone in base.values() for i in zone.get("interfaces", [])}
        for name, zone in snapshot.zones["runtime"].items():
            if name in base:
                base[name]["interfaces"] = list(base[name].get("interfaces", [])) + [i for i in zone.get("interfaces", []) if i not in bound]
    else:
        base = snapshot.zones["runtime"]
    runtime = zone_changes("runtime", zones, base)
    return permanent, reload_needed, runtime
