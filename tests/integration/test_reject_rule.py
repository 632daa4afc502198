"""reject_rule against lab hosts: the bridged guest's DHCP proof, both backends, IPv6, the rules file, bad input."""

from __future__ import annotations

import contextlib

import kvmblab
import pytest

MODULE = "kvmhost.bridging.reject_rule"
STOCK_RULE = "-A FORWARD -j REJECT --reject-with icmp-host-prohibited"
ACCEPT_RULE = "-A FORWARD -m physdev --physdev-is-bridged -j ACCEPT"


def without_noise(text):
    """iptables-save output without the timestamped comments and the packet counters."""
    return [" ".join(line.split()[:2]) if line.startswith(":") else line for line in text.splitlines() if not line.startswith("#")]


def rules(host, command="iptables-nft-save"):
    """The host's live rules as ``command`` prints them."""
    return without_noise(host.run([command]).stdout)


def chain(host, name="FORWARD", command="iptables-nft-save"):
    return [line for line in rules(host, command) if line.startswith("-A %s " % name)]


def bridge_with_guest(host):
    """br0 with eth1 (the lab LAN) and a guest on vnet0; bridged frames go through iptables."""
    host.run(["ip", "link", "add", "br0", "type", "bridge", "forward_delay", "0"])
    host.run(["ip", "link", "set", "eth1", "master", "br0"])
    host.run(["ip", "link", "set", "br0", "up"])
    host.run(["sh", "-c", "echo 1 > /proc/sys/net/bridge/bridge-nf-call-iptables"])
    assert host.read_file("/proc/sys/net/bridge/bridge-nf-call-iptables").strip() == "1"
    return host.add_guest(port="vnet0", bridge="br0")


def test_removal_lets_the_bridged_guest_get_a_lease(stock_host, ansible):
    host = stock_host
    guest = bridge_with_guest(host)
    assert chain(host) == [STOCK_RULE]
    assert guest.dhcp(timeout=4) is None, "the stock REJECT rule should block the guest's DHCP"

    result = ansible.module(host, MODULE, {"chain": "FORWARD", "reject_with": "icmp-host-prohibited", "state": "absent"})
    assert not result.get("failed"), result
    assert result["changed"] is True
    assert result["backends"]["ipv4"] == ["nft", "legacy"]
    assert {(c["backend"], c["path"]): c["removed"] for c in result["changes"]} == {
        ("nft", None): [STOCK_RULE],
        (None, "/etc/sysconfig/iptables"): [STOCK_RULE],
    }
    assert chain(host) == []
    assert "-A INPUT -j REJECT --reject-with icmp-host-prohibited" in rules(host)  # other chains untouched
    assert host.read_file("/etc/sysconfig/iptables") == kvmblab.STOCK_IPTABLES.replace(STOCK_RULE + "\n", "")

    lease = guest.dhcp()
    assert lease is not None and lease.startswith("198.19.0.")

    again = ansible.module(host, MODULE, {"chain": "FORWARD", "reject_with": "icmp-host-prohibited", "state": "absent"})
    assert again["changed"] is False and again["changes"] == []


def test_accept_bridged_lets_the_bridged_guest_get_a_lease(stock_host, ansible):
    host = stock_host
    guest = bridge_with_guest(host)
    assert guest.dhcp(timeout=4) is None

    result = ansible.module(host, MODULE, {"accept_bridged": True})
    assert not result.get("failed"), result
    assert result["changed"] is True
    assert chain(host) == [ACCEPT_RULE, STOCK_RULE]  # first, and the REJECT stays
    assert host.read_file("/etc/sysconfig/iptables") == kvmblab.STOCK_IPTABLES.replace(STOCK_RULE, ACCEPT_RULE + "\n" + STOCK_RULE)
    assert [c["inserted"] for c in result["changes"]] == [["-I FORWARD 1 -m physdev --physdev-is-bridged -j ACCEPT"]] * 2

    lease = guest.dhcp()
    assert lease is not None and lease.startswith("198.19.0.")

    again = ansible.module(host, MODULE, {"accept_bridged": True})
    assert again["changed"] is False
    assert chain(host) == [ACCEPT_RULE, STOCK_RULE]

    # state: present takes the ACCEPT out again, live and in the file (byte for byte).
    undo = ansible.module(host, MODULE, {"accept_bridged": True, "state": "present"})
    assert undo["changed"] is True
    assert chain(host) == [STOCK_RULE]
    assert host.read_file("/etc/sysconfig/iptables") == kvmblab.STOCK_IPTABLES
    assert guest.dhcp(timeout=4) is None


def test_both_backends_and_duplicates(host, ansible):
    for _unused in range(2):
        host.run(["iptables-legacy", "-A", "FORWARD", "-j", "REJECT", "--reject-with", "icmp-host-prohibited"])
    host.run(["iptables-legacy", "-A", "FORWARD", "-o", "virbr0", "-j", "REJECT", "--reject-with", "icmp-host-prohibited"])
    host.run(["iptables-legacy", "-A", "FORWARD", "-j", "REJECT", "--reject-with", "icmp-host-prohibited"])
    host.run(["iptables-nft", "-A", "FORWARD", "-j", "REJECT", "--reject-with", "icmp-host-prohibited"])
    host.run(["iptables-nft", "-A", "FORWARD", "-j", "REJECT", "--reject-with", "icmp-port-unreachable"])

    result = ansible.module(host, MODULE, {"persist": False}, diff=True)
    assert result["changed"] is True
    assert {c["backend"]: len(c["removed"]) for c in result["changes"]} == {"nft": 1, "legacy": 3}
    assert chain(host, command="iptables-legacy-save") == ["-A FORWARD -o virbr0 -j REJECT --reject-with icmp-host-prohibited"]
    assert chain(host) == ["-A FORWARD -j REJECT --reject-with icmp-port-unreachable"]
    legacy_diff = next(d for d in result["diff"] if d["before_header"].startswith("iptables-legacy"))
    assert legacy_diff["before"].count(STOCK_RULE + "\n") == 3
    assert legacy_diff["after"] == "-A FORWARD -o virbr0 -j REJECT --reject-with icmp-host-prohibited\n"

    # reject_with: any takes every REJECT of the chain, with extra matches too, in both backends.
    result = ansible.module(host, MODULE, {"persist": False, "reject_with": "any"})
    assert result["changed"] is True
    assert chain(host, command="iptables-legacy-save") == []
    assert chain(host) == []


def test_accept_bridged_in_legacy_when_the_rules_are_there(host, ansible):
    host.run(["iptables-legacy", "-A", "FORWARD", "-j", "REJECT", "--reject-with", "icmp-host-prohibited"])
    result = ansible.module(host, MODULE, {"persist": False, "accept_bridged": True})
    assert [c["backend"] for c in result["changes"]] == ["legacy"]
    assert chain(host, command="iptables-legacy-save") == [ACCEPT_RULE, STOCK_RULE]
    assert chain(host) == []


STOCK_IP6TABLES = """\
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -m state --state RELATED,ESTABLISHED -j ACCEPT
-A INPUT -p ipv6-icmp -j ACCEPT
-A INPUT -j REJECT --reject-with icmp6-adm-prohibited
-A FORWARD -j REJECT --reject-with icmp6-adm-prohibited
COMMIT
"""


def test_ipv6_and_both(stock_host, ansible):
    host = stock_host
    host.run(["ip6tables-nft-restore"], input=STOCK_IP6TABLES)
    host.write_file("/etc/sysconfig/ip6tables", STOCK_IP6TABLES)

    result = ansible.module(host, MODULE, {"ip_version": "both"})
    assert result["changed"] is True
    assert sorted((c["ip_version"], c["backend"] or c["path"]) for c in result["changes"]) == [
        ("ipv4", "/etc/sysconfig/iptables"),
        ("ipv4", "nft"),
        ("ipv6", "/etc/sysconfig/ip6tables"),
        ("ipv6", "nft"),
    ]
    assert chain(host, command="ip6tables-nft-save") == []
    assert "-A INPUT -j REJECT --reject-with icmp6-adm-prohibited" in rules(host, "ip6tables-nft-save")
    assert host.read_file("/etc/sysconfig/ip6tables") == STOCK_IP6TABLES.replace("-A FORWARD -j REJECT --reject-with icmp6-adm-prohibited\n", "")
    assert chain(host) == []
    assert ansible.module(host, MODULE, {"ip_version": "both"})["changed"] is False


def test_check_mode_and_diff_change_nothing(stock_host, ansible):
    host = stock_host
    before = rules(host)
    result = ansible.module(host, MODULE, {}, check=True, diff=True)
    assert result["changed"] is True
    assert rules(host) == before
    assert host.read_file("/etc/sysconfig/iptables") == kvmblab.STOCK_IPTABLES
    live, saved = result["diff"]
    assert live["before"] == STOCK_RULE + "\n" and live["after"] == ""
    assert saved["before_header"] == "/etc/sysconfig/iptables"
    assert saved["after"] == kvmblab.STOCK_IPTABLES.replace(STOCK_RULE + "\n", "")


ODD_FILE = (
    "# Generated by iptables-save v1.4.21 on Mon Jan  1 00:00:00 2024\n"
    "*nat\n:PREROUTING ACCEPT [12:3456]\n:POSTROUTING ACCEPT [0:0]\n"
    "[0:0] -A POSTROUTING -s 192.168.122.0/24 ! -d 192.168.122.0/24 -j MASQUERADE\nCOMMIT\n"
    "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:LOCAL - [0:0]\n"
    "-A FORWARD -o virbr0 -j REJECT --reject-with icmp-host-prohibited   \n"
    "[3:180] -A FORWARD -j REJECT --reject-with icmp-host-prohibited\n"
    '-A FORWARD -m comment --comment "keep \\"me\\"" -j ACCEPT\n'
    "--append FORWARD --jump REJECT --reject-with host-prohib\n"
    "COMMIT\n"
    "# Completed"  # no final newline
)


def test_rules_file_round_trip_keeps_every_other_byte(host, ansible):
    host.write_file("/etc/sysconfig/iptables", ODD_FILE)
    result = ansible.module(host, MODULE, {})
    assert result["changed"] is True
    removed = "[3:180] -A FORWARD -j REJECT --reject-with icmp-host-prohibited\n", "--append FORWARD --jump REJECT --reject-with host-prohib\n"
    expected = ODD_FILE
    for line in removed:
        expected = expected.replace(line, "")
    assert host.read_file("/etc/sysconfig/iptables") == expected
    assert ansible.module(host, MODULE, {})["changed"] is False

    # accept_bridged then its undo give the same bytes back.
    assert ansible.module(host, MODULE, {"accept_bridged": True})["changed"] is True
    with_accept = host.read_file("/etc/sysconfig/iptables")
    assert with_accept == expected.replace("-A FORWARD -o virbr0", ACCEPT_RULE + "\n-A FORWARD -o virbr0")
    assert ansible.module(host, MODULE, {"accept_bridged": True, "state": "present"})["changed"] is True
    assert host.read_file("/etc/sysconfig/iptables") == expected

    # The file still restores, and to the rules we meant.
    host.run(["iptables-legacy-restore"], input=host.read_file("/etc/sysconfig/iptables"))
    assert chain(host, command="iptables-legacy-save") == [
        "-A FORWARD -o virbr0 -j REJECT --reject-with icmp-host-prohibited",
        '-A FORWARD -m comment --comment "keep \\"me\\"" -j ACCEPT',
    ]


@contextlib.contextmanager
def unchanged(host, paths=("/etc/sysconfig/iptables",)):
    """Assert that the live rules of both backends and the files stay exactly as they were."""

    def snapshot():
        # Read from the root mount namespace (ip netns exec), so a test may hide the host's binaries.
        live = [
            without_noise(kvmblab._run(["ip", "netns", "exec", host.netns, cmd]).stdout)
            for cmd in ("iptables-nft-save", "iptables-legacy-save", "ip6tables-nft-save")
        ]
        files = [host.read_file(path) for path in paths]
        return live, files

    before = snapshot()
    yield
    assert snapshot() == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"chain": "FORWRAD"}, "Chain FORWRAD does not exist"),
        ({"chain": "PREROUTING"}, "not a chain of the filter table"),
        ({"table": "filtre"}, "Unknown iptables table 'filtre'"),
        ({"table": "nat"}, "only in the filter table"),
        ({"reject_with": "icmp-host-forbidden"}, "Invalid reject_with 'icmp-host-forbidden'"),
        ({"reject_with": "icmp6-adm-prohibited"}, "is an ICMPv6 type"),
        ({"reject_with": "any", "state": "present"}, "needs a type"),
    ],
)
def test_bad_input_fails_clearly_and_changes_nothing(stock_host, ansible, args, message):
    with unchanged(stock_host):
        result = ansible.module(stock_host, MODULE, args)
    assert result.get("failed") is True
    assert message in result["msg"]


def test_unreadable_rules_file_fails_and_changes_nothing(stock_host, ansible):
    host = stock_host
    host.run(["mkdir", "/etc/sysconfig/iptables.d"])
    with unchanged(host):
        result = ansible.module(host, MODULE, {"rules_file": "/etc/sysconfig/iptables.d"})
    assert result.get("failed") is True
    assert "/etc/sysconfig/iptables.d is a directory" in result["msg"]

    host.write_file("/etc/sysconfig/iptables", kvmblab.STOCK_IPTABLES.replace("COMMIT\n", ""))
    with unchanged(host):
        result = ansible.module(host, MODULE, {})
    assert result.get("failed") is True
    assert "/etc/sysconfig/iptables: table filter has no COMMIT line" in result["msg"]


def test_missing_iptables_fails_and_changes_nothing(stock_host, ansible):
    host = stock_host
    # Hide every iptables binary inside the host's private mount namespace only.
    for multi in ("/usr/sbin/xtables-nft-multi", "/usr/sbin/xtables-legacy-multi"):
        host.run(["mount", "--bind", "/dev/null", multi])
    assert host.run(["iptables-nft-save"], check=False).returncode != 0
    with unchanged(host):
        result = ansible.module(host, MODULE, {})
    assert result.get("failed") is True
    assert "Cannot find iptables-save and iptables-restore" in result["msg"]
    assert "Install the iptables package" in result["msg"]
