"""Issue 15, libvirt's nftables backend, with the real nft (Debian 12's nftables 1.0.6) in a lab host.

Debian 12's libvirt 9.0 has no nftables backend (libvirt 10.4 added it), so libvirt's own table is loaded here as
libvirt 10 makes it (its documented commands: tests/networkxml2firewalldata/base.nftables, nat-default-linux.nftables,
route-default-linux.nftables of libvirt's source) for natnet (NAT, virbr2) and rtnet (route, virbr1). Then the
statements libvirt_routing plans are loaded with ``nft -f`` and the packets are checked: both ways pass, A keeps its
NAT to the LAN and is not masqueraded towards B. A network restart as libvirt does it (its rules deleted and inserted
again on top) puts the masquerade above our exemption; the generated hook, run as libvirtd runs it, puts ours back.
The doctor's walk reads the host's ``nft -j list ruleset`` before and after.
"""

from __future__ import annotations

import json
import os
import sys

import pytest

# the collection as ansible-playbook finds it (scripts/setup.sh copies the tree there)
sys.path.insert(0, os.environ.get("ANSIBLE_COLLECTIONS_PATH", os.path.expanduser("~/.ansible/collections")).split(os.pathsep)[0])

from ansible_collections.kvmhost.bridging.plugins.module_utils import _libvirt_nft as lnft
from ansible_collections.kvmhost.bridging.plugins.module_utils import _libvirt_routing as lr

A_ADDR, B_ADDR, LAN_GATEWAY = "198.18.122.10", "198.18.123.10", "198.19.0.1"
NATNET = {"network": "natnet", "bridge": "virbr2", "forward": "nat", "subnets": ["198.18.122.0/24"], "active": True}
RTNET = {"network": "rtnet", "bridge": "virbr1", "forward": "route", "subnets": ["198.18.123.0/24"], "active": True}
HOOK = "/etc/libvirt/hooks/network.d/50-kvmhost-bridging-routing"

BASE = """\
add table ip libvirt_network
add chain ip libvirt_network forward { type filter hook forward priority 0; policy accept; }
add chain ip libvirt_network guest_output
insert rule ip libvirt_network forward counter jump guest_output
add chain ip libvirt_network guest_input
insert rule ip libvirt_network forward counter jump guest_input
add chain ip libvirt_network guest_cross
insert rule ip libvirt_network forward counter jump guest_cross
add chain ip libvirt_network guest_nat { type nat hook postrouting priority 100; policy accept; }
"""


def libvirt_rules(net):
    """The rules libvirt 10 inserts when ``net`` starts (its -ae insert commands, in its order)."""
    br, subnet = net["bridge"], net["subnets"][0]
    lines = [
        "guest_output iif %s counter reject" % br,
        "guest_input oif %s counter reject" % br,
        "guest_cross iif %s oif %s counter accept" % (br, br),
        "guest_output ip saddr %s iif %s counter accept" % (subnet, br),
    ]
    if net["forward"] == "nat":
        lines += [
            "guest_input oif %s ip daddr %s ct state related,established counter accept" % (br, subnet),
            "guest_nat ip saddr %s ip daddr != %s counter masquerade" % (subnet, subnet),
            "guest_nat meta l4proto udp ip saddr %s ip daddr != %s counter masquerade to :1024-65535" % (subnet, subnet),
            "guest_nat meta l4proto tcp ip saddr %s ip daddr != %s counter masquerade to :1024-65535" % (subnet, subnet),
            "guest_nat ip saddr %s ip daddr 255.255.255.255/32 counter return" % subnet,
            "guest_nat ip saddr %s ip daddr 224.0.0.0/24 counter return" % subnet,
        ]
    else:
        lines.append("guest_input ip daddr %s oif %s counter accept" % (subnet, br))
    return "".join("insert rule ip libvirt_network %s\n" % line for line in lines)


def nft(host, *args, script=None):
    return host.run(["nft", *args] if script is None else ["nft", "-f", "-"], input=script).stdout


def ruleset(host):
    return json.loads(nft(host, "-j", "list", "ruleset"))


def libvirt_restart(host, net):
    """What libvirt does to its rules on net-destroy + net-start: its rules of ``net`` deleted, inserted again on top."""
    doc = ruleset(host)
    mine = [
        r
        for r in lnft.table_rules(doc)
        if r.get("comment") is None
        and r["chain"] != "forward"
        and any(net["bridge"] in json.dumps(e) or net["subnets"][0].split("/")[0] in json.dumps(e) for e in r["expr"])
    ]
    deletes = "".join("delete rule ip libvirt_network %s handle %d\n" % (r["chain"], r["handle"]) for r in mine)
    nft(host, script=deletes + libvirt_rules(net))


MASQUERADE = "ip saddr 198.18.122.0/24 ip daddr != 198.18.122.0/24 counter masquerade"  # libvirt's rule for ICMP


def counter(host, chain, words):
    """The packets counted by the rule of ``chain`` whose text is ``words`` (a str) or has all ``words`` (a list)."""
    for rule in lnft.table_rules(ruleset(host)):
        text = lnft.render(rule["expr"], rule.get("comment"))
        if rule["chain"] == chain and (text == words if isinstance(words, str) else all(w in text for w in words)):
            return next(e["counter"]["packets"] for e in rule["expr"] if "counter" in e)
    raise AssertionError("no rule with %s in %s" % (words, chain))


@pytest.fixture
def nft_host(host):
    for br, addr in (("virbr2", "198.18.122.1/24"), ("virbr1", "198.18.123.1/24")):
        host.run(["ip", "link", "add", br, "type", "bridge"])
        host.run(["ip", "addr", "add", addr, "dev", br])
        host.run(["ip", "link", "set", br, "up"])
    host.run(["sysctl", "-qw", "net.ipv4.ip_forward=1"])
    host.run(["ip", "link", "set", "eth1", "up"])
    host.run(["ip", "addr", "add", "198.19.0.60/24", "dev", "eth1"])
    guest_a, guest_b = host.add_guest(bridge="virbr2"), host.add_guest(bridge="virbr1")
    for guest, addr, gateway in ((guest_a, A_ADDR, "198.18.122.1"), (guest_b, B_ADDR, "198.18.123.1")):
        guest.run(["ip", "addr", "add", addr + "/24", "dev", "eth0"])
        guest.run(["ip", "route", "add", "default", "via", gateway])
    nft(host, script=BASE + libvirt_rules(RTNET) + libvirt_rules(NATNET))
    yield host, guest_a, guest_b
    # the host's namespace (with its tables and bridges) goes with the host fixture


def test_nft_rules_load_and_route_both_ways_and_the_hook_restores_them(nft_host):
    host, guest_a, guest_b = nft_host
    names = ["natnet", "rtnet"]
    planned = lr.plan(names, [NATNET, RTNET])["rules"]

    # libvirt's rules alone: A -> B passes (masqueraded), B -> A is rejected in guest_input; A reaches the LAN by NAT
    assert guest_a.ping(B_ADDR)
    assert not guest_b.ping(A_ADDR)
    assert guest_a.ping(LAN_GATEWAY)
    assert counter(host, "guest_nat", MASQUERADE) >= 1
    problems, _lines = lr.doctor_problems([NATNET, RTNET], "", nft(host, "-j", "list", "ruleset"))
    assert [p["subject"] for p in problems] == ["rtnet->natnet"]
    assert "'oif \"virbr2\" counter reject with icmp type port-unreachable' in chain ip libvirt_network guest_input" in problems[0]["problem"]

    # the planned transaction loads into the real nft and both ways pass, without NAT between them
    in_place, _present, statements = lnft.compare(ruleset(host), planned)
    assert not in_place
    nft(host, script="\n".join(statements) + "\n")
    assert lnft.compare(ruleset(host), planned)[0]  # idempotent: nothing more to do
    assert guest_b.ping(A_ADDR) and guest_a.ping(B_ADDR)
    masqueraded = counter(host, "guest_nat", MASQUERADE)
    assert guest_a.ping(B_ADDR, count=2)
    assert counter(host, "guest_nat", ["198.18.123.0/24", "return", "kvmhost.bridging"]) >= 1
    assert counter(host, "guest_nat", MASQUERADE) == masqueraded
    assert guest_a.ping(LAN_GATEWAY)  # NAT to the outside kept
    assert lr.doctor_problems([NATNET, RTNET], "", nft(host, "-j", "list", "ruleset"))[0] == []

    # libvirt restarts natnet: its masquerade lands above our exemption, A's traffic to B is masqueraded again
    libvirt_restart(host, NATNET)
    assert not lnft.compare(ruleset(host), planned)[0]
    masqueraded = counter(host, "guest_nat", MASQUERADE)
    assert guest_a.ping(B_ADDR)
    assert counter(host, "guest_nat", MASQUERADE) > masqueraded

    # the hook, run as libvirtd runs it after the start, puts ours back on top in one transaction
    host.run(["mkdir", "-p", os.path.dirname(HOOK)])
    host.write_file(HOOK, lnft.hook_text(planned, names, "/usr/bin/python3"), mode="0755")
    host.run([HOOK, "rtnet", "stopped", "end", "-"])
    assert not lnft.compare(ruleset(host), planned)[0]  # another operation: nothing done
    host.run([HOOK, "natnet", "started", "begin", "-"])
    assert lnft.compare(ruleset(host), planned)[0]
    nat_chain = [r for r in lnft.table_rules(ruleset(host)) if r["chain"] == "guest_nat"]
    assert nat_chain[0].get("comment") == lnft.COMMENT
    masqueraded = counter(host, "guest_nat", MASQUERADE)
    assert guest_b.ping(A_ADDR) and guest_a.ping(B_ADDR)
    assert counter(host, "guest_nat", MASQUERADE) == masqueraded
    assert guest_a.ping(LAN_GATEWAY)

    # taking ours away (state=absent's statements): back to libvirt's one-way rules
    nft(host, script="\n".join(lnft.compare(ruleset(host), [])[2]) + "\n")
    assert "kvmhost.bridging" not in nft(host, "list", "ruleset")
    assert not guest_b.ping(A_ADDR)
