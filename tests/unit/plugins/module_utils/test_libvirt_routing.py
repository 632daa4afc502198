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
        "iptables -t nat -I LIBVIRT_PRT 1 -s 198.18.122.0/24 -d 198.18.123.0/24 "
        "-m comment --comment kvmhost.bridging libvirt_routing -j RETURN",
        "iptables -t filter -I LIBVIRT_FWX 1 -i virbr1 -o virbr2 -s 198.18.123.0/24 -d 198.18.122.0/24 "
        "-m comment --comment kvmhost.bridging libvirt_routing -j ACCEPT",
    ]
    methods = {n["network"]: n["method"] for n in planned["networks"]}
    assert methods["natnet"].startswith("hook: NAT kept to the outside")
    assert methods["rtnet"].startswith("hook: forward mode route kept")
    # IPv6 subnets are left out: libvirt_routing writes IPv4 rules
    assert planned["networks"][0]["subnets"] == ["198.18.122.0/24"]


def test_three_networks_make_every_ordered_pair():
    planned = lr.plan(["natnet", "rtnet", "opennet"], [RTNET, NATNET, OPEN])
    pairs = {(r["in"], r["out"]) for r in planned["rules"] if r["chain"] == "LIBVIRT_FWX"}
    assert len(pairs) == 6 and ("virbr4", "virbr2") in pairs
    # only NAT sources skip the masquerade
    assert {r["source"] for r in planned["rules"] if r["chain"] == "LIBVIRT_PRT"} == {"198.18.122.0/24"}


@pytest.mark.parametrize(
    ("names", "networks", "words"),
    [
        (["natnet", "nonet"], [NATNET, RTNET], "Unknown libvirt network(s): nonet. Defined networks: natnet, rtnet"),
        (["natnet"], [NATNET, RTNET], "at least two network names"),
        (["natnet", "lan"], [NATNET, LAN], "lan has forward mode bridge"),
        (["natnet", "bare"], [NATNET, net("bare", "route", None, "198.18.125.0/24")], "bare has no bridge or no IPv4 subnet"),
        (["natnet", "over"], [NATNET, net("over", "route", "virbr3", "198.18.122.128/25")],
         "natnet (198.18.122.0/24) and over (198.18.122.128/25) overlap"),
    ],
)
def test_bad_input_is_refused_before_any_change(names, networks, words):
    with pytest.raises(ModuleError) as info:
        lr.plan(names, networks)
    assert words in info.value.msg


def test_rules_compare_whatever_order_iptables_prints_them_in():
    rule = lr.plan(["natnet", "rtnet"], [NATNET, RTNET])["rules"][0]
    printed = ('-A LIBVIRT_FWX -s 198.18.122.0/24 -d 198.18.123.0/24 -i virbr2 -o virbr1 '
               '-m comment --comment "kvmhost.bridging libvirt_routing" -j ACCEPT')
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
