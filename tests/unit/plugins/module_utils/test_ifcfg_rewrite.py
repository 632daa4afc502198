"""Rewriting ifcfg files: NetworkManager's write-unknown cases and the module's plan."""

from __future__ import annotations

import os

import pytest

from ansible_collections.kvmhost.bridging.plugins.module_utils import _ifcfg, _ifcfg_codec

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
CONFORMANCE = os.environ.get("KVMB_IFCFG_CONFORMANCE", os.path.join(os.path.dirname(ROOT), "shared", "conformance", "ifcfg"))
SCRIPTS = os.path.join(CONFORMANCE, "nm-network-scripts")
if not os.path.isdir(SCRIPTS):  # pragma: no cover - the conformance data is part of the test contract
    pytest.fail(
        "the ifcfg conformance data is missing: NetworkManager's test files expected in %s (../shared/conformance/ifcfg "
        "beside the repository, or KVMB_IFCFG_CONFORMANCE)" % SCRIPTS,
        pytrace=False,
    )


def _read(name):
    with open(os.path.join(SCRIPTS, name), encoding="utf-8") as handle:
        return handle.read()


@pytest.mark.parametrize("number", [1, 2, 3])
def test_write_unknown(number):
    """Upstream writes these files unchanged otherwise: invalid lines become #NM: comments."""
    before = _read("ifcfg-test-write-unknown-%d" % number)
    plan = _ifcfg.plan_rewrite(before, {}, purge=False)
    assert plan.after == _read("ifcfg-test-write-unknown-%d.expected" % number)
    assert plan.changes == []
    assert plan.commented  # what forced the rewrite
    # the result is stable: NetworkManager's reading did not change, and a second plan changes nothing
    assert _ifcfg_codec.parse(plan.after) == {k: ("" if v is None else v) for k, v in _ifcfg_codec.parse(before).items()}
    assert not _ifcfg.plan_rewrite(plan.after, {}).changed


def test_write_unknown_4_duplicates_and_invalid():
    before = _read("ifcfg-test-write-unknown-4")
    values = _ifcfg_codec.parse(before)
    assert values["IPADDR"] == "l4x"
    assert values["IPADDR2"] is None  # badly quoted; NetworkManager treats it as ""
    assert values["IPADDR3"] == "name3-value"
    assert values["METRIC1"] == ""
    assert values["METRIC2"] is None
    assert values["METRIC3"] is None
    plan = _ifcfg.plan_rewrite(before, {"IPADDR": "set-by-test1", "IPADDR2": "set-by-test2", "IPADDR3": "set-by-test3"})
    assert plan.after == _read("ifcfg-test-write-unknown-4.expected")
    assert plan.changed_keys == ["IPADDR", "IPADDR2", "IPADDR3"]
    assert [c.action for c in plan.changes] == ["set", "set", "set"]
    assert plan.values["IPADDR"] == "set-by-test1"


# Each file's values, written out (read off the files; bash sourcing them gives the same), with
# ${UUID} filled in as upstream's test harness does (an unquoted ${UUID} would expand in bash).
UUID = "5fcfd6d7-1e63-3332-8826-a7eda103792d"
VALID_FILES = {
    "ifcfg-test-bridge-main": {
        "DEVICE": "br0",
        "ONBOOT": "no",
        "TYPE": "Bridge",
        "BOOTPROTO": "dhcp",
        "STP": "on",
        "DELAY": "2",
        "BRIDGING_OPTS": "priority=32744 hello_time=7 max_age=39 ageing_time=235352 multicast_snooping=0 group_fwd_mask=24 vlan_filtering=1 default_pvid=99",
        "MACADDR": "00:16:41:11:22:33",
    },
    "ifcfg-test-bridge-component": {
        "DEVICE": "eth0",
        "HWADDR": "00:22:15:59:62:97",
        "ONBOOT": "no",
        "BRIDGE": "br0",
        "BRIDGING_OPTS": "priority=28 hairpin_mode=1 path_cost=100",
    },
    "ifcfg-test-bridge-missing-stp": {
        "DEVICE": "br0",
        "ONBOOT": "no",
        "TYPE": "Bridge",
        "BOOTPROTO": "dhcp",
    },
    "ifcfg-test-misc-variables": {
        "DEVICE": "eth0",
        "HWADDR_BLACKLIST": "00:16:41:11:22:88 00:16:41:11:22:99 XX:aa:invalid 6A:5D:5A:FA:DD:F0",
        "AUTOCONNECT_RETRIES": "100",
    },
    "ifcfg-test-team-port-1": {
        "TYPE": "Ethernet",
        "TEAM_PORT_CONFIG": '{"p4p1": {"prio": -10, "sticky": true}}',
        "DEVICE": "p4p1",
        "TEAM_MASTER": "team0",
        "DEVICETYPE": "TeamPort",
    },
    "ifcfg-test-vlan-trailing-spaces": {
        "DEVICE": "vlan201",
        "ONBOOT": "yes",
        "NETBOOT": "yes",
        "BOOTPROTO": "none",
        "IPADDR": "10.130.70.7",
        "NETMASK": "255.255.0.0",
        "TYPE": "Vlan",
        "NAME": "vlan201",
        "VLAN": "yes",
        "PHYSDEV": "enccw0.0.fb00",
    },
    "ifcfg-test-wifi-open-ssid-quoted": {
        "TYPE": "Wireless",
        "DEVICE": "eth2",
        "HWADDR": "00:16:41:11:22:33",
        "NM_CONTROLLED": "yes",
        "BOOTPROTO": "dhcp",
        "ESSID": 'foo"bar\\',
        "CHANNEL": "1",
        "MODE": "Managed",
        "RATE": "auto",
        "ONBOOT": "yes",
        "USERCTL": "yes",
        "PEERDNS": "yes",
        "IPV6INIT": "no",
    },
    "ifcfg-test-wifi-open-ssid-long-quoted": {
        "TYPE": "Wireless",
        "DEVICE": "eth2",
        "HWADDR": "00:16:41:11:22:33",
        "NM_CONTROLLED": "yes",
        "BOOTPROTO": "dhcp",
        "ESSID": 'foo"bar\\foo"bar\\foo"bar\\foo"bar\\1',
        "CHANNEL": "1",
        "MODE": "Managed",
        "RATE": "auto",
        "ONBOOT": "yes",
        "USERCTL": "yes",
        "PEERDNS": "yes",
        "IPV6INIT": "no",
    },
    "ifcfg-test-wifi-wpa-psk-2": {
        "TYPE": "Wireless",
        "DEVICE": "eth2",
        "HWADDR": "00:16:41:11:22:33",
        "NM_CONTROLLED": "yes",
        "BOOTPROTO": "dhcp",
        "ESSID": "ipsum",
        "CHANNEL": "6",
        "MODE": "Managed",
        "RATE": "auto",
        "ONBOOT": "yes",
        "USERCTL": "yes",
        "PEERDNS": "yes",
        "IPV6INIT": "no",
        "CIPHER_PAIRWISE": "TKIP CCMP",
        "CIPHER_GROUP": "TKIP CCMP WEP40 WEP104",
        "KEY_MGMT": "WPA-PSK",
        "WPA_ALLOW_WPA": "yes",
        "WPA_ALLOW_WPA2": "yes",
    },
    "ifcfg-test-wifi-wpa-psk-unquoted": {
        "TYPE": "Wireless",
        "DEVICE": "eth2",
        "HWADDR": "00:16:41:11:22:33",
        "NM_CONTROLLED": "yes",
        "BOOTPROTO": "dhcp",
        "ESSID": "blahblah",
        "CHANNEL": "1",
        "MODE": "Managed",
        "RATE": "auto",
        "ONBOOT": "yes",
        "USERCTL": "yes",
        "PEERDNS": "yes",
        "IPV6INIT": "no",
        "CIPHER_PAIRWISE": "TKIP CCMP",
        "CIPHER_GROUP": "TKIP CCMP WEP40 WEP104",
        "KEY_MGMT": "WPA-PSK",
        "WPA_ALLOW_WPA": "yes",
        "WPA_ALLOW_WPA2": "yes",
    },
    "ifcfg-Test_Write_Bridge_Component.cexpected": {
        "TYPE": "Ethernet",
        "HWADDR": "31:33:33:37:BE:CD",
        "MTU": "1492",
        "BRIDGING_OPTS": "priority=50 path_cost=33",
        "BRIDGE_PORT_VLANS": "1 untagged,2 pvid,4-4094 untagged",
        "NAME": "Test Write Bridge Component",
        "UUID": "5fcfd6d7-1e63-3332-8826-a7eda103792d",
        "ONBOOT": "yes",
        "BRIDGE": "br0",
    },
    "ifcfg-System_test-bridge-component-a.cexpected": {
        "TYPE": "Ethernet",
        "HWADDR": "00:22:15:59:62:97",
        "BRIDGING_OPTS": "priority=28 hairpin_mode=1",
        "NAME": "System test-bridge-component",
        "UUID": "5fcfd6d7-1e63-3332-8826-a7eda103792d",
        "DEVICE": "eth0",
        "ONBOOT": "no",
        "BRIDGE": "br0",
    },
    "ifcfg-System_test-bridge-component-b.cexpected": {
        "TYPE": "Ethernet",
        "HWADDR": "00:22:15:59:62:97",
        "NAME": "System test-bridge-component",
        "UUID": "5fcfd6d7-1e63-3332-8826-a7eda103792d",
        "DEVICE": "eth0",
        "ONBOOT": "no",
        "PROXY_METHOD": "none",
        "BROWSER_ONLY": "no",
        "BOOTPROTO": "dhcp",
        "DEFROUTE": "yes",
        "IPV4_FAILURE_FATAL": "no",
        "IPV6INIT": "yes",
        "IPV6_AUTOCONF": "yes",
        "IPV6_DEFROUTE": "yes",
        "IPV6_FAILURE_FATAL": "no",
        "IPV6_ADDR_GEN_MODE": "default",
    },
    "ifcfg-Test_Write_Wired_match.cexpected": {
        "TYPE": "Ethernet",
        "PROXY_METHOD": "none",
        "BROWSER_ONLY": "no",
        "MATCH_DRIVER": "!virtio e1000e",
        "MATCH_INTERFACE_NAME": "ens* eth\\ 1? !veth*",
        "MATCH_KERNEL_COMMAND_LINE": "!ip=",
        "BOOTPROTO": "dhcp",
        "DEFROUTE": "yes",
        "IPV4_FAILURE_FATAL": "no",
        "IPV6INIT": "no",
        "IPV6_DEFROUTE": "yes",
        "IPV6_FAILURE_FATAL": "no",
        "IPV6_ADDR_GEN_MODE": "eui64",
        "NAME": "Test Write Wired with Match setting",
        "UUID": "5fcfd6d7-1e63-3332-8826-a7eda103792d",
        "ONBOOT": "yes",
    },
}


@pytest.mark.parametrize("name", sorted(VALID_FILES))
def test_valid_files_are_left_alone_when_values_match(name):
    """Setting every key to the value it already has changes nothing, byte for byte."""
    before = _read(name).replace("${UUID}", UUID)
    assert _ifcfg_codec.parse(before) == VALID_FILES[name]
    plan = _ifcfg.plan_rewrite(before, dict(VALID_FILES[name]))
    assert not plan.changed
    assert plan.changes == []
    assert plan.after == before


def test_unquoted_dollar_brace_is_rewritten():
    """NetworkManager reads ${UUID} literally, bash expands it: the module quotes it."""
    plan = _ifcfg.plan_rewrite("UUID=${UUID}\n", {"UUID": "${UUID}"})
    assert plan.after == 'UUID="\\${UUID}"\n'


def test_upstream_values():
    main = _ifcfg_codec.parse(_read("ifcfg-test-bridge-main"))
    assert main["TYPE"] == "Bridge"
    assert main["BRIDGING_OPTS"].split()[0] == "priority=32744"
    assert _ifcfg_codec.parse(_read("ifcfg-test-vlan-trailing-spaces"))["DEVICE"] == "vlan201"
    assert _ifcfg_codec.parse(_read("ifcfg-test-wifi-open-ssid-quoted"))["ESSID"] == 'foo"bar\\'
    corner = _ifcfg_codec.parse(_read("ifcfg-test-variables-corner-cases-1"))
    assert corner["NAME"] is None
    assert corner["ZONE"] is None
    assert _ifcfg_codec.parse(_read("ifcfg-test-unrecognized"))["NAME"] is None  # U Can't Touch This


def test_bridge_port_conversion_keeps_everything_else():
    before = "# eth0, set up by the installer\nDEVICE=eth0\nTYPE=Ethernet\nBOOTPROTO=dhcp\n\nUUID=1234\nONBOOT=yes\nX_UNKNOWN='keep me'\n"
    desired = {"DEVICE": "eth0", "BRIDGE": "breth0", "BOOTPROTO": "none", "HWADDR": "52:54:00:12:34:56", "ONBOOT": "yes", "NM_CONTROLLED": "no"}
    plan = _ifcfg.plan_rewrite(before, desired)
    assert plan.after == (
        "# eth0, set up by the installer\nDEVICE=eth0\nTYPE=Ethernet\nBOOTPROTO=none\n\nUUID=1234\nONBOOT=yes\nX_UNKNOWN='keep me'\n"
        "BRIDGE=breth0\nHWADDR=52:54:00:12:34:56\nNM_CONTROLLED=no\n"
    )
    assert plan.changed_keys == ["BRIDGE", "BOOTPROTO", "HWADDR", "NM_CONTROLLED"]
    assert [(c.key, c.action, c.before, c.after) for c in plan.changes][:2] == [("BRIDGE", "add", None, "breth0"), ("BOOTPROTO", "set", "dhcp", "none")]
    again = _ifcfg.plan_rewrite(plan.after, desired)
    assert not again.changed
    assert again.changes == []


def test_new_file():
    plan = _ifcfg.plan_rewrite(None, {"DEVICE": "breth0", "TYPE": "Bridge", "NAME": "my bridge", "GONE": None})
    assert plan.before is None
    assert plan.after == 'DEVICE=breth0\nTYPE=Bridge\nNAME="my bridge"\n'
    assert plan.changed_keys == ["DEVICE", "TYPE", "NAME"]


def test_quoting_is_kept_when_the_value_matches():
    before = "DEVICE=\"eth0\"\nNAME='System eth0'\nONBOOT=yes # boot\n"
    plan = _ifcfg.plan_rewrite(before, {"DEVICE": "eth0", "NAME": "System eth0", "ONBOOT": "yes"})
    assert not plan.changed


@pytest.mark.parametrize(
    ("line", "value"),
    [
        ("HOME_DIR=~root", "~root"),  # bash would read /root
        ("CMD=`id`", "`id`"),  # bash would run id
        ('OLD="\\~"', "~"),  # bash would read \~
        ("CRLF=yes\r", "yes"),  # bash would read yes\r
    ],
)
def test_spelling_that_bash_reads_differently_is_rewritten(line, value):
    key = line.split("=")[0]
    assert _ifcfg_codec.parse(line + "\n")[key] == value  # NetworkManager already reads the wanted value
    plan = _ifcfg.plan_rewrite(line + "\n", {key: value})
    assert plan.changed_keys == [key]
    assert plan.after == "%s=%s\n" % (key, _ifcfg_codec.escape(value))


def test_leading_blanks_stay_unless_the_value_changes():
    before = "  A=1\n\tB=2\n"
    assert not _ifcfg.plan_rewrite(before, {"A": "1", "B": "2"}).changed
    assert _ifcfg.plan_rewrite(before, {"A": "1", "B": "3"}).after == "  A=1\nB=3\n"


def test_duplicates_collapse_to_the_last_occurrence():
    before = "# one\nA=1\n# two\nA=1\n# three\n"
    plan = _ifcfg.plan_rewrite(before, {"A": "1"})
    assert plan.after == "# one\n# two\nA=1\n# three\n"
    assert plan.changed_keys == ["A"]


def test_remove_and_purge():
    before = "# c\nDEVICE=eth0\nA=1\nB=2\nA=3\nC=4\n"
    plan = _ifcfg.plan_rewrite(before, {"DEVICE": "eth0", "B": None})
    assert plan.after == "# c\nDEVICE=eth0\nA=1\nA=3\nC=4\n"
    assert [(c.key, c.action, c.before) for c in plan.changes] == [("B", "remove", "2")]
    plan = _ifcfg.plan_rewrite(before, {"DEVICE": "eth0", "C": "4"}, purge=True)
    assert plan.after == "# c\nDEVICE=eth0\nC=4\n"
    assert [(c.key, c.action, c.before) for c in plan.changes] == [("B", "remove", "2"), ("A", "remove", "3")]
    assert not _ifcfg.plan_rewrite(plan.after, {"DEVICE": "eth0", "C": "4"}, purge=True).changed


def test_invalid_line_alone_forces_a_rewrite():
    """A broken quote could swallow the managed keys in bash, so the file is normalised."""
    before = "FOO='\nIPADDR=198.18.5.10\n'\n"
    assert _ifcfg_codec.parse(before)["IPADDR"] == "198.18.5.10"
    plan = _ifcfg.plan_rewrite(before, {"IPADDR": "198.18.5.10"})
    assert plan.changed
    assert plan.changes == []
    assert plan.commented == ["FOO='", "'"]
    assert plan.after == "FOO=\n#NM: FOO='\nIPADDR=198.18.5.10\n#NM: '\n"


def test_no_trailing_newline_and_missing_file_removal():
    assert not _ifcfg.plan_rewrite("A=1", {"A": "1"}).changed
    assert _ifcfg.plan_rewrite("A=1", {"A": "2"}).after == "A=2\n"
    removal = _ifcfg.plan_remove("A=1\nB='x'\n")
    assert removal.after is None
    assert removal.changed
    assert removal.changed_keys == ["A", "B"]
    assert not _ifcfg.plan_remove(None).changed


def test_non_utf8_bytes_survive_a_rewrite():
    raw = b"# caf\xe9 in latin-1\nA=1\nB=$'\\351'\n"
    text = raw.decode("utf-8", "surrogateescape")
    plan = _ifcfg.plan_rewrite(text, {"A": "2"})
    # the comment keeps its byte; B is not UTF-8, which NetworkManager reads as "" and comments out
    assert plan.after.encode("utf-8", "surrogateescape") == b"# caf\xe9 in latin-1\nA=2\nB=\n#NM: B=$'\\351'\n"
