# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""REJECT rules of iptables: plan and apply, live and in saved rules files.

Live rules are read with ``<backend>-save`` of every backend found
(iptables-nft and iptables-legacy can both hold rules in one namespace),
compared on their parsed form, and changed with one
``<backend>-restore --noflush`` transaction per backend. Saved rules files
(iptables-save format) are edited line by line: only the matching lines change,
every other byte stays. The rules are read with _iptables_save.

PRIVATE: this module is internal to kvmhost.bridging; it is not part of the
public API and may change without notice.
"""

from __future__ import annotations

import contextlib
import os
import re
from typing import TYPE_CHECKING, Any, cast

from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import ModuleError
from ansible_collections.kvmhost.bridging.plugins.module_utils._fileio import (
    atomic_write,
    directory_lock,
    read_bytes,
    text_diff,
)
from ansible_collections.kvmhost.bridging.plugins.module_utils._iptables_save import ANY, REJECT_TYPES, TABLE_BUILTINS, parse_save, resolve_reject_type

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from typing import Optional

    from ansible_collections.kvmhost.bridging.plugins.module_utils._iptables_save import RuleLine, SaveDocument, Table

FAMILIES = ("ipv4", "ipv6")
COMMAND = {"ipv4": "iptables", "ipv6": "ip6tables"}
BACKENDS = ("nft", "legacy")
# The ICMPv6 counterpart of an IPv4 type, so one reject_with serves ip_version: both
# (the stock EL rules are icmp-host-prohibited and icmp6-adm-prohibited).
V4_TO_V6 = {
    "icmp-net-unreachable": "icmp6-no-route",
    "icmp-host-unreachable": "icmp6-addr-unreachable",
    "icmp-port-unreachable": "icmp6-port-unreachable",
    "icmp-net-prohibited": "icmp6-adm-prohibited",
    "icmp-host-prohibited": "icmp6-adm-prohibited",
    "icmp-admin-prohibited": "icmp6-adm-prohibited",
    "tcp-reset": "tcp-reset",
}
DEFAULT_RULES_FILES = {"ipv4": "/etc/sysconfig/iptables", "ipv6": "/etc/sysconfig/ip6tables"}
RULES_FILE_OPTIONS = {"ipv4": "rules_file", "ipv6": "rules_file_ipv6"}
ACCEPT_BRIDGED_SPEC = "-m physdev --physdev-is-bridged -j ACCEPT"
_CHAIN_NAME = re.compile(r"[^\s\"'!\-][^\s\"']{0,27}\Z")


# --------------------------------------------------------------------------
# Request validation
# --------------------------------------------------------------------------


class Request:
    """The validated parameters of reject_rule."""

    def __init__(
        self,
        chain: str,
        table: str,
        reject_with: dict[str, str],
        state: str,
        accept_bridged: bool,
        families: tuple[str, ...],
        persist: bool,
        files: dict[str, str],
    ) -> None:
        self.chain = chain
        self.table = table
        self.reject_with = reject_with  # family -> canonical type or ANY
        self.state = state
        self.accept_bridged = accept_bridged
        self.families = families
        self.persist = persist
        self.files = files  # family -> path

    @property
    def mode(self) -> str:
        if self.accept_bridged:
            return "accept_first" if self.state == "absent" else "remove_accept"
        return "remove_reject" if self.state == "absent" else "add_reject"


def validate_table(table: str) -> None:
    if table == "filter":
        return
    if table in TABLE_BUILTINS:
        raise ModuleError("table %s cannot hold REJECT rules: the kernel accepts the REJECT target only in the filter table. Use table: filter." % table)
    raise ModuleError("Unknown iptables table %r. The tables are %s; REJECT rules live in filter." % (table, ", ".join(sorted(TABLE_BUILTINS))))


def validate_chain_name(chain: str, table: str) -> None:
    if not _CHAIN_NAME.match(chain or ""):
        raise ModuleError("Invalid chain name %r: a chain name has 1 to 28 characters, no spaces or quotes, and does not start with '-' or '!'." % chain)
    if chain not in TABLE_BUILTINS[table] and any(chain in chains for chains in TABLE_BUILTINS.values()):
        raise ModuleError(
            "%s is not a chain of the %s table (its built-in chains are %s); REJECT rules live in those or in user-defined chains."
            % (chain, table, ", ".join(TABLE_BUILTINS[table]))
        )


def resolve_reject_with(value: str | None, families: Sequence[str]) -> dict[str, str]:
    """Map the reject_with option to the canonical type of each family (or ANY)."""
    value = (value or "").strip().lower()
    if value == ANY:
        return dict.fromkeys(families, ANY)
    v4 = resolve_reject_type("ipv4", value)
    if v4 is not None:
        result: dict[str, str] = {}
        for family in families:
            if family == "ipv4":
                result[family] = v4
            elif v4 in V4_TO_V6:
                result[family] = V4_TO_V6[v4]
            else:
                raise ModuleError(
                    "reject_with %s has no ICMPv6 counterpart, so it cannot apply to ip6tables; use ip_version: ipv4,"
                    " or an ICMPv6 type with ip_version: ipv6." % v4
                )
        return result
    v6 = resolve_reject_type("ipv6", value)
    if v6 is not None:
        if "ipv4" in families:
            raise ModuleError(
                "reject_with %s is an ICMPv6 type: use it with ip_version: ipv6, or give the IPv4 type"
                " (for example icmp-host-prohibited, which means icmp6-adm-prohibited for ip6tables)." % v6
            )
        return {"ipv6": v6}
    raise ModuleError(
        "Invalid reject_with %r. Use any, one of the IPv4 types %s, or (with ip_version: ipv6) one of %s."
        % (value, ", ".join(REJECT_TYPES["ipv4"]), ", ".join(REJECT_TYPES["ipv6"]))
    )


def build_request(params: Mapping[str, Any]) -> Request:
    """Validate module parameters into a Request; ModuleError on bad input."""
    table = params["table"]
    validate_table(table)
    chain = params["chain"]
    validate_chain_name(chain, table)
    families: tuple[str, ...] = FAMILIES if params["ip_version"] == "both" else (params["ip_version"],)
    reject_with = resolve_reject_with(params["reject_with"], families)
    if params["state"] == "present" and not params["accept_bridged"] and ANY in reject_with.values():
        raise ModuleError("state: present adds one REJECT rule, so it needs a type: set reject_with to a type, not any.")
    files = {family: params.get(option) or DEFAULT_RULES_FILES[family] for family, option in RULES_FILE_OPTIONS.items()}
    return Request(
        chain=chain,
        table=table,
        reject_with=reject_with,
        state=params["state"],
        accept_bridged=params["accept_bridged"],
        families=families,
        persist=params["persist"],
        files={family: files[family] for family in families},
    )


# --------------------------------------------------------------------------
# Planning (pure)
# --------------------------------------------------------------------------


class Change:
    """What one place (a backend's table, or a saved rules file) needs."""

    def __init__(self, family: str, table: str, chain: str, backend: str | None = None, path: str | None = None) -> None:
        self.family = family
        self.table = table
        self.chain = chain
        self.backend = backend
        self.path = path
        self.removed: list[RuleLine] = []
        self.inserted: list[tuple[str, str]] = []  # (verb, spec): "-I" goes first in the chain, "-A" last

    def __bool__(self) -> bool:
        return bool(self.removed or self.inserted)

    def rule_text(self, verb: str, spec: str) -> str:
        if verb == "-I":
            return "-I %s 1 %s" % (self.chain, spec)
        return "-A %s %s" % (self.chain, spec)

    def as_result(self) -> dict[str, Any]:
        return {
            "ip_version": self.family,
            "backend": self.backend,
            "path": self.path,
            "table": self.table,
            "chain": self.chain,
            "removed": [line.text for line in self.removed],
            "inserted": [self.rule_text(verb, spec) for verb, spec in self.inserted],
        }


def reject_spec(reject_with: str) -> str:
    return "-j REJECT --reject-with %s" % reject_with


def plan_chain(change: Change, rules: Sequence[RuleLine], mode: str, reject_with: str) -> Change:
    """Fill ``change`` for the chain whose rules (effective order) are ``rules``."""
    if mode == "remove_reject":
        change.removed = [line for line in rules if line.rule.is_reject(reject_with)]
    elif mode == "remove_accept":
        change.removed = [line for line in rules if line.rule.is_accept_bridged()]
    elif mode == "accept_first":
        if not (rules and rules[0].rule.is_accept_bridged()):
            # Not first (or missing): insert it first, and drop copies further down.
            change.removed = [line for line in rules if line.rule.is_accept_bridged()]
            change.inserted = [("-I", ACCEPT_BRIDGED_SPEC)]
    elif mode == "add_reject" and not any(line.rule.is_reject(reject_with) for line in rules):
        change.inserted = [("-A", reject_spec(reject_with))]
    return change


def chain_after(rules: Iterable[RuleLine], change: Change) -> list[str]:
    """The chain's rule texts after ``change``."""
    removed = {id(line) for line in change.removed}
    after = [line.text for line in rules if id(line) not in removed]
    for verb, spec in change.inserted:
        text = "-A %s %s" % (change.chain, spec)
        if verb == "-I":
            after.insert(0, text)
        else:
            after.append(text)
    return after


def restore_input(change: Change) -> str:
    """The iptables-restore --noflush transaction for a live change."""
    lines = ["*%s" % change.table]
    lines.extend("-D %s %s" % (change.chain, line.spec) for line in change.removed)
    lines.extend(change.rule_text(verb, spec) for verb, spec in change.inserted)
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def plan_live(request: Request, family: str, live: Iterable[tuple[str, SaveDocument]], default: str | None = None) -> list[tuple[Change, list[RuleLine]]]:
    """Plan the live changes of one family.

    ``live`` lists (backend name, SaveDocument) in discovery order; ``default``
    is the backend that plain ``iptables`` uses, where a rule goes when no
    backend holds rules in the chain. Returns a list of (Change, rules before)
    for every backend that needs a change.
    """
    documents = list(live)
    chain = request.chain
    reject_with = request.reject_with[family]
    mode = request.mode

    def rules_of(doc: SaveDocument) -> list[RuleLine]:
        table = doc.tables.get(request.table)
        return table.chain_rules(chain) if table else []

    def chain_exists(doc: SaveDocument) -> bool:
        if chain in TABLE_BUILTINS[request.table]:
            return True
        table = doc.tables.get(request.table)
        return bool(table and table.has_chain(chain))

    if mode in ("remove_reject", "remove_accept"):
        targets = list(documents)
    elif mode == "accept_first":
        holding = [(n, d) for n, d in documents if any(line.rule.is_reject(reject_with) for line in rules_of(d))]
        if not holding:
            holding = [(n, d) for n, d in documents if rules_of(d)]
        if not holding:
            holding = [(n, d) for n, d in documents if n == default and chain_exists(d)]
        targets = holding
    else:  # add_reject: present somewhere is enough
        if any(line.rule.is_reject(reject_with) for _name, doc in documents for line in rules_of(doc)):
            targets = []
        else:
            targets = [(n, d) for n, d in documents if rules_of(d)][:1]
            if not targets:
                targets = [(n, d) for n, d in documents if n == default and chain_exists(d)]

    planned: list[tuple[Change, list[RuleLine]]] = []
    for name, doc in targets:
        rules = rules_of(doc)
        change = plan_chain(Change(family, request.table, chain, backend=name), rules, mode, reject_with)
        if change:
            planned.append((change, rules))
    return planned


def plan_file(request: Request, family: str, path: str, data: bytes | None) -> tuple[Change, bytes | None]:
    """Plan the edit of a saved rules file; returns (Change, new bytes) or (Change, None)."""
    change = Change(family, request.table, request.chain, path=path)
    if data is None:
        return change, None
    text = data.decode("utf-8", "surrogateescape")
    doc = parse_save(text, family, path)
    table = doc.tables.get(request.table)
    if table is None:
        return change, None
    if request.chain not in TABLE_BUILTINS[request.table] and not table.has_chain(request.chain):
        return change, None
    rules = table.chain_rules(request.chain)
    plan_chain(change, rules, request.mode, request.reject_with[family])
    if not change:
        return change, None
    return change, render_file(data, doc, table, change)


def render_file(data: bytes, doc: SaveDocument, table: Table, change: Change) -> bytes:
    """The file's new bytes: removed lines dropped, new lines added, all else byte for byte.

    New lines end as the file's lines do: CRLF when every line of the file
    ends in CRLF, LF otherwise.
    """
    raw_lines = data.split(b"\n")
    if doc.newline_at_end:
        raw_lines.pop()
    terminated = raw_lines if doc.newline_at_end else raw_lines[:-1]
    eol = b"\r\n" if terminated and all(line.endswith(b"\r") for line in terminated) else b"\n"
    out = [line + b"\n" for line in raw_lines]
    if not doc.newline_at_end and out:
        out[-1] = out[-1][:-1]
    chain = change.chain
    inserts: dict[int, list[bytes]] = {}  # index -> lines to put before that line
    commit = cast(int, table.commit)  # a parsed table has its COMMIT line: parse_save fails without one

    def add_before(index: int, text: str) -> None:
        inserts.setdefault(index, []).append(text.encode("utf-8", "surrogateescape") + eol)

    chain_lines = [line for line in table.rules if line.chain == chain]
    uses_insert = any(line.verb == "-I" for line in chain_lines)
    for verb, spec in change.inserted:
        if verb == "-I":
            if uses_insert:
                # Other -I lines would push an -A line down: an -I 1 after all of them is first.
                add_before(commit, "-I %s 1 %s" % (chain, spec))
            elif chain_lines:
                add_before(chain_lines[0].index, "-A %s %s" % (chain, spec))
            else:
                after = table.last_declaration if table.last_declaration is not None else table.start
                add_before(after + 1, "-A %s %s" % (chain, spec))
        elif chain_lines and not uses_insert:
            add_before(chain_lines[-1].index + 1, "-A %s %s" % (chain, spec))
        else:
            add_before(commit, "-A %s %s" % (chain, spec))

    removed = {line.index for line in change.removed}
    result: list[bytes] = []
    for index, line in enumerate(out):
        result.extend(inserts.get(index, ()))
        if index not in removed:
            result.append(line)
    result.extend(inserts.get(len(out), ()))
    return b"".join(result)


# --------------------------------------------------------------------------
# Reading and applying (I/O)
# --------------------------------------------------------------------------


class Backend:
    """The save/restore commands of one iptables backend of one family."""

    def __init__(self, family: str, name: str, save: str, restore: str, suffixed: bool = True) -> None:
        self.family = family
        self.name = name
        self.save = save
        self.restore = restore
        self.suffixed = suffixed

    @property
    def label(self) -> str:
        return "%s-%s" % (COMMAND[self.family], self.name)

    def restore_args(self) -> list[str]:
        args = [self.restore, "--noflush"]
        if self.suffixed:
            # Wait for the xtables lock instead of failing when another tool holds it (legacy).
            args.append("--wait=10")
        return args


if TYPE_CHECKING:
    # (backend, its change, the chain's rules before it)
    LivePlan = tuple[Backend, Change, list[RuleLine]]
    # (change, the file's bytes or None when missing, its new bytes or None when unchanged)
    FilePlan = tuple[Change, Optional[bytes], Optional[bytes]]


def _version_backend(module: Any, binary: str) -> str | None:
    rc, out, err = module.run_command([binary, "--version"])
    text = "%s %s" % (out, err)
    if "nf_tables" in text:
        return "nft"
    if "legacy" in text or rc == 0:
        return "legacy"
    return None


def discover_backends(module: Any, family: str) -> list[Backend]:
    """The backends of ``family`` whose commands are installed, nft first."""
    command = COMMAND[family]
    found: list[Backend] = []
    for name in BACKENDS:
        save = module.get_bin_path("%s-%s-save" % (command, name))
        restore = module.get_bin_path("%s-%s-restore" % (command, name))
        if save and restore:
            found.append(Backend(family, name, save, restore))
    if found:
        return found
    # Before iptables 1.8 there is one backend (legacy) and no suffixed commands.
    save = module.get_bin_path("%s-save" % command)
    restore = module.get_bin_path("%s-restore" % command)
    if save and restore:
        return [Backend(family, _version_backend(module, save) or "legacy", save, restore, suffixed=False)]
    raise ModuleError(
        "Cannot find %(c)s-save and %(c)s-restore (nor %(c)s-nft-save or %(c)s-legacy-save) on the host."
        " Install the iptables package (iptables-nft on EL8 and later), or set ip_version to leave %(c)s alone." % {"c": command}
    )


def default_backend(module: Any, family: str, backends: Sequence[Backend]) -> str:
    """The backend the plain ``iptables`` command uses (the alternatives choice)."""
    if len(backends) == 1:
        return backends[0].name
    plain = module.get_bin_path(COMMAND[family])
    if plain:
        name = _version_backend(module, plain)
        if name in [b.name for b in backends]:
            return name
    return backends[0].name


FIREWALLD_BUS = "org.fedoraproject.FirewallD1"
SYSTEM_BUS_SOCKET = "/run/dbus/system_bus_socket"  # D-Bus's default system bus address


def _system_bus_exists() -> bool:
    """Whether a system bus can exist here: its socket, or an address set for it in the environment."""
    return bool(os.environ.get("DBUS_SYSTEM_BUS_ADDRESS")) or os.path.exists(SYSTEM_BUS_SOCKET)


def firewalld_running(module: Any) -> bool:
    """Whether firewalld runs on the host.

    Without firewall-cmd the firewalld package is not installed, and without a
    system bus firewalld cannot run (it serves only over D-Bus): nothing is
    asked. Otherwise the system bus answers with busctl in a few milliseconds
    (does firewalld's bus name have an owner?); ``firewall-cmd --state``, a
    Python program of about 0.25 s, only where busctl cannot answer.
    """
    firewall_cmd = module.get_bin_path("firewall-cmd")
    if not firewall_cmd or not _system_bus_exists():
        return False
    rc: int  # run_command's (rc, stdout text, stderr text)
    out: str
    busctl = module.get_bin_path("busctl")
    if busctl:
        argv = [busctl, "--system", "call", "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "NameHasOwner", "s", FIREWALLD_BUS]
        rc, out, _err = module.run_command(argv)
        answer = out.split()
        if rc == 0 and len(answer) == 2 and answer[0] == "b" and answer[1] in ("true", "false"):
            return answer[1] == "true"
    rc, out, _err = module.run_command([firewall_cmd, "--state"])
    return rc == 0 and "running" in out and "not running" not in out


def check_firewalld(module: Any) -> None:
    """Fail when firewalld runs: it owns the rules and would undo ours on reload."""
    if firewalld_running(module):
        raise ModuleError(
            "firewalld is running: it owns the firewall and would put back or fight any rule changed behind its back,"
            " so reject_rule changes nothing. Do one of these instead: let the guests through firewalld with"
            " kvmhost.bridging.firewalld_forward (the forwarding role does so by itself where firewalld runs: each"
            " bridge in a zone with intra-zone forwarding, policies for routed bridges); let bridged guests bypass"
            " iptables with kvmhost.bridging.ip_forward (bridge_nf_call: false); or stop and disable firewalld and"
            " manage the rules with iptables-services."
        )


def read_live(module: Any, backend: Backend) -> SaveDocument:
    rc, out, err = module.run_command([backend.save])
    if rc != 0:
        raise ModuleError("%s failed (rc=%d): %s" % (backend.save, rc, (err or out).strip()))
    return parse_save(out, backend.family, backend.save)


def apply_live(module: Any, backend: Backend, change: Change) -> None:
    rc, out, err = module.run_command(backend.restore_args(), data=restore_input(change), binary_data=True)
    if rc != 0:
        raise ModuleError(
            "%s rejected the change to %s %s (rc=%d): %s. Nothing was changed in that backend; the rules may have"
            " changed meanwhile: run the task again." % (backend.label, change.table, change.chain, rc, (err or out).strip()),
        )


def _rules_diff(header: str, before: Iterable[str], after: Iterable[str]) -> dict[str, str]:
    return {
        "before_header": header,
        "after_header": header,
        "before": "".join(line + "\n" for line in before),
        "after": "".join(line + "\n" for line in after),
    }


def apply_all(module: Any, live_plans: Iterable[LivePlan], file_plans: Iterable[FilePlan]) -> None:
    """Write the saved rules files first, then change the live rules; a failure says what was already changed.

    A saved file that already holds the change while the live rules do not is
    the safe side of a failure: the next run (or the next boot) completes it.
    """
    done: list[str] = []
    try:
        for change, _data, new in file_plans:
            if new is not None:
                path = cast(str, change.path)  # a file plan's Change has its path (plan_file)
                atomic_write(module, path, new)
                done.append(path)
        for backend, change, _before in live_plans:
            apply_live(module, backend, change)
            done.append("%s %s %s (live)" % (backend.label, change.table, change.chain))
    except ModuleError as exc:
        if not done:
            raise
        raise ModuleError("%s Already changed: %s." % (exc.msg, ", ".join(done)), changed=True, **exc.result) from exc


def _plan_live_all(module: Any, request: Request, backends: Mapping[str, Sequence[Backend]]) -> tuple[list[LivePlan], bool]:
    """(live plans, whether the chain exists in any backend): the live rules of every family, read and planned."""
    live_plans: list[LivePlan] = []
    chain_known = request.chain in TABLE_BUILTINS[request.table]
    for family in request.families:
        documents: list[tuple[str, SaveDocument]] = []
        for backend in backends[family]:
            document = read_live(module, backend)
            documents.append((backend.name, document))
            table = document.tables.get(request.table)
            chain_known = chain_known or bool(table and table.has_chain(request.chain))
        default = None
        if request.mode in ("accept_first", "add_reject"):
            default = default_backend(module, family, backends[family])
        for change, before in plan_live(request, family, documents, default):
            live_plans.append((next(b for b in backends[family] if b.name == change.backend), change, before))
    return live_plans, chain_known


def _plan_files_all(request: Request, warnings: list[str]) -> tuple[list[FilePlan], bool]:
    """(file plans, whether the chain exists in a saved rules file): the saved rules files, read and planned."""
    file_plans: list[FilePlan] = []
    chain_known = False
    if not request.persist:
        return file_plans, chain_known
    for family in request.families:
        path = request.files[family]
        data = read_bytes(path)
        if data is not None:
            table = parse_save(data.decode("utf-8", "surrogateescape"), family, path).tables.get(request.table)
            chain_known = chain_known or bool(table and table.has_chain(request.chain))
        change, new = plan_file(request, family, path, data)
        if data is None and request.mode in ("accept_first", "add_reject"):
            warnings.append(
                "%s does not exist, so the rule inserted now is not saved for the next boot;"
                " save the live rules there if the host uses iptables-services." % path
            )
        file_plans.append((change, data, new))
    return file_plans, chain_known


def _changes_and_diffs(live_plans: Iterable[LivePlan], file_plans: Iterable[FilePlan]) -> tuple[list[Change], list[dict[str, str]]]:
    """The Changes the plans make and the diff of each (live chains, then saved files)."""
    changes: list[Change] = []
    diffs: list[dict[str, str]] = []
    for backend, change, before in live_plans:
        changes.append(change)
        diffs.append(_rules_diff("%s %s %s (live)" % (backend.label, change.table, change.chain), [line.text for line in before], chain_after(before, change)))
    for change, data, new in file_plans:
        if new is not None:
            changes.append(change)
            # A file plan with new bytes has its path and its old bytes (plan_file renders only a file it read).
            path, old = cast(str, change.path), cast(bytes, data)
            diffs.append(text_diff(path, old.decode("utf-8", "surrogateescape"), new.decode("utf-8", "surrogateescape")))
    return changes, diffs


def _work(module: Any, request: Request, backends: Mapping[str, Sequence[Backend]], warnings: list[str]) -> tuple[list[Change], list[dict[str, str]]]:
    """Read, plan and (unless check mode) apply, under the caller's locks; return (changes, diffs)."""
    live_plans, live_known = _plan_live_all(module, request, backends)
    file_plans, file_known = _plan_files_all(request, warnings)
    if not (live_known or file_known):
        raise ModuleError(
            "Chain %s does not exist in the %s table of any iptables backend%s. Check the chain name (it is case-sensitive)."
            % (request.chain, request.table, " or saved rules file" if request.persist else "")
        )
    changes, diffs = _changes_and_diffs(live_plans, file_plans)
    if not module.check_mode:
        apply_all(module, live_plans, file_plans)
    return changes, diffs


def run(module: Any) -> dict[str, Any]:
    """The whole reject_rule task; returns the result dict (with ``warnings``)."""
    request = build_request(module.params)
    check_firewalld(module)
    warnings: list[str] = []
    if module.params["ip_version"] == "ipv6" and module.params["rules_file"] and module.params["persist"]:
        warnings.append("rules_file is the IPv4 file and is not used with ip_version: ipv6; set rules_file_ipv6.")

    backends = {family: discover_backends(module, family) for family in request.families}
    file_dirs = sorted({os.path.dirname(path) for path in request.files.values()}) if request.persist else []
    lock_dirs = [d for d in file_dirs if os.path.isdir(d)] if not module.check_mode else []
    with contextlib.ExitStack() as stack:
        for directory in lock_dirs:  # sorted, so two tasks never deadlock
            stack.enter_context(directory_lock(directory))
        changes, diffs = _work(module, request, backends, warnings)

    result: dict[str, Any] = {
        "changed": bool(changes),
        "changes": [change.as_result() for change in changes],
        "backends": {family: [b.name for b in backends[family]] for family in request.families},
        "warnings": warnings,
    }
    if module._diff:
        result["diff"] = diffs
    return result
