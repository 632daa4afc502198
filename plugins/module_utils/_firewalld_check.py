# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""firewalld: the doctor's checks of bridges against firewalld's zones (pure, no I/O).

problems() takes a _firewalld_read.Snapshot, the bridge_info bridges and
bridge-nf-call-iptables, and returns the doctor's problem records (check,
subject, problem, fix), each fix naming the playbook and the firewall-cmd lines.

PRIVATE: this module is internal to kvmhost.bridging; it is not part of the
public API and may change without notice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from ansible_collections.kvmhost.bridging.plugins.module_utils._firewalld_plan import LIBVIRT_ZONES, is_libvirt_bridge

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from ansible_collections.kvmhost.bridging.plugins.module_utils._firewalld_read import Snapshot

    Bridge = Mapping[str, Any]  # a bridge_info bridge record

CHECKS = ("firewalld_block", "firewalld_zone", "firewalld_forward", "firewalld_libvirt")


def _nf_text(bridge_nf_call: int | None) -> str:
    if bridge_nf_call == 1:
        return "bridge-nf-call-iptables=1"
    if bridge_nf_call == 0:
        return "bridge-nf-call-iptables=0"
    return "br_netfilter is not loaded"


def _bind_fix(name: str, zone: str) -> str:
    return (
        "run playbooks/forwarding.yml (the forwarding role puts %(b)s in a zone with intra-zone forwarding, runtime and"
        " permanent); by hand: firewall-cmd --permanent --zone=%(z)s --change-interface=%(b)s;"
        " firewall-cmd --permanent --zone=%(z)s --add-forward; firewall-cmd --zone=%(z)s --change-interface=%(b)s;"
        " firewall-cmd --zone=%(z)s --add-forward. Or let bridged frames bypass firewalld:"
        " playbooks/forwarding.yml -e forwarding_bridge_nf_call=0." % {"b": name, "z": zone}
    )


def _forward_fix(zone: str) -> str:
    return (
        "run playbooks/forwarding.yml (it turns the zone's forwarding on, runtime and permanent); by hand:"
        " firewall-cmd --permanent --zone=%(z)s --add-forward; firewall-cmd --zone=%(z)s --add-forward."
        " Or let bridged frames bypass firewalld: playbooks/forwarding.yml -e forwarding_bridge_nf_call=0." % {"z": zone}
    )


def _problem(check: str, subject: str, problem: str, fix: str) -> dict[str, str]:
    return {"check": check, "subject": subject, "problem": problem, "fix": fix}


def problems(snapshot: Snapshot, bridges: Iterable[Bridge], bridge_nf_call: int | None) -> list[dict[str, str]]:
    """The firewalld problems of ``bridges`` (bridge_info records); [] when firewalld does not run."""
    if not snapshot.running:
        return []
    found: list[dict[str, str]] = []
    filtered = bridge_nf_call == 1
    for br in bridges:
        name = br["name"]
        zone = snapshot.zone_of(name, "runtime")
        permanent = snapshot.zone_of(name, "permanent")
        has_guests = any(p.get("name") not in (br.get("uplinks") or []) for p in br.get("ports") or [])
        if is_libvirt_bridge(br, snapshot):
            found += _libvirt_bridge_problems(snapshot, br, zone, permanent, filtered, has_guests)
        elif not snapshot.has_policies:
            found += _no_policy_problems(snapshot, name, filtered, has_guests)
        elif zone is None:
            found += _no_zone_problems(snapshot, name, permanent, bridge_nf_call, filtered, has_guests)
        else:
            found += _zone_problems(snapshot, name, zone, permanent, filtered, has_guests)
    return found


def _libvirt_bridge_problems(snapshot: Snapshot, br: Bridge, zone: str | None, permanent: str | None, filtered: bool, has_guests: bool) -> list[dict[str, str]]:
    """A libvirt network's bridge: not bridged to the LAN in libvirt's zone, and forwarding between its guests."""
    name = br["name"]
    default = snapshot.default_zone
    found: list[dict[str, str]] = []
    libvirt_zone = zone or permanent
    if br.get("uplinks") and libvirt_zone in LIBVIRT_ZONES:
        found.append(
            _problem(
                "firewalld_libvirt",
                name,
                "%s bridges %s to the LAN but is in libvirt's zone %s, which libvirt made for its own NAT and routed"
                " networks (its policies and its open services for guests are meant for those)." % (name, ", ".join(br["uplinks"]), libvirt_zone),
                'move it to the LAN\'s zone: playbooks/forwarding.yml -e \'{"forwarding_firewalld_bridges": ["%(b)s"],'
                ' "forwarding_firewalld_bridged_zone": "%(z)s"}\'; by hand: firewall-cmd --permanent --zone=%(z)s'
                " --change-interface=%(b)s; firewall-cmd --zone=%(z)s --change-interface=%(b)s." % {"b": name, "z": default},
            )
        )
    elif libvirt_zone and filtered and has_guests and not snapshot.zones["runtime"].get(libvirt_zone, {}).get("forward"):
        found.append(
            _problem(
                "firewalld_libvirt",
                name,
                "libvirt's network bridge %s is in libvirt's zone %s, which has no intra-zone forwarding; with"
                " bridge-nf-call-iptables=1 firewalld blocks the traffic between its guests. libvirtd manages this"
                " zone's interfaces; the forwarding role leaves libvirt's bridges alone." % (name, libvirt_zone),
                "firewall-cmd --permanent --zone=%(z)s --add-forward; firewall-cmd --zone=%(z)s --add-forward;"
                " or playbooks/forwarding.yml -e forwarding_bridge_nf_call=0." % {"z": libvirt_zone},
            )
        )
    return found


def _no_policy_problems(snapshot: Snapshot, name: str, filtered: bool, has_guests: bool) -> list[dict[str, str]]:
    """firewalld before 0.9 (no policies, no intra-zone forwarding)."""
    found: list[dict[str, str]] = []
    if filtered and has_guests:
        found.append(
            _problem(
                "firewalld_forward",
                name,
                "firewalld %s has no intra-zone forwarding, and with bridge-nf-call-iptables=1 it blocks the guests"
                " of %s." % (snapshot.as_result()["version"], name),
                "let bridged frames bypass firewalld: playbooks/forwarding.yml -e forwarding_bridge_nf_call=0;"
                " or upgrade firewalld to 0.9 or later and run playbooks/forwarding.yml.",
            )
        )
    return found


def _no_zone_problems(
    snapshot: Snapshot, name: str, permanent: str | None, bridge_nf_call: int | None, filtered: bool, has_guests: bool
) -> list[dict[str, str]]:
    """A bridge in no zone at runtime: it falls into the default zone."""
    default = cast(str, snapshot.default_zone)  # problems() asks only a running firewalld's snapshot, which has it (read)
    found: list[dict[str, str]] = []
    target = permanent or default
    if filtered and has_guests:
        found.append(
            _problem(
                "firewalld_block",
                name,
                "firewalld blocks the guests of %s: %s is in no firewalld zone, so it falls into the default zone %s,"
                " and a zone forwards only between interfaces bound to it (intra-zone forwarding). With"
                " bridge-nf-call-iptables=1 every frame between %s's ports, the guests' DHCP too, passes firewalld's"
                " forward rules and is rejected." % (name, name, default, name),
                _bind_fix(name, target),
            )
        )
    else:
        found.append(
            _problem(
                "firewalld_zone",
                name,
                "%s is in no firewalld zone%s, so it falls into the default zone %s. Its guests %s; with"
                " bridge-nf-call-iptables=1 firewalld would block them, and traffic routed through the host is"
                " judged by the default zone."
                % (
                    name,
                    " at runtime (its permanent zone is %s: a reload brings it back)" % permanent if permanent else "",
                    default,
                    "bypass firewalld now (%s)" % _nf_text(bridge_nf_call) if not filtered else "are not there yet",
                ),
                _bind_fix(name, target),
            )
        )
    return found


def _zone_problems(snapshot: Snapshot, name: str, zone: str, permanent: str | None, filtered: bool, has_guests: bool) -> list[dict[str, str]]:
    """A bridge in a zone: the same zone permanently, and forwarding inside it."""
    default = cast(str, snapshot.default_zone)  # problems() asks only a running firewalld's snapshot, which has it (read)
    found: list[dict[str, str]] = []
    if permanent != zone:
        found.append(
            _problem(
                "firewalld_zone",
                name,
                "%s is in zone %s at runtime only (permanent: %s): firewall-cmd --reload or a reboot moves it%s."
                % (name, zone, permanent or "no zone", " to " + permanent if permanent else " into the default zone " + default),
                "run playbooks/forwarding.yml; by hand: firewall-cmd --permanent --zone=%s --change-interface=%s." % (zone, name),
            )
        )
    if filtered and has_guests and not snapshot.zones["runtime"].get(zone, {}).get("forward"):
        found.append(
            _problem(
                "firewalld_forward",
                name,
                "zone %s of %s has no intra-zone forwarding while bridge-nf-call-iptables=1: firewalld blocks the frames"
                " between %s's ports, the guests' DHCP too." % (zone, name, name),
                _forward_fix(zone),
            )
        )
    return found


def bridge_zones(snapshot: Snapshot, bridges: Iterable[Bridge]) -> list[dict[str, Any]]:
    """Per bridge, its zone at runtime and in the permanent configuration, and the zone in effect."""
    return [
        {
            "name": br["name"],
            "zone": snapshot.zone_of(br["name"], "runtime"),
            "zone_permanent": snapshot.zone_of(br["name"], "permanent"),
            "effective_zone": snapshot.effective_zone(br["name"]),
            "libvirt": is_libvirt_bridge(br, snapshot),
        }
        for br in bridges
    ]
