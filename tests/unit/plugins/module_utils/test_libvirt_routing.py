"""libvirt_routing planning: which rules for which networks, and the errors before any change (no libvirt, no iptables)."""

from __future__ import annotations

import pytest

from ansible_collections.kvmhost.bridging.plugins.module_utils import _libvirt_routing as lr
from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import ModuleError


def net(name, forward, bridge, *subnets):
    return {"network": name, "bridge": bridge, "forward": forward, "subnets": list(subnets), "active": True, "autostart": False}


NATNET = net("natnet", "nat", "virbr2", "198.18.122.0/24", "fd00:122::/64")
RTNET = net("rtnet", "route", "virbr1", "198.18.123.0/24")
OPEN = net("opennet", "open", "virbr4", "198.18.124.0/24")
LAN = net("lan", "bridge", "br0")


def test_a_nat_and_a_routed_network_get_both_directions_and_no_nat_between_them():
    planned = lr.plan(["natnet", "rtnet"], [RTNET, NATNET, LAN])
    assert [lr.describe(r) for r in planned["rules"]] == [
        "iptables -t filter -I LIBVIRT_FWX 1 -i virbr2 -o virbr1 -s 198.18.122.0/24 -d 198.18.123.0/24 "
        "-m comment --comment kvmhost.bridging libvirt_routing -j ACCEPT",
        "iptables -t nat -I LIBVIRT_PRT 1 -s 198.18.122.0/24 -d 198.18.123.0/24 -m comment --comment kvmhost.bridging libvirt_routing -j RETURN",
        "iptables -t filter -I LIBVIRT_FWX 1 -i virbr1 -o virbr2 -s 198.18.123.0/24 -d 198.18.122.0/24 "
        "-m comment --comment kvmhost.bridging libvirt_routing -j ACCEPT",
    ]
    methods = {n["network"]: n["method"] for n in planned["networks"]}
    assert methods["natnet"].startswith("hook: NAT kept to the outside")
    assert methods["rtnet"].startswith("hook: forward mode route kept")
    # IPv6 subnets are left out: libvirt_routing writes IPv4 rules
    assert planned["networks"][0]["subnets"] == ["198.18.122.0/24"]


def test_three_networks_make_every_ordered_pair_that_libvirt_does_not_route_already():
    planned = lr.plan(["natnet", "rtnet", "opennet"], [RTNET, NATNET, OPEN])
    pairs = {(r["in"], r["out"]) for r in planned["rules"] if r["chain"] == "LIBVIRT_FWX"}
    # rtnet (route) and opennet (open) reach each other through libvirt's own rules: only the pairs with natnet
    assert len(pairs) == 4 and ("virbr4", "virbr2") in pairs and ("virbr1", "virbr4") not in pairs
    # only NAT sources skip the masquerade
    assert {r["source"] for r in planned["rules"] if r["chain"] == "LIBVIRT_PRT"} == {"198.18.122.0/24"}


@pytest.mark.parametrize(
    ("names", "networks", "words"),
    [
        (["natnet", "nonet"], [NATNET, RTNET], "Unknown libvirt network(s): nonet. Defined networks: natnet, rtnet"),
        (["natnet"], [NATNET, RTNET], "at least two network names"),
        (["natnet", "lan"], [NATNET, LAN], "lan has forward mode bridge"),
        (["natnet", "bare"], [NATNET, net("bare", "route", None, "198.18.125.0/24")], "bare has no bridge or no IPv4 subnet"),
        (["natnet", "over"], [NATNET, net("over", "route", "virbr3", "198.18.122.128/25")], "natnet (198.18.122.0/24) and over (198.18.122.128/25) overlap"),
    ],
)
def test_bad_input_is_refused_before_any_change(names, networks, words):
    with pytest.raises(ModuleError) as info:
        lr.plan(names, networks)
    assert words in info.value.msg


def test_rules_compare_whatever_order_iptables_prints_them_in():
    rule = lr.plan(["natnet", "rtnet"], [NATNET, RTNET])["rules"][0]
    printed = '-A LIBVIRT_FWX -s 198.18.122.0/24 -d 198.18.123.0/24 -i virbr2 -o virbr1 -m comment --comment "kvmhost.bridging libvirt_routing" -j ACCEPT'
    assert lr._key(printed) == lr._key(lr._rule_line(rule))
    other = printed.replace("-o virbr1", "-o virbr3")
    assert lr._key(other) != lr._key(lr._rule_line(rule))


def test_the_hook_acts_only_on_started_of_its_networks(tmp_path, monkeypatch):
    planned = lr.plan(["natnet", "rtnet"], [NATNET, RTNET])
    text = lr.hook_text(planned, "/usr/bin/python3")
    assert text.startswith("#!/usr/bin/python3\n")
    path = tmp_path / "hook.py"
    path.write_text(text)
    namespace = {"__name__": "hook"}
    code = compile(text.replace("sys.exit(main())", ""), str(path), "exec")
    exec(code, namespace)  # noqa: S102 (the generated hook, to check what it would run)
    calls = []
    namespace["iptables"] = lambda table, verb, chain, args: calls.append((table, verb, chain)) or (1 if verb == "-C" else 0)
    for argv in (["hook", "other", "started"], ["hook", "natnet", "stopped"]):
        monkeypatch.setattr(namespace["sys"], "argv", argv)
        namespace["main"]()
    assert calls == []
    monkeypatch.setattr(namespace["sys"], "argv", ["hook", "natnet", "started", "begin", "-"])
    namespace["main"]()
    assert [c for c in calls if c[1] == "-I"] == [("filter", "-I", "LIBVIRT_FWX"), ("nat", "-I", "LIBVIRT_PRT"), ("filter", "-I", "LIBVIRT_FWX")]


# iptables-save -t filter of a libvirt 9.0 host (the lab) with natnet (NAT, virbr2) and rtnet (route, virbr1) started.
LIBVIRT9_FILTER = """\
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:LIBVIRT_FWI - [0:0]
:LIBVIRT_FWO - [0:0]
:LIBVIRT_FWX - [0:0]
:LIBVIRT_INP - [0:0]
:LIBVIRT_OUT - [0:0]
-A INPUT -j LIBVIRT_INP
-A FORWARD -j LIBVIRT_FWX
-A FORWARD -j LIBVIRT_FWI
-A FORWARD -j LIBVIRT_FWO
-A OUTPUT -j LIBVIRT_OUT
-A LIBVIRT_FWI -d 198.18.123.0/24 -o virbr1 -j ACCEPT
-A LIBVIRT_FWI -o virbr1 -j REJECT --reject-with icmp-port-unreachable
-A LIBVIRT_FWI -d 198.18.122.0/24 -o virbr2 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A LIBVIRT_FWI -o virbr2 -j REJECT --reject-with icmp-port-unreachable
-A LIBVIRT_FWO -s 198.18.123.0/24 -i virbr1 -j ACCEPT
-A LIBVIRT_FWO -i virbr1 -j REJECT --reject-with icmp-port-unreachable
-A LIBVIRT_FWO -s 198.18.122.0/24 -i virbr2 -j ACCEPT
-A LIBVIRT_FWO -i virbr2 -j REJECT --reject-with icmp-port-unreachable
-A LIBVIRT_FWX -i virbr1 -o virbr1 -j ACCEPT
-A LIBVIRT_FWX -i virbr2 -o virbr2 -j ACCEPT
COMMIT
"""
ROUTED = """\
-A LIBVIRT_FWX -s 198.18.123.0/24 -d 198.18.122.0/24 -i virbr1 -o virbr2 -m comment --comment "kvmhost.bridging libvirt_routing" -j ACCEPT
-A LIBVIRT_FWX -s 198.18.122.0/24 -d 198.18.123.0/24 -i virbr2 -o virbr1 -m comment --comment "kvmhost.bridging libvirt_routing" -j ACCEPT
"""


def test_the_doctor_names_the_one_way_direction_its_rule_and_chain():
    problems, lines = lr.doctor_problems([NATNET, RTNET, LAN], LIBVIRT9_FILTER)
    assert [p["subject"] for p in problems] == ["rtnet->natnet"]
    assert "'-A LIBVIRT_FWI -o virbr2 -j REJECT --reject-with icmp-port-unreachable' in chain LIBVIRT_FWI" in problems[0]["problem"]
    assert "while natnet -> rtnet passes" in problems[0]["problem"]
    assert problems[0]["fix"].startswith(
        "natnet is NAT: libvirt accepts only replies into 198.18.122.0/24; run playbooks/libvirt_routing.yml with libvirt_routing_networks=[natnet, rtnet]"
    )
    # the LAN: NAT takes no new connections from outside (information, no problem); a routed network does
    assert (
        "libvirt routing: new connections the LAN -> natnet is rejected (REJECT): -A LIBVIRT_FWI -o virbr2 -j REJECT "
        "--reject-with icmp-port-unreachable, chain LIBVIRT_FWI"
    ) in lines
    assert ("libvirt routing: new connections the LAN -> rtnet passes: -A LIBVIRT_FWI -d 198.18.123.0/24 -o virbr1 -j ACCEPT, chain LIBVIRT_FWI") in lines
    assert len(lines) == 6


def test_after_the_fix_both_ways_pass_through_our_rules():
    fixed = LIBVIRT9_FILTER.replace("-A LIBVIRT_FWX -i virbr1 -o virbr1", ROUTED + "-A LIBVIRT_FWX -i virbr1 -o virbr1")
    problems, lines = lr.doctor_problems([NATNET, RTNET], fixed)
    assert problems == []
    assert any(line.startswith("libvirt routing: new connections rtnet -> natnet passes: -A LIBVIRT_FWX -s 198.18.123.0/24") for line in lines)


def test_inactive_or_single_networks_and_no_rules_say_nothing():
    assert lr.doctor_problems([NATNET], LIBVIRT9_FILTER) == (
        [],
        [
            "libvirt routing: new connections natnet -> the LAN passes: -A LIBVIRT_FWO -s 198.18.122.0/24 -i virbr2 -j ACCEPT, chain LIBVIRT_FWO",
            "libvirt routing: new connections the LAN -> natnet is rejected (REJECT): -A LIBVIRT_FWI -o virbr2 -j REJECT "
            "--reject-with icmp-port-unreachable, chain LIBVIRT_FWI",
        ],
    )
    assert lr.doctor_problems([dict(NATNET, active=False), RTNET], "") == ([], [])


def test_a_drop_policy_and_negations_are_followed():
    save = "*filter\n:FORWARD DROP [0:0]\n-A FORWARD ! -s 198.18.123.0/24 -o virbr1 -j ACCEPT\nCOMMIT\n"
    problems, _lines = lr.doctor_problems([NATNET, RTNET], save)
    assert {p["subject"] for p in problems} == {"rtnet->natnet"}
    assert "'policy DROP' in chain FORWARD" in problems[0]["problem"]


def test_directions_without_any_rule_set_give_no_verdict():
    assert lr.directions([NATNET, RTNET], None, None) == []
    assert [(d["from"], d["to"]) for d in lr.directions([NATNET, RTNET], None, {"nftables": []})][:2] == [("natnet", "rtnet"), ("natnet", "the LAN")]
