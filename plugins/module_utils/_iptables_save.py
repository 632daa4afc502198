# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""iptables rules as iptables-save prints them: parsed into Rules and SaveDocuments, pure (no I/O).

split_args() splits a rule line as iptables-restore does, parse_rule() reads
one rule into its canonical form (long options as the short ones
iptables-save prints, REJECT types by their canonical names), and
parse_save() reads a whole iptables-save text, live or a saved rules file,
keeping every line so that an edit changes only the lines it means to.

PRIVATE: this module is internal to kvmhost.bridging; it is not part of the
public API and may change without notice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import ModuleError

TABLE_BUILTINS = {
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "raw": ("PREROUTING", "OUTPUT"),
    "security": ("INPUT", "FORWARD", "OUTPUT"),
}

# Canonical name (as iptables-save prints it) -> the other spellings iptables accepts.
REJECT_TYPES: dict[str, dict[str, tuple[str, ...]]] = {
    "ipv4": {
        "icmp-net-unreachable": ("net-unreach",),
        "icmp-host-unreachable": ("host-unreach",),
        "icmp-port-unreachable": ("port-unreach",),
        "icmp-proto-unreachable": ("proto-unreach",),
        "icmp-net-prohibited": ("net-prohib",),
        "icmp-host-prohibited": ("host-prohib",),
        "icmp-admin-prohibited": ("admin-prohib",),
        "tcp-reset": ("tcp-rst",),
    },
    "ipv6": {
        "icmp6-no-route": ("no-route",),
        "icmp6-adm-prohibited": ("adm-prohibited",),
        "icmp6-addr-unreachable": ("addr-unreach",),
        "icmp6-port-unreachable": ("port-unreach",),
        "icmp6-policy-fail": ("policy-fail",),
        "icmp6-reject-route": ("reject-route",),
        "tcp-reset": (),
    },
}
# What REJECT sends when a rule has no --reject-with.
DEFAULT_REJECT = {"ipv4": "icmp-port-unreachable", "ipv6": "icmp6-port-unreachable"}
ANY = "any"

# Long options as iptables accepts them in rules files, mapped to the short form iptables-save prints.
LONG_OPTIONS = {
    "--append": "-A",
    "--insert": "-I",
    "--delete": "-D",
    "--new-chain": "-N",
    "--source": "-s",
    "--src": "-s",
    "--destination": "-d",
    "--dst": "-d",
    "--protocol": "-p",
    "--in-interface": "-i",
    "--out-interface": "-o",
    "--fragment": "-f",
    "--jump": "-j",
    "--goto": "-g",
    "--match": "-m",
    "--ipv4": "-4",
    "--ipv6": "-6",
}
GENERIC_WITH_VALUE = ("-s", "-d", "-p", "-i", "-o")
GENERIC_FLAGS = ("-f", "-4", "-6")
# Matches that never restrict which packets a rule applies to.
NEUTRAL_MATCHES = ("comment",)

_COUNTERS = re.compile(r"\[\d+:\d+\]\Z")

if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Optional

    # A generic option (-s, -p, -f ...): (option, negated, value or None for a flag).
    GenericOption = tuple[str, bool, Optional[str]]
    # A match (-m NAME or the protocol's implicit one) and its arguments.
    Match = tuple[str, tuple[str, ...]]

# --------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------


def split_args(text: str) -> list[str]:
    """Split one rule line into arguments the way iptables-restore does.

    Double quotes group words (``--comment "a b"``) and a backslash takes the
    next character literally (``\\"`` inside a quoted comment).
    """
    tokens: list[str] = []
    current: list[str] = []
    in_token = False
    quoted = False
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text):
            current.append(text[index + 1])
            in_token = True
            index += 2
            continue
        if char == '"':
            quoted = not quoted
            in_token = True
        elif char.isspace() and not quoted:
            if in_token:
                tokens.append("".join(current))
                current = []
                in_token = False
        else:
            current.append(char)
            in_token = True
        index += 1
    if quoted:
        raise ValueError("unterminated double quote")
    if in_token:
        tokens.append("".join(current))
    return tokens


def resolve_reject_type(family: str, value: str) -> str | None:
    """The canonical name of a --reject-with value in ``family``, or None."""
    value = value.strip().lower()
    for canonical, aliases in REJECT_TYPES[family].items():
        if value == canonical or value in aliases:
            return canonical
    return None


def _normalize_address(family: str, value: str) -> str:
    if "/" in value:
        return value
    return value + ("/32" if family == "ipv4" else "/128")


@dataclass(frozen=True, repr=False)
class Rule:
    """The parsed form of one rule: what it matches and what it does.

    Two rules are equal when they match the same packets with the same target,
    whatever their spelling: long or short options, implicit protocol matches,
    host addresses with or without /32, REJECT with or without its default
    --reject-with. The order of generic options and of matches does not count.
    """

    generic: tuple[GenericOption, ...] = ()
    matches: tuple[Match, ...] = ()
    target: str | None = None
    # The target's arguments; a REJECT rule's are (option, value or None) pairs (_reject_args).
    target_args: tuple[str | tuple[str, str | None], ...] = ()
    goto: str | None = None

    def __post_init__(self) -> None:
        # The canonical form: the order of generic options and of matches does not count.
        object.__setattr__(self, "generic", tuple(sorted(self.generic)))
        object.__setattr__(self, "matches", tuple(sorted(self.matches)))
        object.__setattr__(self, "target_args", tuple(self.target_args))

    def _key(self) -> tuple[object, ...]:
        return (self.generic, self.matches, self.target, self.target_args, self.goto)

    def __repr__(self) -> str:
        return "Rule(%r)" % (self._key(),)

    @property
    def conditions(self) -> tuple[GenericOption | Match, ...]:
        """Generic options and matches that restrict the rule (comments do not)."""
        return self.generic + tuple(m for m in self.matches if m[0] not in NEUTRAL_MATCHES)

    @property
    def reject_with(self) -> str | None:
        if self.target != "REJECT":
            return None
        # parse_rule turns a REJECT rule's arguments into (option, value) pairs (_reject_args).
        pairs = cast("tuple[tuple[str, str | None], ...]", self.target_args)
        return dict(pairs).get("--reject-with")

    def is_reject(self, reject_with: str) -> bool:
        """True for a REJECT rule that ``reject_with`` selects.

        ``any`` selects every REJECT rule; a type selects only the unconditional
        rule with that type, so ``-j REJECT --reject-with icmp-host-prohibited``
        matches and ``-o virbr0 -j REJECT --reject-with icmp-host-prohibited``
        does not.
        """
        if self.target != "REJECT":
            return False
        if reject_with == ANY:
            return True
        return not self.conditions and self.reject_with == reject_with

    def is_accept_bridged(self) -> bool:
        """True for ``-m physdev --physdev-is-bridged -j ACCEPT`` (comments allowed)."""
        return self.target == "ACCEPT" and not self.target_args and self.conditions == (("physdev", ("--physdev-is-bridged",)),)


def parse_rule(tokens: Sequence[str], family: str) -> Rule:
    """Parse the arguments after ``-A CHAIN`` into a Rule; ValueError if malformed.

    One pass over the tokens, as iptables parses them: _RuleReader keeps the
    state (the current match, a pending ``!``) and reads each kind of option.
    """
    return _RuleReader(tokens, family).read()


class _RuleReader:
    """parse_rule's state while it reads one rule's tokens."""

    def __init__(self, tokens: Sequence[str], family: str) -> None:
        self.tokens = tokens
        self.family = family
        self.generic: list[GenericOption] = []
        self.matches: list[tuple[str, list[str]]] = []
        self.target: str | None = None
        self.target_args: list[str] = []
        self.goto: str | None = None
        self.group: list[str] | None = None  # the args list of the match (or target) that takes ``--options``
        self.protocol: str | None = None
        self.negate = False
        self.index = 0

    def read(self) -> Rule:
        while self.index < len(self.tokens):
            opt = LONG_OPTIONS.get(self.tokens[self.index], self.tokens[self.index])
            if opt == "!":
                self.negate = True
                self.index += 1
            elif opt in GENERIC_WITH_VALUE or opt in GENERIC_FLAGS:
                self._generic(opt)
            elif self.negate and not opt.startswith("--"):
                raise ValueError("'!' before %s" % opt)
            elif opt == "-m":
                self._match()
            elif opt in ("-j", "-g"):
                self._jump(opt)
            else:
                self._option(opt)
        if self.negate:
            raise ValueError("'!' at the end of the rule")
        if self.target is None and self.goto is None and not self.generic and not self.matches:
            raise ValueError("empty rule")
        final_args: tuple[str | tuple[str, str | None], ...] = tuple(self.target_args)
        if self.target == "REJECT":
            final_args = _reject_args(self.family, self.target_args)
        return Rule(
            generic=tuple(self.generic),
            matches=tuple((name, tuple(args)) for name, args in self.matches),
            target=self.target,
            target_args=final_args,
            goto=self.goto,
        )

    def _generic(self, opt: str) -> None:
        """``-s``, ``-d``, ``-p``, ``-i``, ``-o`` (with a value) or a generic flag such as ``-f``."""
        value: str | None = None
        if opt in GENERIC_WITH_VALUE:
            self.index += 1
            if self.index < len(self.tokens) and self.tokens[self.index] == "!":  # old style: -s ! 1.2.3.4
                self.negate = True
                self.index += 1
            if self.index >= len(self.tokens):
                raise ValueError("%s needs a value" % opt)
            value = self.tokens[self.index]
            if opt in ("-s", "-d"):
                value = _normalize_address(self.family, value)
            elif opt == "-p":
                value = value.lower()
                self.protocol = value
        if not (opt == "-p" and value in ("all", "0") and not self.negate):  # -p all is no condition
            self.generic.append((opt, self.negate, value))
        self.negate = False
        self.group = None
        self.index += 1

    def _match(self) -> None:
        """``-m NAME``: the ``--options`` that follow belong to this match."""
        if self.index + 1 >= len(self.tokens):
            raise ValueError("-m needs a match name")
        self.group = []
        self.matches.append((self.tokens[self.index + 1].lower(), self.group))
        self.index += 2

    def _jump(self, opt: str) -> None:
        """``-j TARGET`` (its ``--options`` follow) or ``-g CHAIN``."""
        if self.index + 1 >= len(self.tokens):
            raise ValueError("%s needs a name" % opt)
        if self.target is not None or self.goto is not None:
            raise ValueError("more than one target")
        if opt == "-j":
            self.target = self.tokens[self.index + 1]
            self.group = self.target_args
        else:
            self.goto = self.tokens[self.index + 1]
            self.group = None
        self.index += 2

    def _option(self, opt: str) -> None:
        """An option of the current match or target (a pending ``!`` goes with it)."""
        if self.group is None and self.protocol and opt.startswith("--"):
            # ``-p tcp --dport 22``: iptables loads the protocol's match implicitly.
            existing = [args for name, args in self.matches if name == self.protocol]
            if existing:
                self.group = existing[0]
            else:
                self.group = []
                self.matches.append((self.protocol, self.group))
        if self.group is None:
            raise ValueError("unexpected %r" % self.tokens[self.index])
        if self.negate:
            self.group.append("!")
            self.negate = False
        self.group.append(self.tokens[self.index])
        self.index += 1


def _reject_args(family: str, args: Sequence[str]) -> tuple[tuple[str, str | None], ...]:
    options: dict[str, str | None] = {}
    index = 0
    while index < len(args):
        if args[index] == "--reject-with" and index + 1 < len(args):
            options["--reject-with"] = resolve_reject_type(family, args[index + 1]) or args[index + 1].lower()
            index += 2
        else:
            options[args[index]] = None
            index += 1
    options.setdefault("--reject-with", DEFAULT_REJECT[family])
    return tuple(sorted(options.items(), key=lambda item: item[0]))


class Line:
    """One line of an iptables-save document."""

    __slots__ = ("chain", "index", "kind", "position", "raw", "rule", "spec", "table", "verb")

    def __init__(
        self,
        index: int,
        raw: str,
        kind: str,
        table: str | None = None,
        chain: str | None = None,
        verb: str | None = None,
        spec: str | None = None,
        rule: Rule | None = None,
        position: int | None = None,
    ) -> None:
        self.index = index
        self.raw = raw
        self.kind = kind
        self.table = table
        self.chain = chain
        self.verb = verb
        self.spec = spec
        self.rule = rule
        self.position = position

    def __repr__(self) -> str:
        return "Line(%d, %r)" % (self.index, self.raw)

    @property
    def text(self) -> str:
        """The rule as iptables-save would write it: ``-A CHAIN spec``."""
        return "-A %s %s" % (self.chain, self.spec)


class RuleLine(Line):
    """A ``-A`` / ``-I`` line: its chain, verb, spec and parsed rule are always there."""

    __slots__ = ()
    chain: str
    verb: str
    spec: str
    rule: Rule

    def __init__(self, index: int, raw: str, table: str, chain: str, verb: str, spec: str, rule: Rule, position: int | None = None) -> None:
        super().__init__(index, raw, "rule", table=table, chain=chain, verb=verb, spec=spec, rule=rule, position=position)


class Table:
    """A ``*table`` ... ``COMMIT`` block."""

    def __init__(self, name: str, start: int) -> None:
        self.name = name
        self.start = start
        self.commit: int | None = None  # set by its COMMIT line (parse_save fails without one)
        self.chains: dict[str, str] = {}  # name -> policy ("-" for user chains); declared in this block
        self.rules: list[RuleLine] = []  # the -A / -I rules, in file order
        self.last_declaration: int | None = None

    def chain_rules(self, chain: str) -> list[RuleLine]:
        """The chain's rules in their effective order (``-I`` lines inserted where they go)."""
        ordered: list[RuleLine] = []
        for line in self.rules:
            if line.chain != chain:
                continue
            if line.verb == "-A":
                ordered.append(line)
            else:
                position = max(1, line.position or 1)
                ordered.insert(min(position - 1, len(ordered)), line)
        return ordered

    def has_chain(self, chain: str) -> bool:
        return chain in self.chains or any(line.chain == chain for line in self.rules)


class SaveDocument:
    """An iptables-save document (live output or a saved rules file), parsed."""

    def __init__(self, family: str, lines: list[Line], tables: dict[str, Table], newline_at_end: bool = True) -> None:
        self.family = family
        self.lines = lines
        self.tables = tables
        self.newline_at_end = newline_at_end


_RULE_LINE = re.compile(r"^\s*(?:(\[\d+:\d+\])\s+)?(-A|--append|-I|--insert)\s+(\S+)(?:\s+(.*?))?\s*$")


def _start_table(stripped: str, index: int, current: Table | None, tables: dict[str, Table], where: str) -> Table:
    """The Table a ``*name`` line opens, added to ``tables``; ModuleError if it cannot start here."""
    if current is not None:
        raise ModuleError("%s: table %s starts before table %s has its COMMIT." % (where, stripped, current.name))
    name = stripped[1:].strip()
    if name not in TABLE_BUILTINS:
        raise ModuleError("%s: unknown table %r." % (where, name))
    if name in tables:
        raise ModuleError("%s: table %s appears twice." % (where, name))
    tables[name] = Table(name, index)
    return tables[name]


def _rule_line(match: re.Match[str], index: int, raw: str, table: str, family: str, where: str) -> RuleLine:
    """The RuleLine of an ``-A``/``-I`` line (``match`` of _RULE_LINE); ModuleError if its rule does not parse."""
    verb = LONG_OPTIONS.get(match.group(2), match.group(2))
    spec = match.group(4) or ""
    position: int | None = None
    try:
        tokens = split_args(spec)
        if verb == "-I" and tokens and tokens[0].isdigit():
            position = int(tokens[0])
            tokens = tokens[1:]
            spec = spec.split(None, 1)[1] if len(spec.split(None, 1)) > 1 else ""
        rule = parse_rule(tokens, family)
    except ValueError as exc:
        raise ModuleError("%s: cannot parse rule %r: %s." % (where, match.string.strip(), exc)) from exc
    return RuleLine(index, raw, table, match.group(3), verb, spec, rule, position=position)


def parse_save(text: str, family: str, source: str) -> SaveDocument:
    """Parse iptables-save text; ModuleError names ``source`` and the line on malformed input.

    One pass over the lines with the current table; a table's start and a
    rule line are read by their own functions.
    """
    raw_lines = text.split("\n")
    newline_at_end = raw_lines[-1] == ""
    if newline_at_end:
        raw_lines.pop()
    lines: list[Line] = []
    tables: dict[str, Table] = {}
    current: Table | None = None
    for index, raw in enumerate(raw_lines):
        stripped = raw.strip().rstrip("\r")
        where = "%s line %d" % (source, index + 1)
        if not stripped:
            lines.append(Line(index, raw, "blank", table=current.name if current is not None else None))
            continue
        if stripped.startswith("#"):
            lines.append(Line(index, raw, "comment", table=current.name if current is not None else None))
            continue
        if stripped.startswith("*"):
            current = _start_table(stripped, index, current, tables, where)
            lines.append(Line(index, raw, "table", table=current.name))
            continue
        if current is None:
            raise ModuleError("%s: %r is outside any *table ... COMMIT block." % (where, stripped))
        if stripped == "COMMIT":
            current.commit = index
            lines.append(Line(index, raw, "commit", table=current.name))
            current = None
            continue
        if stripped.startswith(":"):
            parts = stripped[1:].split()
            if not parts:
                raise ModuleError("%s: chain declaration without a name." % where)
            current.chains[parts[0]] = parts[1] if len(parts) > 1 else "-"
            current.last_declaration = index
            lines.append(Line(index, raw, "chain", table=current.name, chain=parts[0]))
            continue
        match = _RULE_LINE.match(stripped)
        if match:
            line = _rule_line(match, index, raw, current.name, family, where)
            current.rules.append(line)
            lines.append(line)
            continue
        first = LONG_OPTIONS.get(stripped.split()[0], stripped.split()[0])
        if first == "-N" and len(stripped.split()) > 1:
            current.chains.setdefault(stripped.split()[1], "-")
            current.last_declaration = index
        # Other iptables commands (-P, -N, -F ...) are kept as they are.
        lines.append(Line(index, raw, "other", table=current.name))
    if current is not None:
        raise ModuleError("%s: table %s has no COMMIT line." % (source, current.name))
    return SaveDocument(family, lines, tables, newline_at_end)
