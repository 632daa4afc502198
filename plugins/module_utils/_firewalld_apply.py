# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""firewalld: the firewalld_forward task, read -> plan -> apply through firewall-cmd.

Permanent changes first, then ``firewall-cmd --reload`` where the runtime
needs it (new zones, policies), then the runtime zone changes, planned again
against the runtime read after the reload. Every command is an argument list.

PRIVATE: this module is internal to kvmhost.bridging; it is not part of the
public API and may change without notice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import ModuleError
from ansible_collections.kvmhost.bridging.plugins.module_utils._firewalld_plan import (
    Change,
    addressed_interfaces,
    bridge_wants,
    merge_zones,
    plan,
    policy_wants,
    simulate,
    zone_changes,
    zone_wants,
)
from ansible_collections.kvmhost.bridging.plugins.module_utils._firewalld_read import FirewallCmd, read

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from ansible_collections.kvmhost.bridging.plugins.module_utils._firewalld_plan import PolicyWant, ZoneWant
    from ansible_collections.kvmhost.bridging.plugins.module_utils._firewalld_read import Snapshot

NOT_RUNNING = (
    "firewalld is not running on this host, so its zones and policies cannot be changed. Start it"
    " (systemctl enable --now firewalld), or, on a host that uses iptables-services, use kvmhost.bridging.reject_rule"
    " (the forwarding role picks it by itself when firewalld is not running)."
)


def _zone_text(name: str, zone: Mapping[str, Any]) -> str:
    return "zone %s: interfaces=[%s] forward=%s masquerade=%s" % (
        name,
        " ".join(sorted(zone.get("interfaces", []))),
        "yes" if zone.get("forward") else "no",
        "yes" if zone.get("masquerade") else "no",
    )


def _policy_text(name: str, policy: Mapping[str, Any]) -> str:
    return "policy %s: ingress=[%s] egress=[%s] target=%s masquerade=%s" % (
        name,
        " ".join(sorted(policy.get("ingress-zones", []))),
        " ".join(sorted(policy.get("egress-zones", []))),
        policy.get("target", "CONTINUE"),
        "yes" if policy.get("masquerade") else "no",
    )


def render(zones: Mapping[str, Mapping[str, Any]], policies: Mapping[str, Mapping[str, Any]], zone_names: Iterable[str], policy_names: Iterable[str]) -> str:
    lines = []
    for name in zone_names:
        if name in zones:
            lines.append(_zone_text(name, zones[name]))
    for name in policy_names:
        if name in policies:
            lines.append(_policy_text(name, policies[name]))
    return "".join(line + "\n" for line in lines)


def diff_of(
    snapshot: Snapshot,
    permanent: Iterable[Change],
    reload_needed: bool,
    runtime: Iterable[Change],
    zone_names: Iterable[str],
    policy_names: Iterable[str],
) -> list[dict[str, str]]:
    """One before/after diff per scope, of the zones and policies the task touches."""
    diffs = []
    after_perm_zones, after_perm_policies = simulate(snapshot.zones["permanent"], snapshot.policies["permanent"], permanent)
    if reload_needed:
        base_zones = after_perm_zones
        base_policies = after_perm_policies
    else:
        base_zones, base_policies = snapshot.zones["runtime"], snapshot.policies["runtime"]
    after_rt_zones, after_rt_policies = simulate(base_zones, base_policies, runtime)
    for scope, after_zones, after_policies in (("permanent", after_perm_zones, after_perm_policies), ("runtime", after_rt_zones, after_rt_policies)):
        diffs.append(
            {
                "before_header": "firewalld %s (before)" % scope,
                "after_header": "firewalld %s (after)" % scope,
                "before": render(snapshot.zones[scope], snapshot.policies[scope], zone_names, policy_names),
                "after": render(after_zones, after_policies, zone_names, policy_names),
            }
        )
    return diffs


def run(module: Any) -> dict[str, Any]:
    params = module.params
    cmd = FirewallCmd(module)
    snapshot = read(cmd)
    if not snapshot.running:
        if params["require_running"]:
            raise ModuleError(NOT_RUNNING)
        return {
            "changed": False,
            "firewalld": snapshot.as_result(),
            "changes": [],
            "reloaded": False,
            "bridges": [],
            "msg": "firewalld is not running: nothing done",
        }

    zones, policies, report = _wants(params, snapshot)
    permanent, reload_needed, runtime = plan(snapshot, zones, policies)
    zone_names = [z.name for z in zones]
    policy_names = [p.name for p in policies]
    changes = list(permanent) + ([Change("runtime", "firewalld", "", "reload")] if reload_needed else []) + list(runtime)
    result: dict[str, Any] = {
        "firewalld": snapshot.as_result(),
        "bridges": report,
        "reloaded": False,
    }
    if module._diff:
        result["diff"] = diff_of(snapshot, permanent, reload_needed, runtime, zone_names, policy_names)

    if not module.check_mode and changes:
        changes = _apply(cmd, result, zones, permanent, reload_needed, runtime)
    result["changed"] = bool(changes)
    result["changes"] = [c.as_result() for c in changes]
    lines = [entry["msg"] for entry in report]
    if changes:
        lines.append(
            "%s %d firewalld change(s), runtime and permanent%s"
            % ("would make" if module.check_mode else "made", len(changes), ", with a reload" if reload_needed else "")
        )
    else:
        lines.append("firewalld already had these zones and policies, runtime and permanent")
    result["msg"] = "; ".join(lines)
    result["summary"] = lines
    return result


def _wants(params: Mapping[str, Any], snapshot: Snapshot) -> tuple[list[ZoneWant], list[PolicyWant], list[dict[str, Any]]]:
    """(zone wants, policy wants, bridge report): the zones and policies asked for, and those the bridges need."""
    zones = zone_wants(params["zones"])
    policies = policy_wants(params["policies"])
    report: list[dict[str, Any]] = []
    if params["bridges"]:
        # Imported here: only the bridges option reads netlink.
        from ansible_collections.kvmhost.bridging.plugins.module_utils._bridge_info import gather
        from ansible_collections.kvmhost.bridging.plugins.module_utils._rtnl import dump_addresses, dump_links

        info = gather()
        interfaces = addressed_interfaces(dump_links(), dump_addresses())
        more_zones, more_policies, report = bridge_wants(
            info["bridges"],
            params["bridges"],
            snapshot,
            bridged_zone=params["bridged_zone"],
            routed_zone=params["routed_zone"],
            routed_to_zone=params["routed_to_zone"],
            routed_directions=params["routed_directions"],
            routed_masquerade=params["routed_masquerade"],
            bridge_nf_call=info["forwarding"].get("bridge_nf_call_iptables"),
            interfaces=interfaces,
        )
        zones = zones + more_zones
        named = {p.name for p in policies}
        policies = policies + [p for p in more_policies if p.name not in named]
    return merge_zones(zones), policies, report


def _apply(
    cmd: FirewallCmd, result: dict[str, Any], zones: Sequence[ZoneWant], permanent: Sequence[Change], reload_needed: bool, runtime: Sequence[Change]
) -> list[Change]:
    """Make the permanent changes, reload when needed (then plan the runtime again), make the runtime ones; return all."""
    changes = list(permanent) + ([Change("runtime", "firewalld", "", "reload")] if reload_needed else []) + list(runtime)
    for change in permanent:
        cmd.run(change.argv())
    if reload_needed:
        cmd.run(["--reload"])
        result["reloaded"] = True
        after = read(cmd)
        runtime = zone_changes("runtime", zones, after.zones["runtime"])
        changes = [*permanent, Change("runtime", "firewalld", "", "reload"), *runtime]
    for change in runtime:
        cmd.run(change.argv())
    return changes
