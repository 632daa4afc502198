"""firewalld: parsing firewall-cmd's listings, the bridges' zones and policies, the plan, the doctor's checks."""

from __future__ import annotations

import pytest

from ansible_collections.kvmhost.bridging.plugins.module_utils import _firewalld_check as fc
from ansible_collections.kvmhost.bridging.plugins.module_utils import _firewalld_plan as fp
from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import ModuleError
from ansible_collections.kvmhost.bridging.plugins.module_utils._firewalld_read import (
    Snapshot,
    parse_list_all,
    parse_version,
)


def listing(text):
    """firewall-cmd's listing: '$' marks the trailing space it prints after an empty value."""
    return text.replace("$\n", " \n")


ZONES = listing("""\
public (default, active)
  target: default
  icmp-block-inversion: no
  interfaces: eth0 breth0
  sources: $
  services: dhcpv6-client ssh
  forward: yes
  masquerade: no
  rich rules: $

libvirt
  target: ACCEPT
  interfaces: $
  forward: no
  masquerade: no
  rich rules: $
\trule priority="32767" reject
""")

POLICIES = listing("""\
allow-host-ipv6 (active)
  priority: -15000
  target: CONTINUE
  ingress-zones: ANY
  egress-zones: HOST
  masquerade: no
  rich rules: $
\trule family="ipv6" icmp-type name="neighbour-advertisement" accept
""")


def zone(interfaces=(), forward=True, masquerade=False):
    return {"interfaces": list(interfaces), "forward": forward, "masquerade": masquerade}


def snap(runtime=None, permanent=None, policies=None, version=(1, 3, 3), default="public"):
    runtime = runtime if runtime is not None else {"public": zone()}
    permanent = permanent if permanent is not None else {name: dict(z) for name, z in runtime.items()}
    policies = policies or {}
    return Snapshot(True, version, default, {"runtime": runtime, "permanent": permanent}, {"runtime": dict(policies), "permanent": dict(policies)})


def bridge(name, uplinks=(), addresses=(), ports=None):
    ports = ports if ports is not None else [{"name": u} for u in uplinks] + [{"name": "vnet0"}]
    return {"name": name, "uplinks": list(uplinks), "ports": ports, "addresses": [{"address": a.split("/")[0], "cidr": a} for a in addresses]}


def test_parse_list_all_zones():
    zones = parse_list_all(ZONES)
    assert set(zones) == {"public", "libvirt"}
    assert zones["public"]["interfaces"] == ["eth0", "breth0"] and zones["public"]["forward"] is True
    assert zones["public"]["active"] and not zones["libvirt"]["active"]
    assert zones["libvirt"]["interfaces"] == [] and zones["libvirt"]["forward"] is False
    assert zones["public"]["services"] == ["dhcpv6-client", "ssh"]


def test_parse_list_all_policies_skips_rich_rules():
    policies = parse_list_all(POLICIES)
    assert list(policies) == ["allow-host-ipv6"]
    assert policies["allow-host-ipv6"]["ingress-zones"] == ["ANY"] and policies["allow-host-ipv6"]["target"] == "CONTINUE"
    assert "rule family" not in str(policies)


@pytest.mark.parametrize(("text", "version"), [("1.3.3\n", (1, 3, 3)), ("0.9", (0, 9, 0)), ("0.8.2-1", (0, 8, 2)), ("", (0, 0, 0))])
def test_parse_version(text, version):
    assert parse_version(text) == version


@pytest.mark.parametrize(
    ("change", "argv"),
    [
        (fp.Change("permanent", "zone", "public", "change-interface", "breth0"), ["--permanent", "--zone=public", "--change-interface=breth0"]),
        (fp.Change("runtime", "zone", "public", "forward", True), ["--zone=public", "--add-forward"]),
        (fp.Change("runtime", "zone", "public", "masquerade", False), ["--zone=public", "--remove-masquerade"]),
        (fp.Change("permanent", "zone", "kvmb-routed", "new"), ["--permanent", "--new-zone=kvmb-routed"]),
        (fp.Change("permanent", "policy", "p", "add-ingress-zone", "a"), ["--permanent", "--policy=p", "--add-ingress-zone=a"]),
        (fp.Change("permanent", "policy", "p", "target", "ACCEPT"), ["--permanent", "--policy=p", "--set-target=ACCEPT"]),
        (fp.Change("permanent", "policy", "p", "delete"), ["--permanent", "--delete-policy=p"]),
        (fp.Change("runtime", "firewalld", "", "reload"), ["--reload"]),
    ],
)
def test_change_argv(change, argv):
    assert change.argv() == argv
    assert change.text() == "firewall-cmd " + " ".join(argv)


def test_bridged_bridge_goes_into_the_default_zone_with_forward():
    zones, policies, report = fp.bridge_wants([bridge("breth1", ["eth1"])], ["*"], snap(), bridge_nf_call=1)
    assert [(z.name, z.interfaces, z.forward) for z in zones] == [("public", ("breth1",), True)]
    assert policies == []
    assert report[0]["kind"] == "bridged" and report[0]["zone"] == "public"
    assert "bridge-nf-call-iptables=1" in report[0]["msg"] and "zone public" in report[0]["msg"]


def test_bridge_keeps_its_zone_or_takes_its_uplinks():
    s = snap(runtime={"public": zone(), "home": zone(["eth1"]), "work": zone(["brwork"])})
    zones, _p, _r = fp.bridge_wants([bridge("breth1", ["eth1"]), bridge("brwork", ["eth2"])], ["*"], s)
    assert {z.interfaces[0]: z.name for z in zones} == {"breth1": "home", "brwork": "work"}
    zones, _p, _r = fp.bridge_wants([bridge("breth1", ["eth1"])], ["*"], s, bridged_zone="trusted")
    assert zones[0].name == "trusted"


def test_libvirt_bridges_are_left_alone():
    s = snap(runtime={"public": zone(), "libvirt": zone(["virbr7"], forward=False), "lv": zone()})
    bridges = [bridge("virbr0"), bridge("virbr7"), bridge("br0", ["eth1"])]
    zones, _p, report = fp.bridge_wants(bridges, ["*"], s)
    assert [r["bridge"] for r in report] == ["br0"]
    assert [z.interfaces for z in zones] == [("br0",)]


def test_routed_bridge_gets_its_zone_and_policies():
    bridges = [bridge("isol0", addresses=["198.18.40.1/24"])]
    zones, policies, report = fp.bridge_wants(bridges, ["isol0"], snap(), routed_directions=["out"], routed_masquerade=True)
    assert [(z.name, z.interfaces, z.forward) for z in zones] == [("kvmb-routed", ("isol0",), True)]
    by_name = {p.name: p for p in policies}
    out, back = by_name["kvmb-routed-out"], by_name["kvmb-routed-in"]
    assert out.present and out.ingress == ("kvmb-routed",) and out.egress == ("public",) and out.masquerade
    assert not back.present
    assert report[0]["kind"] == "routed" and report[0]["policies"] == ["kvmb-routed-out"]
    assert "kvmb-routed-out (kvmb-routed -> public, masquerade)" in report[0]["msg"]


def test_routed_policies_bind_the_unbound_interfaces_to_the_default_zone():
    s = snap(runtime={"public": zone(), "home": zone(["eth2"])})
    bridges = [bridge("isol0", addresses=["198.18.40.1/24"])]
    zones, _p, report = fp.bridge_wants(bridges, ["*"], s, routed_directions=["out"], interfaces=["eth0", "eth1", "eth2"])
    assert [(z.name, z.interfaces) for z in zones] == [("kvmb-routed", ("isol0",)), ("public", ("eth0", "eth1"))]
    assert report[-1]["kind"] == "policy_zone" and report[-1]["interfaces"] == ["eth0", "eth1"]
    # Not when the policies lead to another zone, nor when no policy is asked for.
    zones, _p, _r = fp.bridge_wants(bridges, ["*"], s, routed_to_zone="home", interfaces=["eth0"])
    assert [z.name for z in zones] == ["kvmb-routed"]
    zones, _p, _r = fp.bridge_wants(bridges, ["*"], s, routed_directions=[], interfaces=["eth0"])
    assert [z.name for z in zones] == ["kvmb-routed"]


def test_addressed_interfaces():
    links = [
        {"index": 1, "name": "lo", "kind": None, "master": None},
        {"index": 2, "name": "eth0", "kind": None, "master": None},
        {"index": 3, "name": "eth1", "kind": None, "master": 5},
        {"index": 4, "name": "eth2", "kind": None, "master": None},
        {"index": 5, "name": "br0", "kind": "bridge", "master": None},
    ]
    addresses = [
        {"index": 1, "address": "127.0.0.1"},
        {"index": 2, "address": "198.18.0.2"},
        {"index": 3, "address": "198.18.1.2"},
        {"index": 4, "address": "fe80::1"},
        {"index": 5, "address": "198.18.2.1"},
    ]
    assert fp.addressed_interfaces(links, addresses) == ["eth0"]


def test_isolated_bridge_without_address_is_bridged_like():
    _z, policies, report = fp.bridge_wants([bridge("isol0", addresses=["fe80::1/64"])], ["*"], snap())
    assert report[0]["kind"] == "isolated" and report[0]["zone"] == "public" and policies == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"names": ["nosuch"]}, "bridge nosuch does not exist"),
        ({"names": ["isol0"], "routed_to_zone": "kvmb-routed"}, "routed zone kvmb-routed itself"),
        ({"names": ["isol0"], "routed_directions": ["up"]}, "not one of out, in"),
        ({"names": ["isol0"], "routed_zone": "a-zone-name-too-long-for-firewalld"}, "not valid"),
    ],
)
def test_bridge_wants_errors(kwargs, match):
    names = kwargs.pop("names")
    with pytest.raises(ModuleError, match=match):
        fp.bridge_wants([bridge("isol0", addresses=["198.18.40.1/24"])], names, snap(), **kwargs)


def test_plan_binds_the_bridge_runtime_and_permanent_without_reload():
    wants = fp.merge_zones([fp.ZoneWant("public", ["breth1"], forward=True)])
    permanent, reload_needed, runtime = fp.plan(snap(), wants, [])
    assert [c.text() for c in permanent] == ["firewall-cmd --permanent --zone=public --change-interface=breth1"]
    assert not reload_needed
    assert [c.text() for c in runtime] == ["firewall-cmd --zone=public --change-interface=breth1"]


def test_plan_moves_an_interface_out_of_its_zone():
    s = snap(runtime={"public": zone(), "home": zone(["breth1"], forward=False)})
    permanent, _reload, _runtime = fp.plan(s, [fp.ZoneWant("public", ["breth1"], forward=True)], [])
    assert [c.op for c in permanent] == ["change-interface"]
    after, _pol = fp.simulate(s.zones["permanent"], {}, permanent)
    assert after["home"]["interfaces"] == [] and after["public"]["interfaces"] == ["breth1"]


def test_plan_is_empty_when_everything_is_there():
    s = snap(runtime={"public": zone(["breth1"])})
    assert fp.plan(s, [fp.ZoneWant("public", ["breth1"], forward=True)], []) == ([], False, [])


def test_plan_turns_forward_on_where_it_is_off():
    s = snap(runtime={"public": zone(["breth1"], forward=False)})
    permanent, reload_needed, runtime = fp.plan(s, [fp.ZoneWant("public", ["breth1"], forward=True)], [])
    assert [c.text() for c in permanent + runtime] == ["firewall-cmd --permanent --zone=public --add-forward", "firewall-cmd --zone=public --add-forward"]
    assert not reload_needed


def test_plan_new_zone_and_policy_need_a_reload():
    zones = [fp.ZoneWant("kvmb-routed", ["isol0"], forward=True)]
    policies = [fp.PolicyWant("kvmb-routed-out", True, ["kvmb-routed"], ["public"], "ACCEPT", False)]
    permanent, reload_needed, runtime = fp.plan(snap(), zones, policies)
    assert reload_needed
    assert [c.text() for c in permanent] == [
        "firewall-cmd --permanent --new-zone=kvmb-routed",
        "firewall-cmd --permanent --zone=kvmb-routed --change-interface=isol0",
        "firewall-cmd --permanent --zone=kvmb-routed --add-forward",
        "firewall-cmd --permanent --new-policy=kvmb-routed-out",
        "firewall-cmd --permanent --policy=kvmb-routed-out --add-ingress-zone=kvmb-routed",
        "firewall-cmd --permanent --policy=kvmb-routed-out --add-egress-zone=public",
        "firewall-cmd --permanent --policy=kvmb-routed-out --set-target=ACCEPT",
    ]
    # After the reload the zone has the permanent binding: nothing is left for the runtime.
    assert runtime == []


def test_plan_policy_changes_and_removal():
    have = {
        "p": {"ingress-zones": ["a"], "egress-zones": ["public"], "target": "CONTINUE", "masquerade": True},
        "gone": {"ingress-zones": ["a"], "egress-zones": ["b"], "target": "ACCEPT", "masquerade": False},
    }
    s = snap(runtime={"public": zone(), "a": zone(), "b": zone()}, policies=have)
    policies = [fp.PolicyWant("p", True, ["b"], ["public"], "ACCEPT", False), fp.PolicyWant("gone", False)]
    permanent, reload_needed, _runtime = fp.plan(s, [], policies)
    assert [c.text() for c in permanent] == [
        "firewall-cmd --permanent --policy=p --remove-ingress-zone=a",
        "firewall-cmd --permanent --policy=p --add-ingress-zone=b",
        "firewall-cmd --permanent --policy=p --set-target=ACCEPT",
        "firewall-cmd --permanent --policy=p --remove-masquerade",
        "firewall-cmd --permanent --delete-policy=gone",
    ]
    assert reload_needed


def test_plan_reloads_when_only_the_runtime_policy_differs():
    pol = {"ingress-zones": ["a"], "egress-zones": ["public"], "target": "ACCEPT", "masquerade": False}
    s = snap(runtime={"public": zone(), "a": zone()}, policies={"p": pol})
    s.policies["runtime"] = {}
    permanent, reload_needed, _runtime = fp.plan(s, [], [fp.PolicyWant("p", True, ["a"], ["public"], "ACCEPT", False)])
    assert permanent == [] and reload_needed


@pytest.mark.parametrize(
    ("zones", "policies", "version", "match"),
    [
        ([fp.ZoneWant("public", ["br0"], forward=True)], [], (0, 8, 2), "no intra-zone forwarding"),
        ([], [fp.PolicyWant("p", True, ["public"], ["public"])], (0, 8, 2), "no policies"),
        ([], [fp.PolicyWant("p", True, ["nosuch"], ["public"])], (1, 3, 3), "names zone nosuch"),
    ],
)
def test_plan_refuses_before_any_change(zones, policies, version, match):
    with pytest.raises(ModuleError, match=match):
        fp.plan(snap(version=version), zones, policies)


def test_merge_zones_rejects_an_interface_in_two_zones():
    with pytest.raises(ModuleError, match="interface br0 is wanted in zone a and in zone b"):
        fp.merge_zones([fp.ZoneWant("a", ["br0"]), fp.ZoneWant("b", ["br0"])])
    with pytest.raises(ModuleError, match="forward on and off"):
        fp.merge_zones([fp.ZoneWant("a", forward=True), fp.ZoneWant("a", forward=False)])
    merged = fp.merge_zones([fp.ZoneWant("a", ["x"], forward=True), fp.ZoneWant("a", ["y"], masquerade=True)])
    assert [(m.name, m.interfaces, m.forward, m.masquerade) for m in merged] == [("a", ("x", "y"), True, True)]


@pytest.mark.parametrize(
    ("item", "match"),
    [
        ({"name": "bad name"}, "not valid"),
        ({"name": "p", "target": "ALLOW"}, "not one of"),
        ({"name": "p", "ingress_zones": ["a"]}, "needs ingress_zones and egress_zones"),
    ],
)
def test_policy_wants_errors(item, match):
    with pytest.raises(ModuleError, match=match):
        fp.policy_wants([item])


def test_doctor_bridge_in_no_zone_is_blocked_with_bridge_nf_call():
    problems = fc.problems(snap(), [bridge("breth1", ["eth1"])], 1)
    assert [(p["check"], p["subject"]) for p in problems] == [("firewalld_block", "breth1")]
    assert "default zone public" in problems[0]["problem"]
    assert "playbooks/forwarding.yml" in problems[0]["fix"]
    assert "firewall-cmd --permanent --zone=public --change-interface=breth1" in problems[0]["fix"]


def test_doctor_bridge_in_no_zone_without_bridge_nf_call():
    problems = fc.problems(snap(), [bridge("breth1", ["eth1"])], 0)
    assert [p["check"] for p in problems] == ["firewalld_zone"]
    assert "bypass firewalld now (bridge-nf-call-iptables=0)" in problems[0]["problem"]


def test_doctor_zone_without_forward():
    s = snap(runtime={"public": zone(["breth1"], forward=False)})
    problems = fc.problems(s, [bridge("breth1", ["eth1"])], 1)
    assert [p["check"] for p in problems] == ["firewalld_forward"]
    assert "firewall-cmd --zone=public --add-forward" in problems[0]["fix"]
    assert fc.problems(s, [bridge("breth1", ["eth1"])], 0) == []


def test_doctor_runtime_only_binding():
    s = snap(runtime={"public": zone(["breth1"])}, permanent={"public": zone()})
    problems = fc.problems(s, [bridge("breth1", ["eth1"])], 1)
    assert [p["check"] for p in problems] == ["firewalld_zone"] and "runtime only" in problems[0]["problem"]


def test_doctor_libvirt_zone():
    s = snap(runtime={"public": zone(), "libvirt": zone(["virbr0", "breth1"], forward=False)})
    problems = fc.problems(s, [bridge("virbr0"), bridge("breth1", ["eth1"])], 1)
    assert [(p["check"], p["subject"]) for p in problems] == [("firewalld_libvirt", "virbr0"), ("firewalld_libvirt", "breth1")]
    assert "--zone=libvirt --add-forward" in problems[0]["fix"]
    assert "--zone=public --change-interface=breth1" in problems[1]["fix"]


def test_doctor_healthy_and_not_running():
    assert fc.problems(snap(runtime={"public": zone(["breth1"])}), [bridge("breth1", ["eth1"])], 1) == []
    assert fc.problems(Snapshot(False), [bridge("breth1", ["eth1"])], 1) == []
