"""Issue 18, firewalld hosts: the forwarding role through firewalld, on a lab host running Debian's firewalld.

The host runs firewalld 1.3 with its stock configuration (default zone public)
on its own system bus; breth1 bridges eth1 and bridge-nf-call-iptables is 1. The
stock configuration blocks the bridged guest's DHCP: breth1 is in no zone, and
only interfaces bound to a zone get its intra-zone forwarding. forwarding.yml
with its defaults puts breth1 into public (forward on), runtime and permanent,
and the guest gets its lease, also after firewall-cmd --reload and after a
restart of firewalld (which starts from the permanent configuration).
"""

from __future__ import annotations

import json
import os

import kvmblab

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HOST_BRIDGE = os.path.join(ROOT, "playbooks", "host_bridge.yml")
ISOLATED = os.path.join(ROOT, "playbooks", "isolated_bridge.yml")
FORWARDING = os.path.join(ROOT, "playbooks", "forwarding.yml")
DOCTOR = os.path.join(ROOT, "playbooks", "doctor.yml")
SITE = os.path.join(ROOT, "playbooks", "site.yml")
BRIDGE_ETH1 = {"host_bridge_nic": "eth1", "host_bridge_name": "breth1"}


def fw(host, *args, check=True):
    return host.run(["firewall-cmd", *args], check=check).stdout.strip()


def zone_interfaces(host, zone, permanent=False):
    return fw(host, *(["--permanent"] if permanent else []), "--zone=%s" % zone, "--list-interfaces").split()


def bridge_eth1(host, ansible):
    host.run(["sysctl", "-w", "net.bridge.bridge-nf-call-iptables=1"])
    bridged = ansible.playbook(HOST_BRIDGE, hosts=[host], extra_vars=BRIDGE_ETH1)
    assert bridged.rc == 0, bridged.output
    assert json.loads(host.run(["ip", "-j", "link", "show", "eth1"]).stdout)[0].get("master") == "breth1"
    return host.add_guest(port="vnet0", bridge="breth1")


def doctor_report(ansible, host):
    result = ansible.playbook(DOCTOR, hosts=[host])
    assert result.rc == 0, result.output
    found = [r["result"] for r in result.results if r["host"] == host.name and r["task"].endswith("Check for the common failures")]
    report = [r["result"] for r in result.results if r["host"] == host.name and r["task"].endswith("Print the report")]
    return found[0]["ansible_facts"]["doctor_problems"], "\n".join(report[0]["msg"])


def task_results(result, host, suffix):
    return [r["result"] for r in result.results if r["host"] == host.name and r["task"].endswith(suffix)]


def test_bridged_guest_through_firewalld(firewalld_host, ansible):
    host = firewalld_host
    assert fw(host, "--state") == "running" and fw(host, "--get-default-zone") == "public"
    guest = bridge_eth1(host, ansible)

    # Before: the stock configuration blocks the guest's DHCP, and the doctor says why and what to do.
    assert guest.dhcp(timeout=4) is None
    problems, report = doctor_report(ansible, host)
    blocked = [p for p in problems if p["check"] == "firewalld_block"]
    assert [p["subject"] for p in blocked] == ["breth1"], report
    assert "firewalld" in blocked[0]["problem"] and "public" in blocked[0]["problem"]
    assert "playbooks/forwarding.yml" in blocked[0]["fix"]
    assert "firewall-cmd --permanent --zone=public --change-interface=breth1" in blocked[0]["fix"]
    assert "firewalld_block, firewalld_zone, firewalld_forward, firewalld_libvirt" in report.split("checks run: ")[1].splitlines()[0]

    # --check --diff: nothing changes, the diff shows breth1 going into public.
    checked = ansible.playbook(FORWARDING, hosts=[host], check=True, diff=True)
    assert checked.rc == 0, checked.output
    (planned,) = task_results(checked, host, "Let the guests through firewalld (zones with forwarding, policies for routed bridges)")
    assert planned["changed"] and not planned["reloaded"]
    shown = "".join(d["after"] for d in planned["diff"])
    assert "zone public: interfaces=[breth1] forward=yes" in shown
    assert "breth1" not in "".join(d["before"] for d in planned["diff"])
    assert zone_interfaces(host, "public") == [] and zone_interfaces(host, "public", permanent=True) == []
    assert guest.dhcp(timeout=4) is None

    forwarded = ansible.playbook(FORWARDING, hosts=[host])
    assert forwarded.rc == 0, forwarded.output
    (said,) = task_results(forwarded, host, "Say what was done through firewalld")
    assert any("breth1 (bridged through eth1): in zone public with intra-zone forwarding" in line for line in said["msg"])
    assert not task_results(forwarded, host, "Remove the FORWARD REJECT rules")[0].get("changed")
    assert zone_interfaces(host, "public") == ["breth1"] and zone_interfaces(host, "public", permanent=True) == ["breth1"]
    assert fw(host, "--zone=public", "--query-forward") == "yes"
    assert host.run(["sysctl", "-n", "net.bridge.bridge-nf-call-iptables"]).stdout.strip() == "1"  # the user's choice stays

    lease = guest.dhcp()
    assert lease is not None and lease.startswith("198.19.0."), "no lease through firewalld's zone"
    assert guest.ping(kvmblab.LAN_GATEWAY)

    fw(host, "--reload")
    assert guest.dhcp() is not None, "no lease after firewall-cmd --reload"
    host.restart_firewalld()
    assert zone_interfaces(host, "public") == ["breth1"]
    assert guest.dhcp() is not None, "no lease after a restart of firewalld"

    again = ansible.playbook(FORWARDING, hosts=[host])
    assert again.rc == 0 and again.stats[host.name]["changed"] == 0, again.output
    problems, report = doctor_report(ansible, host)
    assert not [p for p in problems if p["check"].startswith("firewalld")], report

    # Taking the zone's forwarding away blocks the guest again: the zone is what lets it through.
    fw(host, "--zone=public", "--remove-forward")
    assert guest.dhcp(timeout=4) is None
    problems, _report = doctor_report(ansible, host)
    assert [p["subject"] for p in problems if p["check"] == "firewalld_forward"] == ["breth1"]


def test_isolated_bridge_routes_through_the_policy(firewalld_host, ansible):
    host = firewalld_host
    lan = ["ip", "netns", "exec", host.lab.lan_netns]
    made = ansible.playbook(ISOLATED, hosts=[host], extra_vars={"isolated_bridge_address": "198.19.40.1/24"})
    assert made.rc == 0, made.output
    guest = host.add_guest(bridge="isolbr0")
    guest.run(["ip", "addr", "add", "198.19.40.10/24", "dev", "eth0"])
    guest.run(["ip", "route", "add", "default", "via", "198.19.40.1"])
    # The host's LAN side: eth1 with an address, in no zone (so in the default zone, public); the LAN routes
    # 198.19.40.0/24 back through it.
    host.run(["ip", "addr", "add", "198.19.0.40/24", "dev", "eth1"])
    kvmblab._run([*lan, "ip", "route", "replace", "198.19.40.0/24", "via", "198.19.0.40"])
    try:
        out_only = {"forwarding_firewalld_routed_to_zone": "public", "forwarding_firewalld_routed_directions": ["out"]}
        result = ansible.playbook(FORWARDING, hosts=[host], extra_vars=out_only)
        assert result.rc == 0, result.output
        assert zone_interfaces(host, "kvmb-routed") == ["isolbr0"]
        assert zone_interfaces(host, "kvmb-routed", permanent=True) == ["isolbr0"]
        # firewalld applies policies only to interfaces bound to a zone: the role bound eth0 and eth1 (in no zone,
        # so in the default zone already) to public.
        assert sorted(zone_interfaces(host, "public", permanent=True)) == ["eth0", "eth1"]
        assert fw(host, "--permanent", "--get-policies").split().count("kvmb-routed-out") == 1
        assert "kvmb-routed-in" not in fw(host, "--get-policies").split()
        # Out: the guest reaches the LAN. In: nothing from the LAN reaches the guest (no policy asked for it).
        assert guest.ping(kvmblab.LAN_GATEWAY, count=2)
        assert kvmblab._run([*lan, "ping", "-n", "-c", "1", "-W", "2", "198.19.40.10"], check=False).returncode != 0

        both = dict(out_only, forwarding_firewalld_routed_directions=["out", "in"])
        result = ansible.playbook(FORWARDING, hosts=[host], extra_vars=both)
        assert result.rc == 0, result.output
        assert kvmblab._run([*lan, "ping", "-n", "-c", "2", "-W", "2", "198.19.40.10"], check=False).returncode == 0
        assert guest.ping(kvmblab.LAN_GATEWAY, count=2)
        host.restart_firewalld()
        assert kvmblab._run([*lan, "ping", "-n", "-c", "2", "-W", "2", "198.19.40.10"], check=False).returncode == 0
        assert guest.ping(kvmblab.LAN_GATEWAY, count=2)
        again = ansible.playbook(FORWARDING, hosts=[host], extra_vars=both)
        assert again.rc == 0 and again.stats[host.name]["changed"] == 0, again.output
    finally:
        kvmblab._run([*lan, "ip", "route", "del", "198.19.40.0/24"], check=False)


def test_site_on_a_firewalld_host(firewalld_host, ansible):
    host = firewalld_host
    host.run(["sysctl", "-w", "net.bridge.bridge-nf-call-iptables=1"])
    result = ansible.playbook(SITE, hosts=[host], extra_vars=BRIDGE_ETH1)
    assert result.rc == 0, result.output
    # breth1 with its NIC, and site's isolated bridge isolbr0 (no host address) for its guests, both with forwarding.
    assert sorted(zone_interfaces(host, "public", permanent=True)) == ["breth1", "isolbr0"]
    guest = host.add_guest(port="vnet0", bridge="breth1")
    assert guest.dhcp() is not None
    again = ansible.playbook(SITE, hosts=[host], extra_vars=BRIDGE_ETH1)
    assert again.rc == 0 and again.stats[host.name]["changed"] == 0, again.output


def test_site_on_a_network_scripts_host(stock_host, ansible):
    """No firewalld: the role takes the iptables REJECT path, as before."""
    result = ansible.playbook(SITE, hosts=[stock_host], extra_vars=BRIDGE_ETH1)
    assert result.rc == 0, result.output
    (fwd,) = task_results(result, stock_host, "Let the guests through firewalld (zones with forwarding, policies for routed bridges)")
    assert fwd["firewalld"]["running"] is False and not fwd["changed"]
    rules = stock_host.run(["iptables", "-S", "FORWARD"]).stdout
    assert "REJECT" not in rules


def test_site_on_a_networkmanager_host(nm_host, ansible):
    """NetworkManager without firewalld: the firewalld step finds no firewalld on the host's bus and changes nothing."""
    result = ansible.playbook(SITE, hosts=[nm_host], extra_vars=BRIDGE_ETH1)
    assert result.rc == 0, result.output
    (fwd,) = task_results(result, nm_host, "Let the guests through firewalld (zones with forwarding, policies for routed bridges)")
    assert fwd["firewalld"]["running"] is False and not fwd["changed"]
    again = ansible.playbook(SITE, hosts=[nm_host], extra_vars=BRIDGE_ETH1)
    assert again.rc == 0 and again.stats[nm_host.name]["changed"] == 0, again.output


def test_reject_rule_leaves_a_running_firewalld_alone(firewalld_host, ansible):
    """reject_rule learns from the system bus that firewalld runs, refuses with what to do instead, and changes no rule."""
    host = firewalld_host
    owner = host.run(
        [
            "busctl",
            "--system",
            "call",
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "NameHasOwner",
            "s",
            "org.fedoraproject.FirewallD1",
        ]
    )
    assert owner.stdout.split() == ["b", "true"]  # what the module asks, answered by the host's own bus
    ruleset = host.run(["nft", "list", "ruleset"]).stdout
    refused = ansible.module(host, "kvmhost.bridging.reject_rule", {"state": "absent", "persist": False})
    assert refused.get("failed") is True, refused
    assert refused["msg"].startswith("firewalld is running: it owns the firewall")
    assert "kvmhost.bridging.firewalld_forward" in refused["msg"]
    assert host.run(["nft", "list", "ruleset"]).stdout == ruleset
