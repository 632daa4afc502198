"""REJECT rules: parsing iptables-save text, planning, rules-file edits, and the module run with fake commands."""

from __future__ import annotations

import os

import pytest

from ansible_collections.kvmhost.bridging.plugins.module_utils import _firewall as fw
from ansible_collections.kvmhost.bridging.plugins.module_utils import _iptables_save as ipts
from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import ModuleError

STOCK = """\
# sample configuration for iptables service
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -m state --state RELATED,ESTABLISHED -j ACCEPT
-A INPUT -p tcp -m state --state NEW -m tcp --dport 22 -j ACCEPT
-A INPUT -j REJECT --reject-with icmp-host-prohibited
-A FORWARD -j REJECT --reject-with icmp-host-prohibited
COMMIT
"""


def rule(spec, family="ipv4"):
    return ipts.parse_rule(ipts.split_args(spec), family)


def params(**overrides):
    base = {
        "chain": "FORWARD",
        "table": "filter",
        "reject_with": "icmp-host-prohibited",
        "state": "absent",
        "accept_bridged": False,
        "persist": True,
        "rules_file": None,
        "rules_file_ipv6": "/etc/sysconfig/ip6tables",
        "ip_version": "ipv4",
    }
    base.update(overrides)
    return base


# -- tokenizing and parsing ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("-j REJECT --reject-with icmp-host-prohibited", ["-j", "REJECT", "--reject-with", "icmp-host-prohibited"]),
        ('-m comment --comment "a \\"quoted\\" thing" -j ACCEPT', ["-m", "comment", "--comment", 'a "quoted" thing', "-j", "ACCEPT"]),
        ('-m comment --comment ""  -j ACCEPT', ["-m", "comment", "--comment", "", "-j", "ACCEPT"]),
        ("  -s 10.0.0.1\t-j DROP ", ["-s", "10.0.0.1", "-j", "DROP"]),
        ('--comment "back\\\\slash"', ["--comment", "back\\slash"]),
    ],
)
def test_split_args(text, tokens):
    assert ipts.split_args(text) == tokens


def test_split_args_unterminated_quote():
    with pytest.raises(ValueError, match="quote"):
        ipts.split_args('-m comment --comment "open')


@pytest.mark.parametrize(
    ("left", "right"),
    [
        # Spelling does not matter, the parsed form does.
        ("-j REJECT --reject-with icmp-host-prohibited", "--jump REJECT --reject-with host-prohib"),
        ("-j REJECT", "-j REJECT --reject-with icmp-port-unreachable"),
        ("-p tcp --dport 22 -j ACCEPT", "-p tcp -m tcp --dport 22 -j ACCEPT"),
        ("-s 10.0.0.1 -j DROP", "--source 10.0.0.1/32 -j DROP"),
        ("-i eth0 -o virbr0 -j ACCEPT", "-o virbr0 -i eth0 -j ACCEPT"),
        ("-p all -j ACCEPT", "-j ACCEPT"),
        ("-s ! 10.0.0.0/8 -j DROP", "! -s 10.0.0.0/8 -j DROP"),
        ("-m physdev --physdev-is-bridged -j ACCEPT", "--match physdev --physdev-is-bridged --jump ACCEPT"),
    ],
)
def test_same_parsed_form(left, right):
    assert rule(left) == rule(right)
    assert hash(rule(left)) == hash(rule(right))


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ("-j REJECT --reject-with icmp-host-prohibited", "-o virbr0 -j REJECT --reject-with icmp-host-prohibited"),
        ("-j REJECT --reject-with icmp-host-prohibited", "-j REJECT --reject-with icmp-admin-prohibited"),
        ("-s 10.0.0.0/8 -j DROP", "! -s 10.0.0.0/8 -j DROP"),
        ("-p tcp -m tcp --dport 22 -j ACCEPT", "-p tcp -m tcp ! --dport 22 -j ACCEPT"),
        ("-j ACCEPT", "-g ACCEPT"),
    ],
)
def test_different_parsed_form(left, right):
    assert rule(left) != rule(right)


def test_ipv6_defaults_and_addresses():
    assert rule("-j REJECT", "ipv6").reject_with == "icmp6-port-unreachable"
    assert rule("-s fd00::1 -j DROP", "ipv6") == rule("-s fd00::1/128 -j DROP", "ipv6")


@pytest.mark.parametrize(
    ("spec", "reject_with", "expected"),
    [
        ("-j REJECT --reject-with icmp-host-prohibited", "icmp-host-prohibited", True),
        ("-o virbr0 -j REJECT --reject-with icmp-host-prohibited", "icmp-host-prohibited", False),
        ("-o virbr0 -j REJECT --reject-with icmp-host-prohibited", "any", True),
        ('-m comment --comment "stock" -j REJECT --reject-with icmp-host-prohibited', "icmp-host-prohibited", True),
        ("-j REJECT --reject-with icmp-port-unreachable", "icmp-host-prohibited", False),
        ("-j REJECT", "icmp-port-unreachable", True),
        ("-j DROP", "any", False),
        ("-p tcp -m tcp --dport 22 -j REJECT --reject-with tcp-reset", "any", True),
        ("-p tcp -m tcp --dport 22 -j REJECT --reject-with tcp-reset", "tcp-reset", False),
    ],
)
def test_is_reject(spec, reject_with, expected):
    assert rule(spec).is_reject(reject_with) is expected


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("-m physdev --physdev-is-bridged -j ACCEPT", True),
        ('-m physdev --physdev-is-bridged -m comment --comment "kvm" -j ACCEPT', True),
        ("-m physdev --physdev-is-bridged -i br0 -j ACCEPT", False),
        ("-m physdev ! --physdev-is-bridged -j ACCEPT", False),
        ("-m physdev --physdev-is-bridged -j DROP", False),
    ],
)
def test_is_accept_bridged(spec, expected):
    assert rule(spec).is_accept_bridged() is expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("-m", "-m needs a match name"),
        ("-j", "-j needs a name"),
        ("-s", "-s needs a value"),
        ("!", "'!' at the end of the rule"),
        ("-j ACCEPT -j DROP", "more than one target"),
        ("", "empty rule"),
        ("--dport 22 -j ACCEPT", "unexpected '--dport'"),
        ("! -m tcp -j ACCEPT", "'!' before -m"),
    ],
)
def test_parse_rule_rejects_malformed(spec, message):
    with pytest.raises(ValueError) as exc:
        rule(spec)
    assert str(exc.value) == message


def test_parse_save_structure():
    doc = ipts.parse_save(STOCK, "ipv4", "x")
    table = doc.tables["filter"]
    assert list(table.chains) == ["INPUT", "FORWARD", "OUTPUT"]
    assert [line.text for line in table.chain_rules("FORWARD")] == ["-A FORWARD -j REJECT --reject-with icmp-host-prohibited"]
    assert table.commit == 9
    assert table.last_declaration == 4


def test_parse_save_counters_and_insert_order():
    text = "*filter\n:FORWARD ACCEPT [5:300]\n[1:60] -A FORWARD -j A1\n-I FORWARD -j I1\n-A FORWARD -j A2\n-I FORWARD 2 -j I2\nCOMMIT\n"
    table = ipts.parse_save(text, "ipv4", "x").tables["filter"]
    assert [line.rule.target for line in table.chain_rules("FORWARD")] == ["I1", "I2", "A1", "A2"]
    assert table.chain_rules("FORWARD")[1].spec == "-j I2"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("-A FORWARD -j ACCEPT\n", "outside any"),
        ("*filter\n-A FORWARD -j ACCEPT\n", "no COMMIT"),
        ("*filtre\nCOMMIT\n", "unknown table"),
        ("*filter\n*nat\nCOMMIT\n", "before table filter"),
        ("*filter\n-A FORWARD -m\nCOMMIT\n", "line 2: cannot parse"),
        ("*filter\nCOMMIT\n*filter\nCOMMIT\n", "twice"),
        ("\x00\x01garbage\n", "outside any"),
    ],
)
def test_parse_save_errors_name_the_line(text, message):
    with pytest.raises(ModuleError, match=message) as info:
        ipts.parse_save(text, "ipv4", "/etc/sysconfig/iptables")
    assert "/etc/sysconfig/iptables" in info.value.msg


# -- validation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"table": "filtre"}, "Unknown iptables table 'filtre'"),
        ({"table": "nat"}, "only in the filter table"),
        ({"chain": "PREROUTING"}, "not a chain of the filter table"),
        ({"chain": "BAD NAME"}, "Invalid chain name"),
        ({"chain": "-X"}, "Invalid chain name"),
        ({"chain": "A" * 29}, "Invalid chain name"),
        ({"reject_with": "icmp-bogus"}, "Invalid reject_with 'icmp-bogus'"),
        ({"reject_with": "icmp6-adm-prohibited"}, "is an ICMPv6 type"),
        ({"reject_with": "icmp-proto-unreachable", "ip_version": "both"}, "no ICMPv6 counterpart"),
        ({"reject_with": "any", "state": "present"}, "needs a type"),
    ],
)
def test_build_request_errors(overrides, message):
    with pytest.raises(ModuleError, match=message):
        fw.build_request(params(**overrides))


@pytest.mark.parametrize(
    ("reject_with", "ip_version", "expected"),
    [
        ("icmp-host-prohibited", "both", {"ipv4": "icmp-host-prohibited", "ipv6": "icmp6-adm-prohibited"}),
        ("host-prohib", "ipv4", {"ipv4": "icmp-host-prohibited"}),
        ("ICMP-HOST-PROHIBITED", "ipv4", {"ipv4": "icmp-host-prohibited"}),
        ("icmp6-no-route", "ipv6", {"ipv6": "icmp6-no-route"}),
        ("port-unreach", "ipv6", {"ipv6": "icmp6-port-unreachable"}),
        ("tcp-reset", "both", {"ipv4": "tcp-reset", "ipv6": "tcp-reset"}),
        ("any", "both", {"ipv4": "any", "ipv6": "any"}),
    ],
)
def test_reject_with_per_family(reject_with, ip_version, expected):
    assert fw.build_request(params(reject_with=reject_with, ip_version=ip_version)).reject_with == expected


def test_every_ipv4_type_maps_or_is_refused_for_ipv6():
    for name in ipts.REJECT_TYPES["ipv4"]:
        mapped = fw.V4_TO_V6.get(name)
        assert mapped is None or mapped in ipts.REJECT_TYPES["ipv6"]


# -- planning --------------------------------------------------------------------------


def live(text, family="ipv4"):
    return ipts.parse_save(text, family, "live")


def table_text(*rules, chains=(":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]")):
    return "*filter\n" + "".join(c + "\n" for c in chains) + "".join(r + "\n" for r in rules) + "COMMIT\n"


DUPLICATES = table_text(
    "-A FORWARD -j REJECT --reject-with icmp-host-prohibited",
    "-A FORWARD -o virbr0 -j REJECT --reject-with icmp-host-prohibited",
    "-A FORWARD -j REJECT --reject-with icmp-host-prohibited",
)


def test_plan_removes_duplicates_not_the_rule_with_more_matches():
    request = fw.build_request(params(persist=False))
    planned = fw.plan_live(request, "ipv4", [("nft", live(DUPLICATES))])
    assert len(planned) == 1
    change, before = planned[0]
    assert [line.text for line in change.removed] == ["-A FORWARD -j REJECT --reject-with icmp-host-prohibited"] * 2
    assert fw.chain_after(before, change) == ["-A FORWARD -o virbr0 -j REJECT --reject-with icmp-host-prohibited"]
    assert fw.restore_input(change) == (
        "*filter\n-D FORWARD -j REJECT --reject-with icmp-host-prohibited\n-D FORWARD -j REJECT --reject-with icmp-host-prohibited\nCOMMIT\n"
    )


def test_plan_any_removes_every_reject_of_the_chain_only():
    text = table_text(
        "-A INPUT -j REJECT --reject-with icmp-host-prohibited",
        "-A FORWARD -o virbr0 -j REJECT --reject-with icmp-port-unreachable",
        "-A FORWARD -j ACCEPT",
        "-A FORWARD -j REJECT --reject-with icmp-host-prohibited",
    )
    request = fw.build_request(params(reject_with="any"))
    change, _before = fw.plan_live(request, "ipv4", [("legacy", live(text))])[0]
    assert [line.spec for line in change.removed] == [
        "-o virbr0 -j REJECT --reject-with icmp-port-unreachable",
        "-j REJECT --reject-with icmp-host-prohibited",
    ]


def test_plan_both_backends_hold_rules():
    request = fw.build_request(params())
    nft = live(table_text("-A FORWARD -j REJECT --reject-with icmp-host-prohibited"))
    legacy = live(table_text("-A FORWARD -j REJECT --reject-with icmp-host-prohibited"))
    planned = fw.plan_live(request, "ipv4", [("nft", nft), ("legacy", legacy)])
    assert [change.backend for change, _unused in planned] == ["nft", "legacy"]


def test_plan_nothing_to_do_is_empty():
    request = fw.build_request(params())
    assert fw.plan_live(request, "ipv4", [("nft", live("")), ("legacy", live(table_text("-A FORWARD -j ACCEPT")))]) == []


def test_plan_accept_bridged_goes_where_the_reject_is():
    request = fw.build_request(params(accept_bridged=True))
    nft = live(table_text("-A FORWARD -j ACCEPT"))
    legacy = live(DUPLICATES)
    planned = fw.plan_live(request, "ipv4", [("nft", nft), ("legacy", legacy)], default="nft")
    assert len(planned) == 1
    change, before = planned[0]
    assert change.backend == "legacy"
    assert change.removed == []
    assert fw.restore_input(change) == "*filter\n-I FORWARD 1 -m physdev --physdev-is-bridged -j ACCEPT\nCOMMIT\n"
    assert fw.chain_after(before, change)[0] == "-A FORWARD -m physdev --physdev-is-bridged -j ACCEPT"


def test_plan_accept_bridged_falls_back_to_rules_then_default():
    request = fw.build_request(params(accept_bridged=True))
    with_rules = fw.plan_live(request, "ipv4", [("nft", live("")), ("legacy", live(table_text("-A FORWARD -j DROP")))], default="nft")
    assert [c.backend for c, _unused in with_rules] == ["legacy"]
    empty = fw.plan_live(request, "ipv4", [("nft", live("")), ("legacy", live(""))], default="nft")
    assert [c.backend for c, _unused in empty] == ["nft"]


def test_plan_accept_bridged_idempotent_and_moved():
    request = fw.build_request(params(accept_bridged=True))
    first = table_text("-A FORWARD -m physdev --physdev-is-bridged -j ACCEPT", "-A FORWARD -j REJECT --reject-with icmp-host-prohibited")
    assert fw.plan_live(request, "ipv4", [("nft", live(first))], default="nft") == []
    later = table_text("-A FORWARD -j REJECT --reject-with icmp-host-prohibited", "-A FORWARD -m physdev --physdev-is-bridged -j ACCEPT")
    change, _unused = fw.plan_live(request, "ipv4", [("nft", live(later))], default="nft")[0]
    # Delete before insert: -D takes the first match, which must be the old copy.
    assert fw.restore_input(change) == (
        "*filter\n-D FORWARD -m physdev --physdev-is-bridged -j ACCEPT\n-I FORWARD 1 -m physdev --physdev-is-bridged -j ACCEPT\nCOMMIT\n"
    )


def test_plan_state_present_adds_once_and_removes_accept():
    request = fw.build_request(params(state="present"))
    change, _unused = fw.plan_live(request, "ipv4", [("nft", live(table_text()))], default="nft")[0]
    assert fw.restore_input(change) == "*filter\n-A FORWARD -j REJECT --reject-with icmp-host-prohibited\nCOMMIT\n"
    assert fw.plan_live(request, "ipv4", [("nft", live("")), ("legacy", live(DUPLICATES))], default="nft") == []
    undo = fw.build_request(params(state="present", accept_bridged=True))
    text = table_text("-A FORWARD -m physdev --physdev-is-bridged -j ACCEPT", "-A FORWARD -j DROP")
    change, _unused = fw.plan_live(undo, "ipv4", [("nft", live(text))])[0]
    assert [line.spec for line in change.removed] == ["-m physdev --physdev-is-bridged -j ACCEPT"]


def test_plan_user_chain_missing_in_default_backend_is_skipped():
    request = fw.build_request(params(chain="LIBVIRT_FWI", accept_bridged=True))
    assert fw.plan_live(request, "ipv4", [("nft", live(""))], default="nft") == []


# -- rules files -----------------------------------------------------------------------


def test_file_removal_keeps_every_other_byte():
    data = STOCK.encode()
    request = fw.build_request(params())
    change, new = fw.plan_file(request, "ipv4", "/etc/sysconfig/iptables", data)
    assert change.removed[0].text == "-A FORWARD -j REJECT --reject-with icmp-host-prohibited"
    assert new == data.replace(b"-A FORWARD -j REJECT --reject-with icmp-host-prohibited\n", b"")
    # Idempotent: the new file needs nothing.
    assert fw.plan_file(request, "ipv4", "/etc/sysconfig/iptables", new)[1] is None


def test_file_removal_crlf_and_no_final_newline_and_odd_bytes():
    data = b"# caf\xe9 \xff\r\n*filter\r\n:FORWARD ACCEPT [0:0]\r\n-A FORWARD -j REJECT --reject-with icmp-host-prohibited\r\n-A FORWARD -j DROP\r\nCOMMIT"
    change, new = fw.plan_file(fw.build_request(params()), "ipv4", "f", data)
    assert len(change.removed) == 1
    assert new == b"# caf\xe9 \xff\r\n*filter\r\n:FORWARD ACCEPT [0:0]\r\n-A FORWARD -j DROP\r\nCOMMIT"


def test_file_duplicates_and_other_tables():
    text = (
        "*nat\n:POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -j MASQUERADE\nCOMMIT\n"
        "*filter\n:FORWARD ACCEPT [0:0]\n"
        "-A FORWARD -j REJECT --reject-with icmp-host-prohibited\n"
        "-A FORWARD -o virbr0 -j REJECT --reject-with icmp-host-prohibited\n"
        "--append FORWARD --jump REJECT --reject-with host-prohib\n"
        "COMMIT\n"
    )
    change, new = fw.plan_file(fw.build_request(params()), "ipv4", "f", text.encode())
    assert len(change.removed) == 2
    assert new.decode() == (
        "*nat\n:POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -j MASQUERADE\nCOMMIT\n"
        "*filter\n:FORWARD ACCEPT [0:0]\n"
        "-A FORWARD -o virbr0 -j REJECT --reject-with icmp-host-prohibited\n"
        "COMMIT\n"
    )


def test_file_accept_bridged_goes_before_the_first_forward_rule():
    change, new = fw.plan_file(fw.build_request(params(accept_bridged=True)), "ipv4", "f", STOCK.encode())
    assert change.inserted == [("-I", fw.ACCEPT_BRIDGED_SPEC)]
    assert new.decode() == STOCK.replace("-A FORWARD -j REJECT", "-A FORWARD -m physdev --physdev-is-bridged -j ACCEPT\n-A FORWARD -j REJECT")
    assert fw.plan_file(fw.build_request(params(accept_bridged=True)), "ipv4", "f", new)[1] is None
    # ... and state: present takes it out again, byte for byte.
    assert fw.plan_file(fw.build_request(params(accept_bridged=True, state="present")), "ipv4", "f", new)[1] == STOCK.encode()


def test_file_accept_bridged_without_forward_rules_goes_after_declarations():
    text = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT -j ACCEPT\nCOMMIT\n"
    _change, new = fw.plan_file(fw.build_request(params(accept_bridged=True)), "ipv4", "f", text.encode())
    assert new.decode() == text.replace(":OUTPUT ACCEPT [0:0]\n", ":OUTPUT ACCEPT [0:0]\n-A FORWARD -m physdev --physdev-is-bridged -j ACCEPT\n")


def test_file_accept_bridged_with_insert_lines_uses_insert():
    text = "*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -j DROP\n-I FORWARD -j REJECT\nCOMMIT\n"
    _change, new = fw.plan_file(fw.build_request(params(accept_bridged=True)), "ipv4", "f", text.encode())
    assert new.decode() == text.replace("COMMIT", "-I FORWARD 1 -m physdev --physdev-is-bridged -j ACCEPT\nCOMMIT")
    table = ipts.parse_save(new.decode(), "ipv4", "f").tables["filter"]
    assert table.chain_rules("FORWARD")[0].rule.is_accept_bridged()


def test_file_state_present_appends_after_the_chain():
    text = "*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -j LOG\n-A INPUT -j ACCEPT\nCOMMIT\n"
    _change, new = fw.plan_file(fw.build_request(params(state="present")), "ipv4", "f", text.encode())
    assert new.decode() == text.replace("-A FORWARD -j LOG\n", "-A FORWARD -j LOG\n-A FORWARD -j REJECT --reject-with icmp-host-prohibited\n")


@pytest.mark.parametrize("data", [None, b"*nat\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n"])
def test_file_missing_or_without_table_is_left_alone(data):
    change, new = fw.plan_file(fw.build_request(params(accept_bridged=True)), "ipv4", "f", data)
    assert new is None and not change


def test_file_ipv6_stock_rule():
    text = "*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -j REJECT --reject-with icmp6-adm-prohibited\nCOMMIT\n"
    change, new = fw.plan_file(fw.build_request(params(ip_version="both")), "ipv6", "f6", text.encode())
    assert len(change.removed) == 1
    assert new == b"*filter\n:FORWARD ACCEPT [0:0]\nCOMMIT\n"


# -- the whole run, with fake commands ------------------------------------------------


class FakeModule:
    """Just enough of AnsibleModule: params, check mode, commands and atomic_move."""

    def __init__(self, parameters, bins, outputs, check_mode=False, diff=False):
        self.params = parameters
        self.check_mode = check_mode
        self._diff = diff
        self.bins = bins
        self.outputs = outputs  # argv[0] basename -> (rc, out, err) or callable
        self.calls = []

    def get_bin_path(self, name, required=False, opt_dirs=None):
        return "/usr/sbin/" + name if name in self.bins else None

    def run_command(self, args, data=None, binary_data=False, **kwargs):
        self.calls.append((list(args), data))
        name = os.path.basename(args[0])
        result = self.outputs.get(name, (0, "", ""))
        return result(args, data) if callable(result) else result

    def atomic_move(self, src, dest, unsafe_writes=False):
        os.rename(src, dest)

    def backup_local(self, path):  # pragma: no cover - not used
        raise AssertionError


BINS = {"iptables", "iptables-nft-save", "iptables-nft-restore", "iptables-legacy-save", "iptables-legacy-restore"}


def test_run_removes_live_and_in_file(tmp_path):
    rules_file = tmp_path / "iptables"
    rules_file.write_text(STOCK)
    outputs = {"iptables-nft-save": (0, STOCK, ""), "iptables-legacy-save": (0, "", "")}
    module = FakeModule(params(rules_file=str(rules_file)), BINS, outputs, diff=True)
    result = fw.run(module)
    assert result["changed"] is True
    assert result["backends"] == {"ipv4": ["nft", "legacy"]}
    restores = [(args, data) for args, data in module.calls if "restore" in args[0]]
    assert restores == [
        (["/usr/sbin/iptables-nft-restore", "--noflush", "--wait=10"], "*filter\n-D FORWARD -j REJECT --reject-with icmp-host-prohibited\nCOMMIT\n")
    ]
    assert rules_file.read_text() == STOCK.replace("-A FORWARD -j REJECT --reject-with icmp-host-prohibited\n", "")
    assert [(c["backend"], c["path"]) for c in result["changes"]] == [("nft", None), (None, str(rules_file))]
    assert result["diff"][0]["before"] == "-A FORWARD -j REJECT --reject-with icmp-host-prohibited\n"
    assert result["diff"][0]["after"] == ""


def test_run_check_mode_changes_nothing(tmp_path):
    rules_file = tmp_path / "iptables"
    rules_file.write_text(STOCK)
    outputs = {"iptables-nft-save": (0, STOCK, "")}
    module = FakeModule(params(rules_file=str(rules_file)), BINS, outputs, check_mode=True)
    result = fw.run(module)
    assert result["changed"] is True
    assert not [args for args, _unused in module.calls if "restore" in args[0]]
    assert rules_file.read_text() == STOCK


@pytest.mark.parametrize(
    ("overrides", "bins", "message"),
    [
        ({}, {"iptables"}, "Cannot find iptables-save and iptables-restore"),
        ({"chain": "NOPE"}, BINS, "Chain NOPE does not exist"),
    ],
)
def test_run_errors_change_nothing(tmp_path, overrides, bins, message):
    rules_file = tmp_path / "iptables"
    rules_file.write_text(STOCK)
    module = FakeModule(params(rules_file=str(rules_file), **overrides), bins, {"iptables-nft-save": (0, STOCK, "")})
    with pytest.raises(ModuleError, match=message):
        fw.run(module)
    assert not [args for args, _unused in module.calls if "restore" in args[0]]
    assert rules_file.read_text() == STOCK


def test_run_unreadable_or_broken_rules_file_changes_nothing(tmp_path):
    outputs = {"iptables-nft-save": (0, STOCK, "")}
    directory = tmp_path / "iptables"
    directory.mkdir()
    with pytest.raises(ModuleError, match="is a directory"):
        fw.run(FakeModule(params(rules_file=str(directory)), BINS, outputs))
    broken = tmp_path / "broken"
    broken.write_text("-A FORWARD -j REJECT\n")
    module = FakeModule(params(rules_file=str(broken)), BINS, outputs)
    with pytest.raises(ModuleError, match="line 1"):
        fw.run(module)
    assert not [args for args, _unused in module.calls if "restore" in args[0]]


def test_run_restore_failure_is_reported(tmp_path):
    outputs = {"iptables-nft-save": (0, STOCK, ""), "iptables-nft-restore": (1, "", "iptables-nft-restore: line 2 failed")}
    with pytest.raises(ModuleError, match=r"line 2 failed.*run the task again"):
        fw.run(FakeModule(params(persist=False), BINS, outputs))


def test_run_save_failure_is_reported():
    outputs = {"iptables-nft-save": (1, "", "Permission denied (you must be root)")}
    with pytest.raises(ModuleError, match="you must be root"):
        fw.run(FakeModule(params(persist=False), BINS, outputs))


@pytest.fixture
def system_bus(tmp_path, monkeypatch):
    """A host with a system bus: its socket exists (a plain file stands in; only its existence is looked at)."""
    socket = tmp_path / "system_bus_socket"
    socket.write_text("")
    monkeypatch.setattr(fw, "SYSTEM_BUS_SOCKET", str(socket))
    monkeypatch.delenv("DBUS_SYSTEM_BUS_ADDRESS", raising=False)


def test_run_firewalld_running_fails_before_anything(system_bus):
    module = FakeModule(params(), BINS | {"firewall-cmd"}, {"firewall-cmd": (0, "running\n", "")})
    with pytest.raises(ModuleError, match="firewalld is running"):
        fw.run(module)
    assert [args[0] for args, _unused in module.calls] == ["/usr/sbin/firewall-cmd"]


def test_run_firewalld_installed_but_stopped_is_fine(system_bus):
    module = FakeModule(params(persist=False), BINS | {"firewall-cmd"}, {"firewall-cmd": (252, "not running\n", "")})
    assert fw.run(module)["changed"] is False


def test_run_firewalld_running_is_asked_of_the_bus_first(system_bus):
    module = FakeModule(params(), BINS | {"firewall-cmd", "busctl"}, {"busctl": (0, "b true\n", "")})
    with pytest.raises(ModuleError, match="firewalld is running"):
        fw.run(module)
    assert [args for args, _unused in module.calls] == [
        [
            "/usr/sbin/busctl",
            "--system",
            "call",
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "NameHasOwner",
            "s",
            "org.fedoraproject.FirewallD1",
        ]
    ]


def test_run_firewalld_not_on_the_bus_needs_no_firewall_cmd(system_bus):
    module = FakeModule(params(persist=False), BINS | {"firewall-cmd", "busctl"}, {"busctl": (0, "b false\n", ""), "firewall-cmd": (0, "running\n", "")})
    assert fw.run(module)["changed"] is False
    assert "/usr/sbin/firewall-cmd" not in [args[0] for args, _unused in module.calls]


def test_run_firewalld_asks_firewall_cmd_when_the_bus_cannot_answer(system_bus):
    outputs = {"busctl": (1, "", "Failed to connect to bus: No such file or directory"), "firewall-cmd": (0, "running\n", "")}
    module = FakeModule(params(), BINS | {"firewall-cmd", "busctl"}, outputs)
    with pytest.raises(ModuleError, match="firewalld is running"):
        fw.run(module)
    assert [args[0] for args, _unused in module.calls] == ["/usr/sbin/busctl", "/usr/sbin/firewall-cmd"]


def test_run_without_firewalld_installed_asks_nothing_about_it():
    module = FakeModule(params(persist=False), BINS | {"busctl"}, {})
    fw.run(module)
    assert "/usr/sbin/busctl" not in [args[0] for args, _unused in module.calls]


def test_run_without_a_system_bus_firewalld_cannot_run(tmp_path, monkeypatch):
    monkeypatch.setattr(fw, "SYSTEM_BUS_SOCKET", str(tmp_path / "no-bus"))
    monkeypatch.delenv("DBUS_SYSTEM_BUS_ADDRESS", raising=False)
    module = FakeModule(params(persist=False), BINS | {"firewall-cmd", "busctl"}, {"firewall-cmd": (0, "running\n", "")})
    fw.run(module)
    assert not [args for args, _unused in module.calls if os.path.basename(args[0]) in ("busctl", "firewall-cmd")]


def test_run_old_iptables_single_backend():
    module = FakeModule(
        params(persist=False, accept_bridged=True),
        {"iptables", "iptables-save", "iptables-restore"},
        {"iptables-save": lambda args, data: (0, "iptables-save v1.4.21\n", "") if "--version" in args else (0, STOCK, "")},
    )
    result = fw.run(module)
    assert result["backends"] == {"ipv4": ["legacy"]}
    restore = [args for args, _unused in module.calls if args[0].endswith("iptables-restore")]
    assert restore == [["/usr/sbin/iptables-restore", "--noflush"]]


def test_run_default_backend_from_plain_iptables():
    outputs = {"iptables": (0, "iptables v1.8.9 (legacy)\n", "")}
    module = FakeModule(params(persist=False, accept_bridged=True), BINS, outputs)
    result = fw.run(module)
    assert [(c["backend"], c["inserted"]) for c in result["changes"]] == [("legacy", ["-I FORWARD 1 -m physdev --physdev-is-bridged -j ACCEPT"])]


def test_run_warns_when_rules_file_is_missing_for_insert(tmp_path):
    module = FakeModule(params(rules_file=str(tmp_path / "none"), accept_bridged=True), BINS, {"iptables-nft-save": (0, STOCK, "")})
    result = fw.run(module)
    assert any("does not exist" in warning for warning in result["warnings"])
    assert not (tmp_path / "none").exists()
