# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""libvirt_routing with libvirt's nftables firewall backend (libvirt 10+, EL10).

With ``firewall_backend = "nftables"`` (network.conf) libvirt keeps its rules in
its own tables, ``ip libvirt_network`` and ``ip6 libvirt_network``:

- chain ``forward``: ``type filter hook forward priority 0``, which jumps to
  ``guest_cross``, then ``guest_input``, then ``guest_output``;
- ``guest_input`` takes, for a NAT network, only replies
  (``oif virbrN ip daddr SUBNET ct state established,related accept``, then
  ``oif virbrN reject``): the one-way ping of issue 15;
- ``guest_cross`` holds only accepts (``iif virbrN oif virbrN accept``);
- chain ``guest_nat``: ``type nat hook postrouting priority 100`` (srcnat),
  with ``return`` for broadcast/multicast and then the masquerade rules.

Why the rules go into libvirt's own chains, not into a table of our own:

- In nftables an ``accept`` ends only the base chain it is in. The packet then
  goes on through every later base chain of the same hook (higher priority
  number), and a ``reject``/``drop`` in any of them is final. An accept in a
  forward chain of ours at priority -1 would therefore not save the packet from
  libvirt's ``reject`` at priority 0. What works is an accept that libvirt's own
  forward base chain reaches before its reject: a rule in ``guest_cross``, the
  first chain ``forward`` jumps to. An accept there ends libvirt's base chain
  (a jump's verdict is the base chain's verdict); chains of other tables at
  later priorities (firewalld's, the admin's) still have their say, as they
  should. libvirt only adds accepts to ``guest_cross``, so the position of our
  rules within it does not matter.
- NAT is decided by the first nat base chain that sets up a mapping for the
  connection; a nat chain that only accepts leaves the next one free to
  masquerade. So a postrouting chain of ours before libvirt's (priority 99)
  could not exempt anything. The exemption is a ``return`` at the top of
  libvirt's ``guest_nat`` (as libvirt's own broadcast/multicast exemptions):
  ``return`` in a base chain applies its policy (accept) without a mapping,
  so the traffic between the networks is routed with its own addresses.
  libvirt inserts its new rules at the top of ``guest_nat`` when a network
  starts, above ours: the network hook puts ours back on top then.

Every change is one ``nft -f`` transaction (deletes of our old rules by handle,
then inserts), applied atomically. Our rules carry COMMENT.

Layers: the planning, the reading of ``nft -j list`` and the doctor's walk are
pure (unit-tested from captured rule sets); ``Nft`` runs nft through the module.

PRIVATE: this module is internal to kvmhost.bridging; it is not part of the
public API and may change without notice.
"""

from __future__ import annotations

import ipaddress
import json
import re
from typing import TYPE_CHECKING, Any, Optional

from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import ModuleError

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Mapping, Sequence

    # A rule of ours, comparable whatever nft prints: (chain, iifname, oifname, saddr, daddr, verdict).
    RuleKey = tuple[str, Any, Any, Optional[str], Optional[str], Optional[str]]

COMMENT = "kvmhost.bridging libvirt_routing"
FAMILY = "ip"
TABLE = "libvirt_network"
FILTER_CHAIN = "guest_cross"
NAT_CHAIN = "guest_nat"
NETWORK_CONF = "/etc/libvirt/network.conf"

HOOK_TEMPLATE = """\
#!%(python)s
# Managed by kvmhost.bridging (libvirt_routing, nftables backend): do not edit.
# libvirtd runs this with the network's name and an operation; on "started" of
# one of the networks below it puts the routing rules back on top of libvirt's
# chains (libvirt inserts its own rules at the top when a network starts).
# One nft -f transaction: our old rules deleted by handle, ours inserted.
import json
import subprocess
import sys

NETWORKS = %(networks)s
COMMENT = %(comment)s
STATEMENTS = %(statements)s


def main():
    if len(sys.argv) < 3 or sys.argv[1] not in NETWORKS or sys.argv[2] != "started":
        return 0
    listed = subprocess.run(["nft", "-j", "list", "table", "ip", "libvirt_network"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=False)
    if listed.returncode != 0:
        return 0
    lines = []
    for item in json.loads(listed.stdout or "{}").get("nftables", []):
        rule = item.get("rule")
        if rule and rule.get("comment") == COMMENT:
            lines.append("delete rule ip libvirt_network %%s handle %%d" %% (rule["chain"], rule["handle"]))
    lines.extend(STATEMENTS)
    subprocess.run(["nft", "-f", "-"], input=("\\n".join(lines) + "\\n").encode(), stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=False)
    return 0


sys.exit(main())
"""


# --------------------------------------------------------------------------
# Which backend
# --------------------------------------------------------------------------


def configured_backend(conf_text: str | None) -> str | None:
    """``firewall_backend`` of libvirt's network.conf text (None when not set)."""
    for line in (conf_text or "").splitlines():
        m = re.match(r'^\s*firewall_backend\s*=\s*"([^"]*)"', line)
        if m:
            return m.group(1)
    return None


def choose_backend(wanted: str, conf_text: str | None, nft_table: bool, iptables_chains: bool) -> str:
    """The backend libvirt uses on the host: ``iptables`` or ``nftables``.

    ``wanted`` is the module's option (``auto`` or a backend); ``nft_table``
    whether ``ip libvirt_network`` exists, ``iptables_chains`` whether
    LIBVIRT_FWX and nat LIBVIRT_PRT do. The rules libvirt has actually made win
    over the configuration (a changed network.conf counts after a libvirtd
    restart only). Raises ModuleError when nothing is there to work with.
    """
    if wanted in ("iptables", "nftables"):
        return wanted
    if nft_table and not iptables_chains:
        return "nftables"
    if iptables_chains and not nft_table:
        return "iptables"
    configured = configured_backend(conf_text)
    if nft_table and iptables_chains and configured in ("iptables", "nftables"):
        return configured
    if nft_table and iptables_chains:
        return "nftables"  # libvirt 10+ prefers nftables when both are possible
    raise ModuleError(
        "libvirt's firewall rules are not there: neither its iptables chains (LIBVIRT_FWX, nat LIBVIRT_PRT) nor its "
        "nftables table (ip libvirt_network). Start a libvirt network first (virsh net-start). Nothing was changed.",
    )


# --------------------------------------------------------------------------
# Planning (pure)
# --------------------------------------------------------------------------


def rule_text(rule: Mapping[str, Any]) -> str:
    """The nft rule body of a planned rule (_libvirt_routing.plan's rule dicts)."""
    parts: list[str] = []
    if rule["chain"] == "LIBVIRT_FWX":
        parts += ['iifname "%s"' % rule["in"], 'oifname "%s"' % rule["out"]]
    parts += [
        "ip saddr %s" % rule["source"],
        "ip daddr %s" % rule["destination"],
        "counter",
        "accept" if rule["target"] == "ACCEPT" else "return",
        'comment "%s"' % COMMENT,
    ]
    return " ".join(parts)


def nft_chain(rule: Mapping[str, Any]) -> str:
    return FILTER_CHAIN if rule["chain"] == "LIBVIRT_FWX" else NAT_CHAIN


def insert_statements(rules: Sequence[Mapping[str, Any]]) -> list[str]:
    """``insert rule`` lines that leave ``rules`` at the top of their chains, in their order."""
    return ["insert rule %s %s %s %s" % (FAMILY, TABLE, nft_chain(r), rule_text(r)) for r in reversed(rules)]


def describe(rule: Mapping[str, Any]) -> str:
    return "nft insert rule %s %s %s %s" % (FAMILY, TABLE, nft_chain(rule), rule_text(rule))


def _prefix(right: Any) -> str:
    if isinstance(right, dict) and "prefix" in right:
        return "%s/%s" % (right["prefix"]["addr"], right["prefix"]["len"])
    if isinstance(right, str):
        return str(ipaddress.ip_network(right, strict=False))
    return json.dumps(right, sort_keys=True)


def rule_key(chain: str, expr: Iterable[Mapping[str, Any]]) -> RuleKey:
    """A comparable form of a rule of ours: (chain, iifname, oifname, saddr, daddr, verdict)."""
    found: dict[str, Any] = {"iifname": None, "oifname": None, "saddr": None, "daddr": None, "verdict": None}
    for item in expr:
        match = item.get("match")
        if match:
            left = match.get("left") or {}
            if "meta" in left and left["meta"].get("key") in ("iifname", "oifname"):
                found[left["meta"]["key"]] = match.get("right")
            elif "payload" in left and left["payload"].get("field") in ("saddr", "daddr"):
                found[left["payload"]["field"]] = _prefix(match.get("right"))
        for verdict in ("accept", "return"):
            if verdict in item:
                found["verdict"] = verdict
    return (chain, found["iifname"], found["oifname"], found["saddr"], found["daddr"], found["verdict"])


def planned_key(rule: Mapping[str, Any]) -> RuleKey:
    return (
        nft_chain(rule),
        rule["in"],
        rule["out"],
        str(ipaddress.ip_network(rule["source"])),
        str(ipaddress.ip_network(rule["destination"])),
        "accept" if rule["target"] == "ACCEPT" else "return",
    )


def table_rules(ruleset: Mapping[str, Any] | None, family: str = FAMILY, table: str = TABLE) -> list[dict[str, Any]]:
    """The rule dicts of ``family table`` in a parsed ``nft -j list`` document, in order."""
    return [
        item["rule"]
        for item in (ruleset or {}).get("nftables", [])
        if "rule" in item and item["rule"].get("family") == family and item["rule"].get("table") == table
    ]


def has_table(ruleset: Mapping[str, Any] | None, family: str = FAMILY, table: str = TABLE) -> bool:
    return any("table" in item and item["table"].get("family") == family and item["table"].get("name") == table for item in (ruleset or {}).get("nftables", []))


def compare(ruleset: Mapping[str, Any] | None, rules: Sequence[Mapping[str, Any]]) -> tuple[bool, list[tuple[str, int, RuleKey]], list[str]]:
    """What to change so that ``rules`` (planned) are ours in libvirt's table.

    Returns (in_place, present, statements): ``present`` are our rules now, as
    ``(chain, handle, key)``; ``statements`` the nft -f lines that make the table
    right (empty when in place). Our NAT exemptions must sit above every rule of
    libvirt's in ``guest_nat``; in ``guest_cross`` the position does not matter.
    """
    all_rules = table_rules(ruleset)
    present = [(r["chain"], r["handle"], rule_key(r["chain"], r.get("expr") or [])) for r in all_rules if r.get("comment") == COMMENT]
    wanted = sorted(planned_key(r) for r in rules)
    in_place = sorted(key for _c, _h, key in present) == wanted
    if in_place:
        nat = [r for r in all_rules if r["chain"] == NAT_CHAIN]
        ours_first = [r.get("comment") == COMMENT for r in nat]
        in_place = ours_first == sorted(ours_first, reverse=True)
    if in_place:
        return True, present, []
    statements = ["delete rule %s %s %s handle %d" % (FAMILY, TABLE, chain, handle) for chain, handle, _k in present]
    return False, present, statements + insert_statements(rules)


def current_text(ruleset: Mapping[str, Any] | None) -> str:
    """Our rules now, one ``chain: body`` line each, for the diff."""
    return "".join("%s: %s\n" % (r["chain"], render(r.get("expr") or [], r.get("comment"))) for r in table_rules(ruleset) if r.get("comment") == COMMENT)


def wanted_text(rules: Iterable[Mapping[str, Any]]) -> str:
    return "".join("%s: %s\n" % (nft_chain(r), rule_text(r)) for r in rules)


def hook_text(planned_rules: Sequence[Mapping[str, Any]], network_names: Iterable[str], python: str) -> str:
    return HOOK_TEMPLATE % {
        "python": python,
        "networks": json.dumps(sorted(network_names)),
        "comment": json.dumps(COMMENT),
        "statements": json.dumps(insert_statements(planned_rules), indent=1),
    }


# --------------------------------------------------------------------------
# Rendering nft JSON expressions (for reports)
# --------------------------------------------------------------------------


def _value(value: Any) -> str:
    if isinstance(value, dict):
        if "prefix" in value:
            return "%s/%s" % (value["prefix"]["addr"], value["prefix"]["len"])
        if "set" in value:
            return "{ %s }" % ", ".join(_value(v) for v in value["set"])
        if "range" in value:
            return "%s-%s" % tuple(_value(v) for v in value["range"])
        if "meta" in value:
            return "meta %s" % value["meta"]["key"]
        if "payload" in value:
            p = value["payload"]
            return "%s %s" % (p.get("protocol", "?"), p.get("field", "?"))
        if "ct" in value:
            return "ct %s" % value["ct"]["key"]
        return json.dumps(value, sort_keys=True)
    if isinstance(value, list):
        return ",".join(_value(v) for v in value)
    if isinstance(value, str) and not re.match(r"^[\w./:-]+$", value):
        return '"%s"' % value
    return str(value)


def render(expr: Iterable[Mapping[str, Any]], comment: str | None = None) -> str:
    """An nft-like text of a rule's JSON expressions (close to ``nft list``)."""
    words = []
    for item in expr:
        ((key, body),) = item.items()
        if key == "match":
            left = _value(body.get("left"))
            if left.startswith("meta "):
                left = left[5:]
            right = body.get("right")
            right = '"%s"' % right if isinstance(right, str) and left in ("iif", "oif", "iifname", "oifname") else _value(right)
            op = body.get("op", "==")
            words.append("%s %s%s" % (left, "" if op in ("==", "in") else op + " ", right))
        elif key in ("jump", "goto"):
            words.append("%s %s" % (key, body["target"]))
        elif key == "reject":
            words.append("reject" + (" with %s type %s" % (body["type"], body["expr"]) if body and "expr" in body else ""))
        elif key == "counter":
            words.append("counter")
        elif body is None:
            words.append(key)
        else:
            words.append("%s %s" % (key, _value(body)))
    if comment:
        words.append('comment "%s"' % comment)
    return " ".join(words)


# --------------------------------------------------------------------------
# The doctor's walk through the forward hook (pure)
# --------------------------------------------------------------------------

TERMINAL: dict[str, str] = {"accept": "ACCEPT", "drop": "DROP", "reject": "REJECT"}


def _iface(pattern: str, name: str) -> bool:
    if pattern.endswith("*"):
        return name.startswith(pattern[:-1])
    return pattern == name


def _address_in(right: Any, address: str) -> bool:
    if isinstance(right, dict) and "set" in right:
        return any(_address_in(v, address) for v in right["set"])
    if isinstance(right, dict) and "range" in right:
        # The walk is over IPv4 packets (payload protocol ip), so a range here is of IPv4 addresses.
        low, high = (ipaddress.IPv4Address(v) for v in right["range"])
        return low <= ipaddress.IPv4Address(address) <= high
    try:
        return ipaddress.ip_address(address) in ipaddress.ip_network(_value(right), strict=False)
    except ValueError:
        return False


def _values(right: Any) -> list[str]:
    if isinstance(right, dict) and "set" in right:
        return [str(v) for v in right["set"]]
    if isinstance(right, list):
        return [str(v) for v in right]
    return [str(right)]


def _match(match: Mapping[str, Any], packet: Mapping[str, str]) -> bool | None:
    """Whether a match of a rule holds for a new ICMP echo ``packet``; None when it cannot tell (not this packet)."""
    left, right, op = match.get("left") or {}, match.get("right"), match.get("op", "==")
    if "meta" in left:
        key = left["meta"].get("key")
        if key in ("iif", "iifname", "oif", "oifname"):
            name = packet["in"] if key.startswith("i") else packet["out"]
            hit = any(_iface(v, name) for v in _values(right))
        elif key in ("l4proto", "protocol", "nfproto"):
            hit = bool({"icmp", "1", "ip", "ipv4"} & set(_values(right)))
        else:
            return None
    elif "payload" in left and left["payload"].get("protocol") == "ip" and left["payload"].get("field") in ("saddr", "daddr"):
        hit = _address_in(right, packet["saddr" if left["payload"]["field"] == "saddr" else "daddr"])
    elif "ct" in left and left["ct"].get("key") == "state":
        hit = "new" in _values(right)
    else:
        return None
    if op == "!=":
        return not hit
    if op in ("==", "in"):
        return hit
    return None


def _walk(
    chains: Collection[str], rules_of: Mapping[str, Sequence[Mapping[str, Any]]], chain: str, packet: Mapping[str, str], depth: int = 0
) -> tuple[str | None, str, str | None]:
    """(verdict word, chain, rule text) of ``packet`` in ``chain``; verdict None when the chain ends or returns."""
    if depth > 20:
        return None, chain, None
    for rule in rules_of.get(chain, []):
        expr = rule.get("expr") or []
        if not all(_match(item["match"], packet) for item in expr if "match" in item):
            continue
        if any(next(iter(item)) not in ("match", "counter", "accept", "drop", "reject", "jump", "goto", "return", "log", "comment") for item in expr):
            continue  # a rule with a statement this walk does not follow (limits, sets, marks...)
        for item in expr:
            ((key, body),) = item.items()
            if key in TERMINAL:
                return key, chain, render(expr, rule.get("comment"))
            if key == "return":
                return None, chain, None
            if key in ("jump", "goto") and body["target"] in chains:
                verdict, where, text = _walk(chains, rules_of, body["target"], packet, depth + 1)
                if verdict is not None or key == "goto":
                    return verdict, where, text
    return None, chain, None


def forward_verdict(ruleset: Mapping[str, Any] | None, packet: Mapping[str, str]) -> dict[str, Any]:
    """{verdict, chain, rule} of a new IPv4 packet through every filter base chain of the forward hook.

    Base chains (tables ``ip`` and ``inet``) run in priority order. An accept
    ends one base chain only, the packet goes on to the next; drop or reject is
    final; a chain's end applies its policy.
    """
    items = (ruleset or {}).get("nftables", [])
    chains: dict[tuple[str, str, str], dict[str, Any]] = {}
    rules_of: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for item in items:
        if "chain" in item and item["chain"]["family"] in ("ip", "inet"):
            c = item["chain"]
            chains[(c["family"], c["table"], c["name"])] = c
        elif "rule" in item and item["rule"]["family"] in ("ip", "inet"):
            r = item["rule"]
            rules_of.setdefault((r["family"], r["table"], r["chain"]), []).append(r)
    bases = sorted(
        (c for c in chains.values() if c.get("hook") == "forward" and c.get("type") == "filter"), key=lambda c: (c.get("prio", 0), c["table"], c["name"])
    )
    last: dict[str, Any] = {"verdict": "ACCEPT", "chain": "forward", "rule": "no forward chain"}
    for base in bases:
        family, table = base["family"], base["table"]
        names = {name for f, t, name in chains if f == family and t == table}
        local_rules = {name: rules for (f, t, name), rules in rules_of.items() if f == family and t == table}
        verdict, where, text = _walk(names, local_rules, base["name"], packet)
        label = "%s %s %s" % (family, table, where)
        if verdict is None:
            policy = base.get("policy", "accept")
            verdict, label, text = policy, "%s %s %s" % (family, table, base["name"]), "policy %s" % policy
        if verdict != "accept":
            return {"verdict": TERMINAL.get(verdict, verdict.upper()), "chain": label, "rule": text}
        last = {"verdict": "ACCEPT", "chain": label, "rule": text}
    return last


def parse_ruleset(text: str | None) -> dict[str, Any] | None:
    """``nft -j list ruleset`` output parsed; None for empty or unreadable text."""
    try:
        doc = json.loads(text) if text and text.strip() else None
    except ValueError:
        return None
    return doc if isinstance(doc, dict) and "nftables" in doc else None


# --------------------------------------------------------------------------
# The host side
# --------------------------------------------------------------------------


class Nft:
    """nft through an AnsibleModule's run_command."""

    def __init__(self, module: Any) -> None:
        self.module = module
        self.binary: str | None = module.get_bin_path("nft")

    def ruleset(self) -> dict[str, Any] | None:
        """The parsed ``nft -j list table ip libvirt_network`` (None when nft or the table is missing)."""
        if not self.binary:
            return None
        rc, out, _err = self.module.run_command([self.binary, "-j", "list", "table", FAMILY, TABLE])
        return parse_ruleset(out) if rc == 0 else None

    def apply(self, statements: Iterable[str]) -> None:
        if not self.binary:
            raise ModuleError("nft is not installed; libvirt's nftables backend needs it (dnf install nftables).")
        text = "\n".join(statements) + "\n"
        rc, _out, err = self.module.run_command([self.binary, "-f", "-"], data=text, binary_data=True)
        if rc != 0:
            raise ModuleError("nft -f could not apply:\n%s\n%s" % (text, err.strip()))
