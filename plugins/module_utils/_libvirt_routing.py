# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Routing between libvirt networks, both ways: read, plan and apply.

libvirt's iptables rules (libvirt 9) let a NAT network take only replies
(``LIBVIRT_FWI -o virbrN -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT``
then ``-o virbrN -j REJECT``), so a guest on another network cannot open a
connection to a guest on the NAT network. The fix keeps every network's own
mode (a NAT network keeps its NAT to the outside) and adds, for every ordered
pair of listed networks, one ACCEPT rule in ``LIBVIRT_FWX`` (the first chain
FORWARD jumps to, where libvirt's own rules are only ACCEPTs) and, for a NAT
source, one RETURN rule at the top of the nat table's ``LIBVIRT_PRT`` so that
traffic between the networks is routed, not masqueraded.

libvirt removes and re-adds its own rules on a network (re)start; rules added
once by hand then land behind its rules or are lost with a flushed chain. A
hook (``/etc/libvirt/hooks/network.d/``, run by libvirtd with the network's
name and ``started``) puts the rules back on every start of a listed network.

Layers: ``plan`` is pure (unit-tested); ``read_networks`` and the iptables
runner touch the host.

PRIVATE: this module is internal to kvmhost.bridging; it is not part of the
public API and may change without notice.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shlex
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING, Any

from ansible_collections.kvmhost.bridging.plugins.module_utils import _libvirt_nft as lnft
from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import ModuleError
from ansible_collections.kvmhost.bridging.plugins.module_utils._fileio import atomic_write, read_bytes, remove_file, text_diff
from ansible_collections.kvmhost.bridging.plugins.module_utils._iptables_save import parse_save
from ansible_collections.kvmhost.bridging.plugins.module_utils._libvirt_dep import LibvirtError
from ansible_collections.kvmhost.bridging.plugins.module_utils._libvirt_xml import parse_xml

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Iterable, Mapping, Sequence

    from ansible_collections.kvmhost.bridging.plugins.module_utils._iptables_save import Rule, Table

    # What _ensure_iptables and _ensure_nftables return: (changed, diff entry, apply function).
    RulesPart = tuple[bool, dict[str, str], Callable[[], None]]

COMMENT = "kvmhost.bridging libvirt_routing"
HOOK_PATH = "/etc/libvirt/hooks/network.d/50-kvmhost-bridging-routing"
L3_MODES = ("nat", "route", "open", "isolated")
METHODS = ("rules", "route", "open")
# libvirt's virNetworkXMLFlags: the persistent definition, not the running one
XML_INACTIVE = 1

HOOK_TEMPLATE = """\
#!%(python)s
# Managed by kvmhost.bridging (libvirt_routing): do not edit.
# libvirtd runs this with the network's name and an operation; on "started" of
# one of the networks below it puts the routing rules back (libvirt rebuilds its own).
import subprocess
import sys

NETWORKS = %(networks)s
RULES = %(rules)s


def iptables(table, verb, chain, args):
    argv = ["iptables", "-w", "-t", table, verb, chain]
    if verb == "-I":
        argv.append("1")
    return subprocess.run(argv + args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False).returncode


def main():
    if len(sys.argv) < 3 or sys.argv[1] not in NETWORKS or sys.argv[2] != "started":
        return 0
    for table, chain, args in RULES:
        while iptables(table, "-C", chain, args) == 0:
            if iptables(table, "-D", chain, args) != 0:
                break
        iptables(table, "-I", chain, args)
    return 0


sys.exit(main())
"""


def _ipv4_subnets(network: Mapping[str, Any]) -> list[str]:
    return [s for s in network.get("subnets") or [] if ipaddress.ip_network(s).version == 4]


def rule_args(rule: Mapping[str, Any]) -> list[str]:
    """The iptables arguments of a planned rule (without table, verb and chain)."""
    args = ["-s", rule["source"], "-d", rule["destination"]]
    if rule["chain"] == "LIBVIRT_FWX":
        args = ["-i", rule["in"], "-o", rule["out"], *args]
    return [*args, "-m", "comment", "--comment", COMMENT, "-j", rule["target"]]


def describe(rule: Mapping[str, Any]) -> str:
    return "iptables -t %s -I %s 1 %s" % (rule["table"], rule["chain"], " ".join(rule_args(rule)))


def choose_methods(names: Collection[str], default: str = "rules", per_network: Mapping[str, str] | None = None) -> dict[str, str]:
    """{network name: method}: ``per_network`` over ``default``; raises ModuleError for unknown methods or names."""
    per_network = dict(per_network or {})
    for name, method in [("(default)", default), *per_network.items()]:
        if method not in METHODS:
            raise ModuleError("libvirt_routing method %s for %s: use one of %s. Nothing was changed." % (method, name, ", ".join(METHODS)))
    stray = sorted(set(per_network) - set(names))
    if stray:
        raise ModuleError("libvirt_routing methods name network(s) not in the networks list: %s. Nothing was changed." % ", ".join(stray))
    return {name: per_network.get(name, default) for name in names}


def plan(names: Iterable[str], networks: Iterable[Mapping[str, Any]], methods: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The rules that let ``names`` (libvirt network names) reach each other both ways.

    ``networks`` is _libvirt_iface.networks_of's list. ``methods`` maps a name to
    ``rules`` (the default: keep the forward mode, rules and the hook) or
    ``route``/``open`` (the network's forward mode is changed in libvirt's own
    definition; libvirt's rules then let it reach the other routed networks, no
    rules of ours between two such networks). Returns {networks: [...], rules:
    [...], modes: {name: new forward mode}}; every network says what is done for
    it (``method``). Raises ModuleError, before anything changes, for unknown
    names, networks without a bridge or IPv4 subnet, non-routed forward modes
    and overlapping subnets.
    """
    names = list(dict.fromkeys(names))
    methods = choose_methods(names, "rules", methods)
    chosen = _chosen_networks(names, networks)
    _check_overlaps(chosen)
    modes = {n["network"]: methods[n["network"]] for n in chosen if methods[n["network"]] != "rules" and n["forward"] != methods[n["network"]]}
    routed = {n["network"] for n in chosen if (modes.get(n["network"]) or n["forward"]) in ("route", "open")}
    rules = _plan_rules(chosen, methods, routed)
    summary = [_summary_entry(net, methods[net["network"]], modes, len(routed) == len(chosen)) for net in chosen]
    return {"networks": summary, "rules": rules, "modes": modes}


def _chosen_networks(names: Sequence[str], networks: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The networks records of ``names``, in order; raises ModuleError for too few, unknown or unroutable networks."""
    if len(names) < 2:
        raise ModuleError("libvirt_routing needs at least two network names, got %s." % (names or "none"))
    by_name = {n["network"]: n for n in networks}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ModuleError(
            "Unknown libvirt network(s): %s. Defined networks: %s (virsh net-list --all). Nothing was changed."
            % (", ".join(unknown), ", ".join(sorted(by_name)) or "none"),
        )
    chosen = []
    for name in names:
        net = by_name[name]
        if net["forward"] not in L3_MODES:
            raise ModuleError(
                "libvirt network %s has forward mode %s: its guests are on a host bridge or device, not on a subnet "
                "the host routes; leave it out of libvirt_routing_networks. Nothing was changed." % (name, net["forward"]),
            )
        if not net.get("bridge") or not _ipv4_subnets(net):
            raise ModuleError(
                "libvirt network %s has no bridge or no IPv4 subnet (<ip address=... prefix=...>): there is nothing to route to. Nothing was changed." % name,
            )
        chosen.append(net)
    return chosen


def _check_overlaps(chosen: Sequence[Mapping[str, Any]]) -> None:
    """Raise ModuleError when two of the ``chosen`` networks have overlapping IPv4 subnets."""
    for i, first in enumerate(chosen):
        for second in chosen[i + 1 :]:
            for a in _ipv4_subnets(first):
                for b in _ipv4_subnets(second):
                    if ipaddress.ip_network(a).overlaps(ipaddress.ip_network(b)):
                        raise ModuleError(
                            "libvirt networks %s (%s) and %s (%s) overlap: the host cannot route between them. Give one "
                            "of them another subnet (virsh net-edit). Nothing was changed." % (first["network"], a, second["network"], b),
                        )


def _plan_rules(chosen: Sequence[Mapping[str, Any]], methods: Mapping[str, str], routed: Collection[str]) -> list[dict[str, Any]]:
    """The iptables rules between each ordered pair of ``chosen`` networks that are not both ``routed``."""
    rules = []
    for src in chosen:
        for dst in chosen:
            if src is dst or (src["network"] in routed and dst["network"] in routed):
                continue  # both in route/open mode (now or after the change): libvirt's own rules route them
            for s in _ipv4_subnets(src):
                for d in _ipv4_subnets(dst):
                    rules.append(
                        {
                            "table": "filter",
                            "chain": "LIBVIRT_FWX",
                            "in": src["bridge"],
                            "out": dst["bridge"],
                            "source": s,
                            "destination": d,
                            "target": "ACCEPT",
                            "networks": [src["network"], dst["network"]],
                        }
                    )
                    if src["forward"] == "nat" and methods[src["network"]] == "rules":
                        rules.append(
                            {
                                "table": "nat",
                                "chain": "LIBVIRT_PRT",
                                "in": None,
                                "out": None,
                                "source": s,
                                "destination": d,
                                "target": "RETURN",
                                "networks": [src["network"], dst["network"]],
                            }
                        )
    return rules


def _summary_entry(net: Mapping[str, Any], picked: str, modes: Mapping[str, str], all_routed: bool) -> dict[str, Any]:
    """What plan() does for one network (its ``networks`` entry); ``all_routed``: every chosen network is routed."""
    forward = net["forward"]
    if picked == "rules" and all_routed:
        method = "forward mode %s: libvirt's own rules route it to the other networks, nothing to add" % forward
    elif picked != "rules":
        if net["network"] in modes:
            method = "forward mode %s: changed from %s in libvirt's definition (network restarted; no NAT)" % (picked, forward)
        else:
            method = "forward mode %s already: libvirt's own rules route it, nothing to add" % picked
        forward = picked
    elif forward == "nat":
        method = "hook: NAT kept to the outside, new connections from the other networks accepted, no NAT between them"
    else:
        method = "hook: forward mode %s kept, new connections from and to the other networks accepted" % forward
    return {"network": net["network"], "bridge": net["bridge"], "forward": forward, "subnets": _ipv4_subnets(net), "method_name": picked, "method": method}


def with_forward_mode(xml_text: str, mode: str) -> str | None:
    """A network's XML with ``<forward mode=mode/>`` (its ``<nat>`` dropped); None when it has that mode already."""
    root = parse_xml(xml_text, "network XML")
    forward = root.find("forward")
    if forward is None:
        forward = ET.Element("forward")
        root.insert(1 if root.find("name") is not None else 0, forward)
    if forward.get("mode", "nat") == mode and forward.find("nat") is None:
        return None
    forward.set("mode", mode)
    for child in list(forward):
        if child.tag == "nat":
            forward.remove(child)
    return ET.tostring(root, encoding="unicode")


def forward_mode_changes(conn: Any, modes: Mapping[str, str]) -> list[tuple[str, str, str]]:
    """[(name, before XML, after XML)] for ``modes`` ({name: mode}), read from libvirt's persistent definitions."""
    out = []
    for name in sorted(modes):
        try:
            net = conn.networkLookupByName(name)
        except LibvirtError as exc:
            raise ModuleError("libvirt network %s: %s. Nothing was changed." % (name, exc)) from None
        if not net.isPersistent():
            raise ModuleError(
                "libvirt network %s is transient (not defined): its forward mode cannot be changed through its definition. Nothing was changed." % name
            )
        before = net.XMLDesc(XML_INACTIVE)
        after = with_forward_mode(before, modes[name])
        if after is not None:
            out.append((name, before, after))
    return out


def apply_forward_modes(conn: Any, changes: Iterable[tuple[str, str, str]]) -> None:
    """net-define each changed definition and restart the network when it runs (libvirt applies a mode on start)."""
    for name, _before, after in changes:
        try:
            conn.networkDefineXML(after)
            net = conn.networkLookupByName(name)
            if net.isActive():
                net.destroy()
                net.create()
        except LibvirtError as exc:
            raise ModuleError(
                "libvirt could not change the forward mode of network %s: %s (virsh net-dumpxml %s shows its definition now)." % (name, exc, name)
            ) from None


def hook_text(planned: Mapping[str, Any], python: str) -> str:
    """The hook script for ``planned`` (plan's result), run by ``python``."""
    rules = [[r["table"], r["chain"], rule_args(r)] for r in planned["rules"]]
    return HOOK_TEMPLATE % {
        "python": python,
        "networks": json.dumps(sorted(n["network"] for n in planned["networks"])),
        "rules": json.dumps(rules, indent=1),
    }


class Iptables:
    """iptables through an AnsibleModule's run_command (argv lists)."""

    def __init__(self, module: Any) -> None:
        self.module = module
        self.binary: str | None = module.get_bin_path("iptables")

    def run(self, table: str, verb: str, chain: str, args: Iterable[str] = ()) -> tuple[int, str]:
        if not self.binary:
            raise ModuleError("iptables is not installed; libvirt_routing works with libvirt's iptables backend.")
        argv = [self.binary, "-w", "-t", table, verb, chain]
        if verb == "-I":
            argv.append("1")
        rc, _out, err = self.module.run_command(argv + list(args))
        return rc, err

    def has_chains(self) -> bool:
        return self.run("filter", "-S", "LIBVIRT_FWX")[0] == 0 and self.run("nat", "-S", "LIBVIRT_PRT")[0] == 0

    def ours(self, table: str, chain: str) -> list[str]:
        """Our rules in ``chain`` as iptables -S argument lists (after the chain name)."""
        rc, out, _err = self.module.run_command([self.binary, "-w", "-t", table, "-S", chain])
        if rc != 0:
            return []
        return [line for line in out.splitlines() if COMMENT in line and line.startswith("-A %s " % chain)]


def _rule_line(rule: Mapping[str, Any]) -> str:
    """``rule`` as an iptables -S line (the order iptables prints may differ: compare with ``_key``)."""
    return "-A %s %s" % (rule["chain"], " ".join(shlex.quote(arg) for arg in rule_args(rule)))


def _key(line: str) -> frozenset[tuple[str, ...]]:
    """An iptables -S line as a set of (option, values): the same rule, whatever the order of its options."""
    tokens = shlex.split(line)
    options: list[list[str]] = []
    current: list[str] | None = None
    for token in tokens:
        if token.startswith("-") and not token[1:].replace(".", "").replace("/", "").isdigit():
            current = [token]
            options.append(current)
        elif current is not None:
            current.append(token)
    return frozenset(tuple(option) for option in options)


def _ensure_iptables(module: Any, planned: Mapping[str, Any]) -> RulesPart:
    """(changed, diff entry, apply function) for the iptables backend."""
    ipt = Iptables(module)
    if planned["rules"] and not ipt.has_chains():
        raise ModuleError(
            "libvirt's iptables chains (LIBVIRT_FWX, nat LIBVIRT_PRT) are not there: start a libvirt network first. Nothing was changed.",
        )
    wanted_lines: dict[tuple[str, str], list[tuple[str, Mapping[str, Any]]]] = {}
    for rule in planned["rules"]:
        wanted_lines.setdefault((rule["table"], rule["chain"]), []).append((_rule_line(rule), rule))
    to_add: list[Mapping[str, Any]] = []
    to_remove: list[tuple[str, str, str]] = []
    before_rules = ""
    for table, chain in (("filter", "LIBVIRT_FWX"), ("nat", "LIBVIRT_PRT")):
        present = ipt.ours(table, chain) if ipt.binary else []
        before_rules += "".join("%s\n" % line for line in present)
        present_keys = {_key(line) for line in present}
        wanted = wanted_lines.get((table, chain), [])
        wanted_keys = {_key(line) for line, _r in wanted}
        for line, rule in wanted:
            if _key(line) not in present_keys:
                to_add.append(rule)
        for line in present:
            if _key(line) not in wanted_keys:
                to_remove.append((table, chain, line))
    after_rules = "".join("%s\n" % line for lines in wanted_lines.values() for line, _r in lines)
    diff = {"before_header": "iptables rules (runtime)", "after_header": "iptables rules (runtime)", "before": before_rules, "after": after_rules}

    def apply() -> None:
        for table, chain, line in to_remove:
            spec = line.split(" ", 2)[2]
            module.run_command([ipt.binary, "-w", "-t", table, "-D", chain, *shlex.split(spec)], check_rc=False)
        for rule in to_add:
            rc, err = ipt.run(rule["table"], "-I", rule["chain"], rule_args(rule))
            if rc != 0:
                raise ModuleError("iptables could not add %s: %s" % (describe(rule), err.strip()))

    return bool(to_add or to_remove), diff, apply


def _ensure_nftables(module: Any, planned: Mapping[str, Any]) -> RulesPart:
    """(changed, diff entry, apply function) for libvirt's nftables backend (see _libvirt_nft)."""
    nft = lnft.Nft(module)
    ruleset = nft.ruleset()
    if planned["rules"] and ruleset is None:
        raise ModuleError(
            "libvirt's nftables table (ip libvirt_network) is not there: start a libvirt network first. Nothing was changed.",
        )
    in_place, _present, statements = lnft.compare(ruleset, planned["rules"])
    diff = {
        "before_header": "nft table ip libvirt_network, rules of kvmhost.bridging",
        "after_header": "nft table ip libvirt_network, rules of kvmhost.bridging",
        "before": lnft.current_text(ruleset),
        "after": lnft.wanted_text(planned["rules"]),
    }
    return not in_place, diff, lambda: nft.apply(statements)


def _pick_backend(module: Any, state: str, planned: Mapping[str, Any], backend: str) -> str:
    """The firewall backend the rules go to: what the host runs for a removal, lnft.choose_backend when there are rules."""
    nft_ruleset = lnft.Nft(module).ruleset()
    if state == "absent":
        return "nftables" if nft_ruleset is not None else "iptables"
    if planned["rules"]:
        ipt = Iptables(module)
        iptables_chains = bool(ipt.binary) and ipt.has_chains()
        conf = read_bytes(lnft.NETWORK_CONF)
        return lnft.choose_backend(backend, conf.decode("utf-8", "replace") if conf else "", nft_ruleset is not None, iptables_chains)
    return backend if backend != "auto" else ("nftables" if nft_ruleset is not None else "iptables")


def ensure(
    module: Any,
    names: Iterable[str],
    uri: str | None,
    hook_path: str,
    python: str,
    networks: Iterable[Mapping[str, Any]],
    state: str = "present",
    check_mode: bool = False,
    backend: str = "auto",
    methods: Mapping[str, str] | None = None,
    conn: Any = None,
) -> dict[str, Any]:
    """Read (networks given), plan, compare and apply; the module's result.

    ``backend``: libvirt's firewall backend (``auto`` looks at the host).
    ``methods``: {name: rules|route|open}; ``conn`` the libvirt connection
    (needed when a forward mode changes).
    """
    planned: dict[str, Any] = plan(names, networks, methods) if state == "present" else {"networks": [], "rules": [], "modes": {}}
    mode_changes = forward_mode_changes(conn, planned["modes"]) if planned["modes"] else []
    picked = _pick_backend(module, state, planned, backend)
    rules_part = _ensure_nftables if picked == "nftables" else _ensure_iptables
    rules_changed, rules_diff, apply_rules = rules_part(module, planned)
    if picked == "nftables":
        wanted_hook: str | None = lnft.hook_text(planned["rules"], [n["network"] for n in planned["networks"]], python)
        described = [lnft.describe(r) for r in planned["rules"]]
    else:
        wanted_hook = hook_text(planned, python)
        described = [describe(r) for r in planned["rules"]]
    if not planned["rules"]:
        wanted_hook = None
    raw = read_bytes(hook_path)
    current_hook = raw.decode("utf-8", "replace") if raw is not None else None
    hook_changes = current_hook != wanted_hook
    changed = bool(rules_changed or hook_changes or mode_changes)
    diff = [text_diff(hook_path, current_hook, wanted_hook), rules_diff]
    diff.extend(text_diff("libvirt network %s (definition)" % name, before, after) for name, before, after in mode_changes)
    if changed and not check_mode:
        if mode_changes:
            apply_forward_modes(conn, mode_changes)
            # the restarted networks ran the (old) hook and libvirt rebuilt its rules: compare again
            rules_changed, _diff, apply_rules = rules_part(module, planned)
        if rules_changed:
            apply_rules()
        if hook_changes:
            if wanted_hook is None:
                remove_file(module, hook_path)
            else:
                os.makedirs(os.path.dirname(hook_path), exist_ok=True)
                atomic_write(module, hook_path, wanted_hook.encode("utf-8"), new_mode=0o755)
    return {
        "changed": changed,
        "backend": picked,
        "networks": planned["networks"],
        "rules": described,
        "forward_modes_changed": [name for name, _b, _a in mode_changes],
        "hook": hook_path,
        "hook_changed": hook_changes,
        "uri": uri,
        "diff": diff,
    }


# --------------------------------------------------------------------------
# The doctor: which direction new connections pass, read from iptables-save
# --------------------------------------------------------------------------

# A packet from or to "the LAN": an address that is on none of the networks, through a NIC that is none of the bridges.
OUTSIDE_ADDRESS = "192.0.2.1"
OUTSIDE_IFACE = "(LAN)"
TERMINAL = ("ACCEPT", "DROP", "REJECT")


def _iface_matches(pattern: str, name: str) -> bool:
    if pattern.endswith("+"):
        return name.startswith(pattern[:-1])
    return pattern == name


def _address_matches(value: str, address: str) -> bool:
    try:
        return ipaddress.ip_address(address) in ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False


def _rule_matches(rule: Rule, packet: Mapping[str, str]) -> bool:
    """Whether ``rule`` (an _iptables_save.Rule) matches a new ICMP echo ``packet``; unknown matches do not match."""
    for opt, negate, value in rule.generic:
        if value is None:  # an option without a value (-f, fragments): not this packet
            hit = False
        elif opt in ("-i", "-o"):
            hit = _iface_matches(value, packet[opt])
        elif opt in ("-s", "-d"):
            hit = _address_matches(value, packet[opt])
        elif opt == "-p":
            hit = value in ("icmp", "1")
        else:
            hit = False
        if hit == negate:
            return False
    for name, args in rule.matches:
        if name == "comment":
            continue
        if name in ("conntrack", "state"):
            words = list(args)
            negate = "!" in words
            states = [a for a in words if a not in ("!", "--ctstate", "--state")]
            hit = any("NEW" in s.split(",") for s in states)
            if hit == negate:
                return False
            continue
        return False  # physdev (routed packets are not bridged), marks, sets...: not this packet
    return True


def _walk(table: Table, chain: str, packet: Mapping[str, str], depth: int = 0) -> tuple[str | None, str, str | None]:
    """(verdict, chain, rule text) of ``packet`` through ``chain``; (None, ...) when the chain returns."""
    if depth > 20:
        return None, chain, None
    for line in table.chain_rules(chain):
        rule = line.rule
        if rule is None or not _rule_matches(rule, packet):
            continue
        target = rule.goto or rule.target
        if target in TERMINAL:
            return target, chain, line.text
        if target == "RETURN":
            return None, chain, None
        if target and table.has_chain(target):
            verdict, where, text = _walk(table, target, packet, depth + 1)
            if verdict is not None or rule.goto:
                return verdict, where, text
    return None, chain, None


def verdict(table: Table, packet: Mapping[str, str]) -> dict[str, Any]:
    """{verdict, chain, rule} of a new packet through FORWARD of an iptables-save filter ``table`` (_iptables_save.Table)."""
    result, chain, text = _walk(table, "FORWARD", packet)
    if result is None:
        policy = table.chains.get("FORWARD", "ACCEPT")
        return {"verdict": policy if policy in TERMINAL else "ACCEPT", "chain": "FORWARD", "rule": "policy %s" % policy}
    return {"verdict": result, "chain": chain, "rule": text}


def _endpoint(net: Mapping[str, Any] | None) -> dict[str, Any]:
    if net is None:
        return {"name": "the LAN", "iface": OUTSIDE_IFACE, "address": OUTSIDE_ADDRESS}
    subnet = ipaddress.ip_network(_ipv4_subnets(net)[0])
    return {"name": net["network"], "iface": net["bridge"], "address": str(next(subnet.hosts()) + 9), "net": net}


def directions(networks: Iterable[Mapping[str, Any]], table: Table | None, ruleset: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every direction between the L3 libvirt networks and between each and the LAN, with its verdict.

    ``table`` is an iptables-save filter table (_iptables_save.Table) or None; ``ruleset`` a parsed ``nft -j list
    ruleset`` (libvirt's nftables backend) or None. With both, a direction passes only when both let it through:
    iptables-nft's and libvirt's nftables chains are base chains of the same forward hook, so a drop or reject in
    either is final.
    """
    nets = [n for n in networks if n.get("active") and n.get("forward") in L3_MODES and n.get("bridge") and _ipv4_subnets(n)]
    ends = [_endpoint(n) for n in nets]
    out: list[dict[str, Any]] = []
    for src in [*ends, _endpoint(None)]:
        for dst in [*ends, _endpoint(None)]:
            if src is dst or ("net" not in src and "net" not in dst):
                continue
            packet = {"-i": src["iface"], "-o": dst["iface"], "-s": src["address"], "-d": dst["address"]}
            found = verdict(table, packet) if table is not None else None
            if ruleset is not None and (found is None or found["verdict"] == "ACCEPT"):
                nft_found = lnft.forward_verdict(ruleset, {"in": src["iface"], "out": dst["iface"], "saddr": src["address"], "daddr": dst["address"]})
                if found is None or nft_found["verdict"] != "ACCEPT":
                    found = nft_found
            if found is None:
                continue  # neither rule set given: no verdict (doctor_problems never asks so)
            found.update({"from": src["name"], "to": dst["name"], "from_net": src.get("net"), "to_net": dst.get("net")})
            out.append(found)
    return out


def _fix(rejected: Mapping[str, Any], names: Sequence[str]) -> str:
    dst = rejected["to_net"]
    playbook = "run playbooks/libvirt_routing.yml with libvirt_routing_networks=[%s]" % ", ".join(names)
    if dst is not None and dst["forward"] == "nat":
        return (
            "%s is NAT: libvirt accepts only replies into %s; %s (NAT to the outside kept), or change %s's forward "
            "mode to route (virsh net-edit %s) if it needs no NAT." % (dst["network"], ", ".join(_ipv4_subnets(dst)), playbook, dst["network"], dst["network"])
        )
    return "%s, or accept the traffic in front of that rule." % playbook


def doctor_problems(networks: Iterable[Mapping[str, Any]], save_text: str | None, nft_text: str | None = None) -> tuple[list[dict[str, str]], list[str]]:
    """(problems, report lines) of the doctor's libvirt_routing check.

    From ``iptables-save -t filter`` text (libvirt's iptables backend) and/or ``nft -j list ruleset`` text (its
    nftables backend, libvirt 10+); the nftables rules are walked only when libvirt's table ``ip libvirt_network``
    is there or iptables-save has nothing (an nftables-only host).
    """
    doc = parse_save(save_text or "", "ipv4", "iptables-save")
    table = doc.tables.get("filter")
    ruleset = lnft.parse_ruleset(nft_text)
    if ruleset is not None and not lnft.has_table(ruleset) and table is not None:
        ruleset = None  # iptables backend: iptables-save already shows what the forward hook does
    if table is None and ruleset is None:
        return [], []
    found = directions(networks, table, ruleset)
    problems, lines = [], []
    for item in found:
        word = "passes" if item["verdict"] == "ACCEPT" else "is rejected (%s)" % item["verdict"]
        lines.append("libvirt routing: new connections %s -> %s %s: %s, chain %s" % (item["from"], item["to"], word, item["rule"], item["chain"]))
        if item["verdict"] == "ACCEPT" or item["from_net"] is None or (item["to_net"] is None):
            continue  # to or from the LAN: a NAT network takes no new connections from outside, by design
        reverse = next((r for r in found if r["from"] == item["to"] and r["to"] == item["from"]), None)
        back = " while %s -> %s passes" % (item["to"], item["from"]) if reverse and reverse["verdict"] == "ACCEPT" else ""
        values = (item["from"], item["from_net"]["bridge"], item["to"], item["to_net"]["bridge"], item["rule"], item["chain"], back)
        problems.append(
            {
                "check": "libvirt_routing",
                "subject": "%s->%s" % (item["from"], item["to"]),
                "problem": "New connections from libvirt network %s (%s) to %s (%s) are rejected by the rule '%s' in chain %s%s: a one-way ping." % values,
                "fix": _fix(item, [item["to"], item["from"]]),
            }
        )
    return problems, lines
