"""libvirt_routing with libvirt's nftables backend: planning, comparing and the doctor's walk.

The rule sets in data/ were captured with ``nft -j list ruleset`` (nft 1.0.6) in a lab namespace after loading
libvirt's documented layout (libvirt's tests/networkxml2firewalldata/base.nftables, nat-default-linux.nftables and
route-default-linux.nftables) for natnet (NAT, virbr2, 198.18.122.0/24) and rtnet (route, virbr1, 198.18.123.0/24):

- ruleset: libvirt's rules only;
- after: then the statements ``compare`` planned, loaded with ``nft -f``;
- restarted: then natnet's rules deleted and inserted again, as libvirt does on a network restart (its masquerade now
  above our NAT exemption);
- restarted_site: then a table ``inet site`` with a forward chain at priority -10 that accepts from virbr1 and one at
  priority 10 that rejects new connections from virbr1 to virbr2.
"""

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.kvmhost.bridging.plugins.module_utils import _libvirt_nft as lnft
from ansible_collections.kvmhost.bridging.plugins.module_utils import _libvirt_routing as lr
from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import ModuleError

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


def captured(name):
    with open(os.path.join(DATA, "libvirt_nft_%s.json" % name)) as handle:
        return json.load(handle)


def net(name, forward, bridge, *subnets):
    return {"network": name, "bridge": bridge, "forward": forward, "subnets": list(subnets), "active": True, "autostart": False}


NATNET = net("natnet", "nat", "virbr2", "198.18.122.0/24")
RTNET = net("rtnet", "route", "virbr1", "198.18.123.0/24")
PLANNED = lr.plan(["natnet", "rtnet"], [NATNET, RTNET])["rules"]


def test_the_plan_inserts_accepts_in_guest_cross_and_the_nat_exemption_on_top_of_guest_nat():
    in_place, present, statements = lnft.compare(captured("ruleset"), PLANNED)
    assert not in_place and present == []
    # inserted in reverse: after the transaction they stand at the top in the planned order
    assert statements == [
        'insert rule ip libvirt_network guest_cross iifname "virbr1" oifname "virbr2" ip saddr 198.18.123.0/24 '
        'ip daddr 198.18.122.0/24 counter accept comment "kvmhost.bridging libvirt_routing"',
        'insert rule ip libvirt_network guest_nat ip saddr 198.18.122.0/24 ip daddr 198.18.123.0/24 counter return comment "kvmhost.bridging libvirt_routing"',
        'insert rule ip libvirt_network guest_cross iifname "virbr2" oifname "virbr1" ip saddr 198.18.122.0/24 '
        'ip daddr 198.18.123.0/24 counter accept comment "kvmhost.bridging libvirt_routing"',
    ]


def test_after_the_transaction_the_rules_are_in_place_and_nothing_is_planned():
    in_place, present, statements = lnft.compare(captured("after"), PLANNED)
    assert in_place and statements == []
    assert sorted(chain for chain, _h, _k in present) == ["guest_cross", "guest_cross", "guest_nat"]
    assert lnft.current_text(captured("after")).count("kvmhost.bridging libvirt_routing") == 3


def test_a_network_restart_puts_libvirt_masquerade_above_ours_and_the_rules_are_rewritten():
    in_place, present, statements = lnft.compare(captured("restarted"), PLANNED)
    assert not in_place
    handles = sorted(handle for _c, handle, _k in present)
    # one transaction: our three old rules deleted by handle, then inserted on top again
    assert statements[:3] == ["delete rule ip libvirt_network %s handle %d" % (c, h) for c, h, _k in present]
    assert len(handles) == 3 and statements[3:] == lnft.insert_statements(PLANNED)


def test_other_rules_of_ours_are_removed_and_state_absent_leaves_only_deletes():
    fewer = lr.plan(["natnet", "rtnet"], [net("natnet", "route", "virbr2", "198.18.122.0/24"), RTNET])["rules"]
    in_place, present, statements = lnft.compare(captured("after"), fewer)
    assert not in_place and len([s for s in statements if s.startswith("delete")]) == len(present) == 3
    in_place, _present, statements = lnft.compare(captured("after"), [])
    assert not in_place and all(s.startswith("delete rule ip libvirt_network") for s in statements) and len(statements) == 3
    assert lnft.compare(captured("ruleset"), []) == (True, [], [])


def test_the_backend_is_the_one_whose_rules_libvirt_made():
    assert lnft.choose_backend("auto", "", True, False) == "nftables"
    assert lnft.choose_backend("auto", 'firewall_backend = "nftables"\n', False, True) == "iptables"
    assert lnft.choose_backend("auto", '#firewall_backend = "nftables"\nfirewall_backend = "iptables"\n', True, True) == "iptables"
    assert lnft.choose_backend("iptables", "", True, False) == "iptables"
    with pytest.raises(ModuleError) as info:
        lnft.choose_backend("auto", "", False, False)
    assert "virsh net-start" in info.value.msg and "Nothing was changed" in info.value.msg


def test_the_nft_hook_deletes_ours_and_inserts_them_again_on_started_only(monkeypatch):
    text = lnft.hook_text(PLANNED, ["natnet", "rtnet"], "/usr/bin/python3")
    assert text.startswith("#!/usr/bin/python3\n")
    namespace = {"__name__": "hook"}
    exec(compile(text.replace("sys.exit(main())", ""), "hook", "exec"), namespace)  # noqa: S102 (the generated hook)
    calls = []

    class Done:
        def __init__(self, stdout=b""):
            self.returncode, self.stdout = 0, stdout

    def run(argv, **kwargs):
        calls.append((argv, kwargs.get("input")))
        return Done(json.dumps(captured("restarted")).encode()) if "-j" in argv else Done()

    monkeypatch.setattr(namespace["subprocess"], "run", run)
    for argv in (["hook", "othernet", "started"], ["hook", "natnet", "stopped"]):
        monkeypatch.setattr(namespace["sys"], "argv", argv)
        namespace["main"]()
    assert calls == []
    monkeypatch.setattr(namespace["sys"], "argv", ["hook", "natnet", "started", "begin", "-"])
    namespace["main"]()
    script = calls[-1][1].decode()
    _in_place, _present, statements = lnft.compare(captured("restarted"), PLANNED)
    assert calls[-1][0] == ["nft", "-f", "-"] and script == "\n".join(statements) + "\n"


def packet(src, dst):
    ends = {"natnet": ("virbr2", "198.18.122.10"), "rtnet": ("virbr1", "198.18.123.10"), "lan": ("eth0", "192.0.2.1")}
    return {"in": ends[src][0], "out": ends[dst][0], "saddr": ends[src][1], "daddr": ends[dst][1]}


def test_the_walk_finds_libvirt_reject_of_new_connections_into_the_nat_network():
    found = lnft.forward_verdict(captured("ruleset"), packet("rtnet", "natnet"))
    assert found == {"verdict": "REJECT", "chain": "ip libvirt_network guest_input", "rule": 'oif "virbr2" counter reject with icmp type port-unreachable'}
    passed = lnft.forward_verdict(captured("ruleset"), packet("natnet", "rtnet"))
    assert passed == {"verdict": "ACCEPT", "chain": "ip libvirt_network guest_input", "rule": 'ip daddr 198.18.123.0/24 oif "virbr1" counter accept'}
    assert lnft.forward_verdict(captured("ruleset"), packet("lan", "natnet"))["verdict"] == "REJECT"


def test_after_the_rules_both_ways_pass_in_guest_cross():
    for src, dst in (("rtnet", "natnet"), ("natnet", "rtnet")):
        found = lnft.forward_verdict(captured("after"), packet(src, dst))
        assert found["verdict"] == "ACCEPT" and found["chain"] == "ip libvirt_network guest_cross", found
        assert "kvmhost.bridging libvirt_routing" in found["rule"]
    # the LAN still gets only replies into the NAT network
    assert lnft.forward_verdict(captured("after"), packet("lan", "natnet"))["verdict"] == "REJECT"


def test_an_accept_in_an_earlier_base_chain_does_not_stop_a_later_reject():
    found = lnft.forward_verdict(captured("restarted_site"), packet("rtnet", "natnet"))
    assert found == {
        "verdict": "REJECT",
        "chain": "inet site filter_fwd",
        "rule": 'iifname "virbr1" oifname "virbr2" ct state new counter reject with icmpx type admin-prohibited',
    }
    assert lnft.forward_verdict(captured("restarted_site"), packet("natnet", "rtnet"))["verdict"] == "ACCEPT"


def test_the_doctor_reads_nftables_when_libvirt_uses_them():
    nets = [NATNET, RTNET]
    problems, lines = lr.doctor_problems(nets, "", json.dumps(captured("ruleset")))
    assert [p["subject"] for p in problems] == ["rtnet->natnet"]
    assert problems[0]["problem"] == (
        "New connections from libvirt network rtnet (virbr1) to natnet (virbr2) are rejected by the rule "
        "'oif \"virbr2\" counter reject with icmp type port-unreachable' in chain ip libvirt_network guest_input while "
        "natnet -> rtnet passes: a one-way ping."
    )
    assert problems[0]["fix"].startswith(
        "natnet is NAT: libvirt accepts only replies into 198.18.122.0/24; run playbooks/libvirt_routing.yml with libvirt_routing_networks=[natnet, rtnet]"
    )
    assert any(line.startswith("libvirt routing: new connections the LAN -> natnet is rejected (REJECT)") for line in lines)
    assert lr.doctor_problems(nets, "", json.dumps(captured("after")))[0] == []
    # an iptables-save with libvirt's REJECT and an nft rule set without libvirt's table: iptables decides
    save = "*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -o virbr1 -j REJECT\nCOMMIT\n"
    only_ipt = {"nftables": [{"metainfo": {"version": "1.0.6"}}]}
    assert [p["subject"] for p in lr.doctor_problems(nets, save, json.dumps(only_ipt))[0]] == ["natnet->rtnet"]
    assert lr.doctor_problems(nets, "", "not json") == ([], [])


def test_route_and_open_methods_change_the_forward_mode_and_need_no_rules_between_them():
    planned = lr.plan(["natnet", "rtnet"], [NATNET, RTNET], {"natnet": "route"})
    assert planned["rules"] == [] and planned["modes"] == {"natnet": "route"}
    methods = {n["network"]: n["method"] for n in planned["networks"]}
    assert methods == {
        "natnet": "forward mode route: changed from nat in libvirt's definition (network restarted; no NAT)",
        "rtnet": "forward mode route: libvirt's own rules route it to the other networks, nothing to add",
    }
    # a NAT network kept with rules next to a network switched to open: rules both ways, NAT exemption kept
    mixed = lr.plan(["natnet", "rtnet"], [NATNET, RTNET], {"rtnet": "open"})
    assert mixed["modes"] == {"rtnet": "open"} and len(mixed["rules"]) == 3
    with pytest.raises(ModuleError, match="method nat for natnet"):
        lr.plan(["natnet", "rtnet"], [NATNET, RTNET], {"natnet": "nat"})
    with pytest.raises(ModuleError, match="not in the networks list: other"):
        lr.plan(["natnet", "rtnet"], [NATNET, RTNET], {"other": "route"})


def test_the_forward_mode_is_changed_in_the_definition_and_nat_dropped():
    xml_text = (
        "<network><name>natnet</name><uuid>0b8c4a52-0000-4000-8000-000000000001</uuid>"
        "<forward mode='nat'><nat><port start='1024' end='65535'/></nat></forward>"
        "<bridge name='virbr2'/><ip address='198.18.122.1' prefix='24'/></network>"
    )
    after = lr.with_forward_mode(xml_text, "route")
    assert '<forward mode="route" />' in after and "<nat>" not in after and "198.18.122.1" in after
    assert lr.with_forward_mode(after, "route") is None
    isolated = "<network><name>iso</name><bridge name='virbr5'/><ip address='198.18.125.1' prefix='24'/></network>"
    assert '<name>iso</name><forward mode="open" />' in lr.with_forward_mode(isolated, "open")


class FakeHost:
    """An AnsibleModule's run_command on a host where libvirt uses nftables: nft lists ``current``, iptables is absent."""

    def __init__(self, current):
        self.current, self.applied = current, []

    def get_bin_path(self, name):
        return "/usr/sbin/nft" if name == "nft" else None

    def run_command(self, argv, data=None, binary_data=False, check_rc=False):
        if argv[1:3] == ["-j", "list"]:
            return 0, json.dumps(self.current), ""
        if argv[1:] == ["-f", "-"]:
            self.applied.append(data)
            return 0, "", ""
        raise AssertionError(argv)


@pytest.mark.parametrize("check_mode", [True, False])
def test_ensure_picks_nftables_and_applies_one_transaction(tmp_path, monkeypatch, check_mode):
    monkeypatch.setattr(lr, "atomic_write", lambda module, path, data, new_mode: (tmp_path / "hook").write_bytes(data))
    host = FakeHost(captured("ruleset"))
    hook = str(tmp_path / "hooks" / "hook")
    result = lr.ensure(host, ["natnet", "rtnet"], "qemu:///system", hook, "/usr/bin/python3", [NATNET, RTNET], check_mode=check_mode)
    assert result["changed"] and result["backend"] == "nftables" and result["hook_changed"]
    assert result["rules"][0].startswith("nft insert rule ip libvirt_network guest_cross")
    assert result["diff"][1]["before"] == "" and result["diff"][1]["after"].count("kvmhost.bridging") == 3
    if check_mode:
        assert host.applied == [] and not (tmp_path / "hook").exists()
    else:
        assert host.applied == ["\n".join(lnft.compare(captured("ruleset"), PLANNED)[2]) + "\n"]
        assert (tmp_path / "hook").read_text().startswith("#!/usr/bin/python3\n")


def test_ensure_with_the_rules_in_place_changes_nothing(tmp_path):
    host = FakeHost(captured("after"))
    hook = tmp_path / "hook"
    hook.write_text(lnft.hook_text(PLANNED, ["natnet", "rtnet"], "/usr/bin/python3"))
    result = lr.ensure(host, ["natnet", "rtnet"], "qemu:///system", str(hook), "/usr/bin/python3", [NATNET, RTNET])
    assert not result["changed"] and host.applied == []
